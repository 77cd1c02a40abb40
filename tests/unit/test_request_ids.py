"""The service's own request ids: random, never repeated, drawn in batches from the OS."""

from __future__ import annotations

import os
import re

from registro.telemetry.requests import IDS_PER_READ, new_request_id


def test_ids_are_128_random_bits_and_a_batch_never_repeats_one() -> None:
    ids = [new_request_id() for _ in range(3 * IDS_PER_READ)]  # across several reads
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_process_draws_ids_of_its_own() -> None:
    """The ids not yet handed out are forgotten in a forked child (os.register_at_fork): a
    server that forks its workers after import (gunicorn's pre-fork model) would otherwise
    give the parent's next ids to every child."""
    new_request_id()  # the parent now holds ids it has not handed out
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    os.close(write)
    assert os.read(read, 64).decode() != new_request_id()
    os.close(read)
