"""Point-in-time restore of the local stack's database from its pgBackRest repository.

    python -m deploy.docker.pitr restore '2026-12-02 03:10:00.123+00'

Run from the repository root (make restore-local does). The target is checked first (a time
with its UTC offset, not in the future, not before the oldest backup ended); a bad one stops it
with one line and nothing changed. Then, each phase timed:

  archive  `pgbackrest check` on the primary: switches WAL and waits until it is archived, so
           the archive reaches past the target
  stop     the Patroni members, standbys first (no failover); the service answers 503 from now
  dcs      `patronictl remove`: the cluster's keys out of etcd, so that a member bootstraps anew
  wipe     the members' containers and data volumes (the repository volume stays)
  restore  pg1 with RESTORE_TARGET_TIME: Patroni's custom bootstrap (patroni/restore.yml) has
           pgBackRest restore the newest backup before the target and PostgreSQL replay WAL up
           to it, then promote; Patroni runs post_bootstrap and takes the leader key
  standby  pg2 again, copied from the new primary (pg_basebackup), until it is sync standby
  service  /readyz through HAProxy answers 200

Progress goes to stderr; each phase is also one JSON line on stdout (deploy/docker/progress.py),
so that the drill (tests/e2e/test_8_point_in_time_restore.py) can place them on its timeline.
"""

from __future__ import annotations

import argparse
import json
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploy.docker import compose
from deploy.docker.progress import event, log, wait_for

MEMBERS = ("pg1", "pg2")  # pg1 is restored, pg2 re-created from it
SCOPE = "registro"  # patroni.yml's scope
PATRONI_CONFIG = "/etc/patroni/patroni.yml"
READYZ = "https://127.0.0.1:8443/readyz"
CA = Path(".work/certs/ca.crt")
RESTORE_TIMEOUT = 600.0  # restore and WAL replay, on a busy 2-core machine
REJOIN_TIMEOUT = 300.0


class Refusal(ValueError):
    """Why nothing is restored, found before anything changed: the one line the operator sees."""


def parse_target(text: str, now: datetime) -> datetime:
    """The target as an aware datetime; refused when empty, unreadable, without a UTC offset
    (ambiguous), or later than `now` (WAL that does not exist yet)."""
    if not text.strip():
        raise Refusal("TIME is empty: give e.g. TIME='2026-12-02 03:10:00.123+00'")
    try:
        target = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Refusal(
            f"TIME {text!r} is not an ISO 8601 time such as '2026-12-02 03:10:00.123+00'"
        ) from None
    if target.tzinfo is None:
        raise Refusal(f"TIME {text!r} has no UTC offset: add one, e.g. +00")
    if target > now:
        raise Refusal(f"TIME {text!r} is in the future (now {now.isoformat(' ')})")
    return target


def oldest_backup_end(info: list[dict[str, Any]]) -> datetime | None:
    """When the oldest backup in `pgbackrest info --output=json` ended: the earliest moment it
    can be recovered to (a backup is consistent only from its end)."""
    stops = [b["timestamp"]["stop"] for stanza in info for b in stanza.get("backup", [])]
    return datetime.fromtimestamp(min(stops), UTC) if stops else None


def check_against_backups(target: datetime, info: list[dict[str, Any]]) -> None:
    earliest = oldest_backup_end(info)
    if earliest is None:
        raise Refusal("the repository holds no backup yet: nothing to restore from")
    if target < earliest:
        raise Refusal(
            f"TIME {target.isoformat(' ')} is before the oldest backup ended "
            f"({earliest.isoformat(' ')}): that is as far back as the repository goes"
        )


def validate(text: str) -> datetime:
    """Everything checked before anything changes: the target and what the repository holds."""
    target = parse_target(text, datetime.now(UTC))
    if compose.container_state("etcd") != "healthy":
        raise Refusal("the stack is not up (make stack-up)")
    try:
        info = repository_info()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        last = str(exc).strip().splitlines()[-1]
        raise Refusal(f"cannot read the backup repository (pgbackrest info): {last}") from None
    check_against_backups(target, info)
    return target


def repository_info() -> list[dict[str, Any]]:
    """`pgbackrest info --output=json`: the stanza's backups and WAL archive."""
    parsed: list[dict[str, Any]] = json.loads(in_member("pgbackrest", "info", "--output=json"))
    return parsed


# --- the stack ---------------------------------------------------------------------------------


def running_member() -> str | None:
    return next((m for m in MEMBERS if compose.container_state(m) == "healthy"), None)


def in_member(
    *command: str, member: str | None = None, stdin: str | None = None, timeout: float = 120
) -> str:
    """A command in `member`, else in a running member, else in a one-off container of pg1's
    (the repository and etcd are reachable from each); its output, or RuntimeError."""
    member = member or running_member()
    if member is not None:
        cid = compose.container(member)
        argv = ["docker", "exec", "-i", str(cid), *command]
    else:
        argv = [*compose.STACK, "compose", "run", "--rm", "--no-deps", "-T", "pg1", *command]
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}"[-3000:])
    return result.stdout


def cluster(member: str | None = None) -> dict[str, dict[str, Any]]:
    """patronictl's view of the members, asked in `member` or any running one ({} when no
    member answers)."""
    try:
        out = in_member(
            "patronictl", "-c", PATRONI_CONFIG, "list", "-f", "json", member=member, timeout=30
        )
    except (RuntimeError, subprocess.TimeoutExpired):
        return {}
    return {m["Member"]: m for m in json.loads(out)}


def member_is(member: str, roles: tuple[str, ...], states: tuple[str, ...]) -> bool:
    """Asked of the member itself: it runs while it is waited for, though not yet healthy."""
    m = cluster(member).get(member, {})
    return m.get("Role") in roles and m.get("State") in states


def wait_running(member: str, predicate: Callable[[], bool], what: str, timeout: float) -> None:
    """Wait for predicate(); fail at once, with the member's log, if its container exited."""

    def done() -> bool:
        if compose.container_state(member) in ("exited", "missing"):
            logs = compose.compose("logs", "--no-color", "--tail=40", member, check=False)
            raise RuntimeError(f"{member} exited while waiting for {what}:\n{logs}")
        return predicate()

    wait_for(what, done, timeout, 1)


def service_ready() -> bool:
    context = ssl.create_default_context(cafile=str(CA))
    try:
        with urllib.request.urlopen(READYZ, timeout=3, context=context) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# --- the restore -------------------------------------------------------------------------------


@contextmanager
def phase(name: str, what: str, timings: dict[str, float]) -> Iterator[None]:
    log(f"restore-local: {name}: {what}")
    event("phase-start", phase=name)
    start = time.monotonic()
    yield
    timings[name] = round(time.monotonic() - start, 1)
    event("phase-end", phase=name, seconds=timings[name])
    log(f"restore-local: {name}: done in {timings[name]} s")


def restore(target: datetime) -> dict[str, float]:
    """Restore the cluster to `target` (validated); return each phase's seconds."""
    timings: dict[str, float] = {}
    before = cluster()
    leader = next((name for name, m in before.items() if m["Role"] == "Leader"), None)
    with phase("archive", f"WAL up to now into the repository, from {leader}", timings):
        if leader is None:
            log("restore-local: archive: no primary; restoring from what is archived")
        else:
            in_member("pgbackrest", "check", member=leader)
    with phase("stop", "the Patroni members, standbys first", timings):
        compose.compose("stop", *(m for m in MEMBERS if m != leader))
        if leader is not None:
            compose.compose("stop", leader)
    with phase("dcs", f"the cluster {SCOPE!r} out of etcd (patronictl remove)", timings):
        # patronictl asks for the cluster's name, a confirmation and, if a leader key is left,
        # its name.
        in_member(
            "patronictl",
            "-c",
            PATRONI_CONFIG,
            "remove",
            SCOPE,
            stdin=f"{SCOPE}\nYes I am aware\n{leader or ''}\n",
        )
    with phase("wipe", "the members' containers and data volumes", timings):
        compose.compose("rm", "--force", "--stop", *MEMBERS)
        volumes = [f"{compose.PROJECT}_{m}-data" for m in MEMBERS]
        compose.docker("volume", "rm", *volumes)
    stamp = target.isoformat(" ")
    with phase("restore", f"pg1 restored to {stamp} and promoted", timings):
        compose.compose(
            "up", "-d", "--no-deps", "--no-build", "pg1", env={"RESTORE_TARGET_TIME": stamp}
        )
        wait_running(
            "pg1",
            lambda: member_is("pg1", ("Leader",), ("running",)),
            "pg1 to lead",
            RESTORE_TIMEOUT,
        )
    with phase("standby", "pg2 re-created from pg1 as synchronous standby", timings):
        compose.compose("up", "-d", "--no-deps", "--no-build", "pg2")
        wait_running(
            "pg2",
            lambda: member_is("pg2", ("Sync Standby",), ("running", "streaming")),
            "pg2 to be sync standby",
            REJOIN_TIMEOUT,
        )
    with phase("service", f"{READYZ} answers 200", timings):
        wait_for("the service to be ready", service_ready, 120, 1)
    log(
        f"restore-local: restored to {stamp} in {sum(timings.values()):.1f} s: "
        + ", ".join(f"{name} {s} s" for name, s in timings.items())
    )
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("restore").add_argument("time")
    args = parser.parse_args(argv)
    try:
        target = validate(args.time)
    except Refusal as exc:
        print(f"restore-local: {exc}; nothing changed", file=sys.stderr)
        return 2
    restore(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
