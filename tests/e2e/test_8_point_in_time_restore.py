"""Point-in-time restore: under write load, an accidental `DELETE FROM records` is undone by
`make restore-local` to a moment T just before it. Every write acknowledged before T is there
afterwards, none started after T (and before the restore) is, and the service takes writes again.

PostgreSQL stops replay at the first commit later than recovery_target_time (inclusive of
commits at it: https://www.postgresql.org/docs/15/runtime-config-wal.html#RUNTIME-CONFIG-WAL-RECOVERY-TARGET),
and the clients and the database share this machine's clock: a write acknowledged before T
committed before T, one started after T commits after it.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

from deploy.docker import pitr
from deploy.docker.progress import wait_for

from tests.e2e import load as loadgen
from tests.e2e.conftest import STACK_URL
from tests.e2e.report import conclude

WRITES_BEFORE_T = 8.0  # seconds of acknowledged writes the restore must keep
WRITES_AFTER_DELETE = 3.0  # writes the restore must drop
WRITES_AFTER_RESTORE = 8.0  # the service taking writes again
BACKUP_WAIT = 120.0  # the stack's first full backup (backup-loop.sh) after stack-up


def restore_local(stamp: str) -> list[dict]:
    """`make restore-local TIME=...` as an operator runs it; its phase events (stdout)."""
    out = subprocess.run(
        ["make", "--no-print-directory", "restore-local", f"TIME={stamp}"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, f"make restore-local failed:\n{out.stderr[-4000:]}"
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_point_in_time_restore(ca: str, api_key: str) -> None:
    wait_for(
        "a backup in the repository",
        lambda: pitr.oldest_backup_end(pitr.repository_info()) is not None,
        BACKUP_WAIT,
        2,
    )
    leader = next(name for name, m in pitr.cluster().items() if m["Role"] == "Leader")

    with loadgen.Load(
        base_url=STACK_URL,
        ca=ca,
        key=api_key,
        ops=("write",),
        rate=20,
        concurrency=4,
        max_seconds=600,
        timeout=10,
    ) as load:
        load.wait(WRITES_BEFORE_T)
        target = load.mark("target time T")
        deleted = pitr.in_member(
            "psql",
            "-U",
            "registro",
            "-d",
            "registro",
            "-XAtc",
            "DELETE FROM records",
            member=leader,
        ).strip()
        deleted_at = load.mark(f"{deleted} (DELETE FROM records)")
        load.wait(WRITES_AFTER_DELETE)
        stamp = datetime.fromtimestamp(target, UTC).isoformat(" ")
        restore_start = load.mark("make restore-local started")
        events = restore_local(stamp)
        for e in events:
            if e["event"] == "phase-end":
                load.mark(f"{e['phase']} done", at=e["t"])
        phases = {e["phase"]: e for e in events if e["event"] == "phase-end"}
        # With the members stopped no write can succeed: one acknowledged before that is on
        # the old timeline, one acknowledged after it on the restored cluster.
        stopped = phases["stop"]["t"]
        restore_end = load.mark("make restore-local returned")
        load.wait(WRITES_AFTER_RESTORE)
        results = load.stop()

    writes = [r for r in results if r.op == "write"]
    acknowledged = [r for r in writes if r.ok]
    present = {name for _, name in loadgen.stored_records(STACK_URL, ca, load.prefix)}
    before = [r for r in acknowledged if r.end < target]
    at_target = [r for r in writes if r.start <= target < r.end]
    dropped = [r for r in acknowledged if target < r.start and r.end < stopped]
    after = [r for r in acknowledged if r.start > stopped]
    straddling = [r for r in acknowledged if target < r.start < stopped < r.end]
    missing_before = [r.name for r in before if r.name not in present]
    kept_after_t = [r.name for r in dropped if r.name in present]
    missing_after = [r.name for r in after if r.name not in present]
    newest_kept = max(
        (r.end for r in acknowledged if r.start <= target and r.name in present), default=None
    )
    first_write_back = min((r.end for r in after), default=None)
    members = pitr.cluster()
    conclude(
        "point-in-time-restore",
        "Point-in-time restore (an accidental DELETE undone)",
        f"{load.concurrency} clients write new records at {load.rate:.0f}/s through HAProxy while "
        "the Patroni primary archives WAL and takes backups into the pgBackRest repository "
        "(compose.yaml); at T a DBA runs `DELETE FROM records` with psql on the primary; writes go "
        "on, then `make restore-local TIME=T` restores the cluster to T and re-creates the "
        "standby; afterwards every record is read back through the service.",
        {
            "writes": loadgen.summary(writes),
            "target time T": stamp,
            "rows deleted": deleted,
            "DELETE after T (s)": round(deleted_at - target, 2),
            "acknowledged before T": len(before),
            "of them missing afterwards": len(missing_before),
            "in flight at T (either way), present afterwards": (
                f"{sum(r.name in present for r in at_target)} of {len(at_target)}"
            ),
            "acknowledged after T, before the restore (dropped by design)": len(dropped),
            "of them present afterwards": len(kept_after_t),
            "acknowledged after the members stopped (by the restored cluster)": len(after),
            "of them missing": len(missing_after),
            "started before the members stopped, acknowledged after, present": (
                f"{sum(r.name in present for r in straddling)} of {len(straddling)}"
            ),
            "RPO: T minus the newest write kept (s)": (
                round(target - newest_kept, 3) if newest_kept is not None else None
            ),
            "RTO: restore start to the first acknowledged write (s)": (
                round(first_write_back - restore_start, 1) if first_write_back else None
            ),
            "make restore-local took (s)": round(restore_end - restore_start, 1),
            "phases (s)": {name: e["seconds"] for name, e in phases.items()},
            "cluster after": {m: f"{v['Role']}/{v['State']}" for m, v in members.items()},
        },
        {
            "the DELETE removed records": deleted.startswith("DELETE ") and deleted != "DELETE 0",
            "every write acknowledged before T is back": bool(before) and not missing_before,
            "nothing acknowledged between T and the restore is back": not kept_after_t,
            "writes succeed after the restore, and are kept": bool(after) and not missing_after,
            "the standby is back in sync": any(
                v["Role"] == "Sync Standby" for v in members.values()
            ),
        },
        load=load,
    )
