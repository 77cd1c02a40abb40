"""make restore-local's checks of TIME, made before anything changes (deploy/docker/pitr.py).

The repository's backups are read from `pgbackrest info --output=json`: a list of stanzas, each
with a "backup" list whose entries carry "timestamp": {"start", "stop"} in epoch seconds
(https://pgbackrest.org/command.html#command-info; pgBackRest's src/command/info/info.c writes
them as INFO_KEY_BACKUP, KEY_TIMESTAMP, KEY_START/KEY_STOP). A backup is consistent only from
its stop, so that is the earliest moment it restores to.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from deploy.docker import pitr

NOW = datetime(2026, 12, 2, 3, 10, 1, tzinfo=UTC)
OLDEST_STOP = datetime(2026, 12, 2, 2, 26, 41, tzinfo=UTC)


def info(*stops: datetime) -> list[dict[str, Any]]:
    backups = [
        {
            "label": f"b{i}",
            "timestamp": {"start": int(s.timestamp()) - 10, "stop": int(s.timestamp())},
        }
        for i, s in enumerate(stops)
    ]
    return [{"name": "registro", "backup": backups}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-02 03:10:00.123+00", datetime(2026, 12, 2, 3, 10, 0, 123000, tzinfo=UTC)),
        ("2026-12-02T04:05:00+01:00", datetime(2026, 12, 2, 3, 5, tzinfo=UTC)),
        (" 2026-12-02 03:00:00Z ", datetime(2026, 12, 2, 3, 0, tzinfo=UTC)),
    ],
)
def test_a_time_with_its_offset_is_taken(text: str, expected: datetime) -> None:
    assert pitr.parse_target(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "TIME is empty"),
        ("   ", "TIME is empty"),
        ("yesterday", "is not an ISO 8601 time"),
        ("2026-13-02 03:00:00+00", "is not an ISO 8601 time"),
        ("2026-12-02 03:00:00", "has no UTC offset"),
        ("2026-12-02 03:10:01.001+00", "is in the future"),
    ],
)
def test_a_bad_time_is_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(pitr.Refusal, match=message) as refused:
        pitr.parse_target(text, NOW)
    assert "\n" not in str(refused.value)


def test_a_time_before_the_oldest_backup_ended_is_refused() -> None:
    newer = OLDEST_STOP + timedelta(minutes=5)
    pitr.check_against_backups(OLDEST_STOP, info(newer, OLDEST_STOP))
    with pytest.raises(pitr.Refusal, match="before the oldest backup ended"):
        pitr.check_against_backups(OLDEST_STOP - timedelta(seconds=1), info(newer, OLDEST_STOP))


def test_without_a_backup_nothing_is_restored() -> None:
    with pytest.raises(pitr.Refusal, match="no backup yet"):
        pitr.check_against_backups(NOW, [{"name": "registro", "backup": []}])


class Untouched:
    """Stands in for everything that would change the stack: any call fails the test."""

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"the stack was touched: {args}")


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A healthy stack whose repository's one backup ended an hour ago; restore() and docker
    must not run."""
    state: dict[str, Any] = {"etcd": "healthy", "info": info(ago(hours=1))}
    monkeypatch.setattr(pitr.compose, "container_state", lambda s: state.get(s, "healthy"))
    monkeypatch.setattr(pitr, "in_member", lambda *cmd, **kw: answer(state["info"]))
    monkeypatch.setattr(pitr, "restore", Untouched())
    monkeypatch.setattr(pitr.compose, "docker", Untouched())
    monkeypatch.setattr(pitr.compose, "compose", Untouched())
    return state


def answer(info: list[dict[str, Any]] | Exception) -> str:
    """What `pgbackrest info --output=json` in a member prints, or how it fails."""
    if isinstance(info, Exception):
        raise info
    return json.dumps(info)


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


@pytest.mark.parametrize(
    ("time", "state", "message"),
    [
        ("", {}, "TIME is empty"),
        (str(ago(minutes=-5)), {}, "is in the future"),
        (str(ago(hours=2)), {}, "before the oldest backup ended"),
        (str(ago(minutes=1)), {"info": info()}, "no backup yet"),
        (str(ago(minutes=1)), {"etcd": "missing"}, "the stack is not up"),
        (
            str(ago(minutes=1)),
            {"info": RuntimeError("pgbackrest info --output=json failed:\nexec: not found")},
            "cannot read the backup repository (pgbackrest info): exec: not found",
        ),
    ],
)
def test_restore_local_refuses_and_changes_nothing(
    stack: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    time: str,
    state: dict[str, Any],
    message: str,
) -> None:
    stack.update(state)
    assert pitr.main(["restore", time]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.count("\n") == 1 and message in out.err and "nothing changed" in out.err


def test_restore_local_goes_ahead_with_a_time_the_repository_covers(
    stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusals above are refusals of these inputs, not of everything."""
    asked: list[datetime] = []
    monkeypatch.setattr(pitr, "restore", asked.append)
    target = ago(minutes=1)
    assert pitr.main(["restore", str(target)]) == 0
    assert asked == [target]
