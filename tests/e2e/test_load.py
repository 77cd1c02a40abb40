"""The load generator's accounting, offline: which requests a fault could have reached."""

from __future__ import annotations

import pytest

from tests.e2e.load import Result, in_flight_during

pytestmark = pytest.mark.offline
T0 = 1_000_000.0


def test_a_request_that_failed_before_the_kill_command_returned_was_in_flight_at_the_kill() -> None:
    """The CI run of 8a6cffc: `docker kill` took longer than the request it broke; that request
    ended 0.15 s before the command returned and was counted as not in flight, so one failure
    outnumbered "0 requests in flight" and the drill failed."""
    sent, returned = T0, T0 + 0.4
    broken = Result("write", T0 - 0.01, returned - 0.15, None, "RemoteProtocolError")
    assert in_flight_during([broken], sent, returned) == 1


def test_requests_entirely_before_or_after_the_fault_are_not_in_flight() -> None:
    sent, returned = T0, T0 + 0.4
    results = [
        Result("read", T0 - 0.2, T0 - 0.1, 200, None),  # ended before the command was sent
        Result("read", T0 + 0.5, T0 + 0.6, 200, None),  # started after it returned
        Result("read", T0 - 0.1, T0 + 1.0, 200, None),  # spans the whole command
        Result("read", T0 + 0.1, T0 + 0.2, 200, None),  # within it
    ]
    assert in_flight_during(results, sent, returned) == 2
