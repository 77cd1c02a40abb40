"""Database failover: kill -9 the Patroni primary under write load, recording every response.
The synchronous standby is promoted, writes succeed again within 15 s, every write acknowledged
with 200 is present afterwards and none is duplicated, and the old primary rejoins as standby."""

from __future__ import annotations

import json
import ssl
import subprocess
import time

import httpx
import stackctl

from tests.e2e import load as loadgen
from tests.e2e.report import conclude

RECOVERY_WITHIN = 15.0
MEMBERS = ("pg1", "pg2")


def cluster() -> dict[str, dict]:
    """Patroni's view of its members (patronictl list), asked of any running member."""
    for member in MEMBERS:
        cid = stackctl.container(member)
        if cid is None:
            continue
        out = subprocess.run(
            [
                "docker",
                "exec",
                cid,
                "patronictl",
                "-c",
                "/etc/patroni/patroni.yml",
                "list",
                "-f",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if out.returncode == 0:
            return {m["Member"]: m for m in json.loads(out.stdout)}
    return {}


def role(member: str) -> str:
    m = cluster().get(member, {})
    return f"{m.get('Role')}/{m.get('State')}"


def stored_records(ca: str, key: str, prefix: str) -> list[tuple[int, str]]:
    rows, after = [], 0
    context = ssl.create_default_context(cafile=ca)
    with httpx.Client(base_url=loadgen.BASE_URL, verify=context, timeout=30) as api:
        for _ in range(1000):  # bounded: 1000 pages of 1000
            page = api.get("/data", params={"limit": 1000, "after": after})
            page.raise_for_status()
            batch = page.json()
            rows += [(r["id"], r["name"]) for r in batch if r["name"].startswith(prefix)]
            if "next" not in page.headers.get("link", ""):
                return rows
            after = batch[-1]["id"]
    raise AssertionError("more than 1,000,000 records: pagination does not end")


def test_database_failover(ca: str, api_key: str) -> None:
    before = cluster()
    leader = next(name for name, m in before.items() if m["Role"] == "Leader")
    standby = next(name for name in MEMBERS if name != leader)
    sync_before = before.get(standby, {}).get("Role") == "Sync Standby"
    cid = stackctl.container(leader)
    assert cid

    with loadgen.Load(
        ca=ca, key=api_key, ops=("write",), rate=30, concurrency=6, max_seconds=120, timeout=10
    ) as load:
        load.wait(8)
        load.mark("docker kill sent")
        stackctl.docker("kill", "--signal", "KILL", cid)
        killed_at = load.mark(f"kill -9 {leader}")
        in_flight = len(load.started_before(killed_at))
        promoted_after = stackctl.wait_for(
            f"{standby} promoted",
            lambda: cluster().get(standby, {}).get("Role") == "Leader",
            60,
            0.5,
        )
        load.mark(f"{standby} promoted")
        load.wait(max(0.0, killed_at + RECOVERY_WITHIN + 10 - time.time()))
        results = load.stop()

    stackctl.docker("start", cid)
    restarted_at = time.time()
    try:
        rejoined_after = stackctl.wait_for(
            f"{leader} rejoins as standby",
            lambda: role(leader) in ("Sync Standby/running", "Sync Standby/streaming"),
            180,
            2,
        )
        rejoined_after += time.time() - restarted_at - rejoined_after
    except TimeoutError:
        rejoined_after = None

    writes = [r for r in results if r.op == "write"]
    acknowledged = [r for r in writes if r.ok]
    failed = loadgen.failures(writes)
    last_failure = max((r.end - killed_at for r in failed), default=0.0)
    first_success_after = min(
        (r.end - killed_at for r in acknowledged if r.start > killed_at), default=None
    )
    late_failures = [r for r in failed if r.start > killed_at + RECOVERY_WITHIN]
    stored = stored_records(ca, api_key, load._prefix)
    stored_names = [name for _, name in stored]
    stored_pairs = set(stored)
    lost = [r for r in acknowledged if (r.id, r.name) not in stored_pairs]
    duplicated = len(stored_names) - len(set(stored_names))
    failed_but_stored = sum(1 for r in failed if r.name in set(stored_names))
    after = cluster()
    conclude(
        "database-failover",
        "Database failover (kill -9 the Patroni primary)",
        f"{load.concurrency} clients write new records at {load.rate:.0f}/s through HAProxy; the "
        "container of the Patroni leader is killed with SIGKILL; every response is recorded; "
        "afterwards every record is read back through the service, and the old primary's "
        "container is started again.",
        {
            "writes": loadgen.summary(writes),
            "killed primary": leader,
            "synchronous standby before the kill": (
                f"{standby} ({before.get(standby, {}).get('Role')})"
            ),
            "requests in flight at the kill": in_flight,
            "standby promoted after (s)": round(promoted_after, 1),
            "failed writes": len(failed),
            "failures": sorted({f"{r.status or r.error}"[:80] for r in failed})[:4],
            "last failed write ended after the kill (s)": round(last_failure, 1),
            "first acknowledged write after the kill at (s)": (
                round(first_success_after, 2) if first_success_after is not None else None
            ),
            "acknowledged writes": len(acknowledged),
            "acknowledged writes missing afterwards": len(lost),
            "records stored more than once": duplicated,
            "failed writes that were nevertheless stored": failed_but_stored,
            "old primary rejoined as sync standby after (s)": (
                round(rejoined_after, 1) if rejoined_after is not None else "not within 180 s"
            ),
            "cluster after": {m: f"{v['Role']}/{v['State']}" for m, v in after.items()},
        },
        {
            "synchronous replication before the kill": sync_before,
            "standby promoted": after.get(standby, {}).get("Role") == "Leader",
            "writes succeed again within 15 s": last_failure <= RECOVERY_WITHIN
            and first_success_after is not None,
            "no failed write started after kill + 15 s": not late_failures,
            "nothing acknowledged is lost": not lost,
            "nothing duplicated": duplicated == 0,
            "old primary rejoined as sync standby": rejoined_after is not None,
        },
        load=load,
    )
