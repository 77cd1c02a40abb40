"""Database failover: kill -9 the Patroni primary under write load, recording every write.
The synchronous standby is promoted and writes go through again within 15 s. The writers retry
with their Idempotency-Key, as clients should (tests/support/idempotent.py), so every write ends
acknowledged, none is lost and none is stored twice; sent again with its key afterwards, each
gets its first answer replayed. The old primary rejoins as standby."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter

import httpx
from deploy.docker import compose
from deploy.docker.progress import wait_for

from tests.e2e import load as loadgen
from tests.e2e.conftest import STACK_URL
from tests.e2e.report import conclude
from tests.support import idempotent

RECOVERY_WITHIN = 15.0
MEMBERS = ("pg1", "pg2")
# Each write's retries: waits of 0.25 s doubling to 8 s, 15.75 s in all, outlast RECOVERY_WITHIN.
WRITE_ATTEMPTS = 7
BACKOFF = 0.25
RETRY_WAITS = sum(idempotent.delays(WRITE_ATTEMPTS, BACKOFF))


def cluster() -> dict[str, dict]:
    """Patroni's view of its members (patronictl list), asked of any running member."""
    for member in MEMBERS:
        cid = compose.container(member)
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


async def send_again(ca: str, key: str, writes: list[loadgen.Result]) -> list[idempotent.Written]:
    """Each write once more with its own key and body, 8 at a time, retried as the writers
    retry: each should be answered with its stored first response."""
    limit = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=STACK_URL, verify=loadgen.trust(ca), timeout=30) as api:

        async def again(r: loadgen.Result) -> idempotent.Written:
            async with limit:
                return await idempotent.write_once(
                    api,
                    "POST",
                    "/data",
                    json={"name": r.name},
                    headers={"Authorization": f"Bearer {key}"},
                    key=r.key,
                    attempts=WRITE_ATTEMPTS,
                    backoff=BACKOFF,
                )

        return list(await asyncio.gather(*(again(r) for r in writes)))


def answer(written: idempotent.Written) -> str:
    """A write's last answer in short: status, replayed or not, body; or the last error."""
    if written.response is None:
        return written.errors[-1][:80]
    replayed = ", replayed" if written.replayed else ""
    return f"{written.response.status_code}{replayed}: {written.response.text[:80]}"


def test_database_failover(ca: str, api_key: str) -> None:
    before = cluster()
    leader = next(name for name, m in before.items() if m["Role"] == "Leader")
    standby = next(name for name in MEMBERS if name != leader)
    sync_before = before.get(standby, {}).get("Role") == "Sync Standby"
    cid = compose.container(leader)
    assert cid

    with loadgen.Load(
        base_url=STACK_URL,
        ca=ca,
        key=api_key,
        ops=("write",),
        rate=30,
        concurrency=6,
        max_seconds=120,
        timeout=10,
        write_attempts=WRITE_ATTEMPTS,
        backoff=BACKOFF,
    ) as load:
        load.wait(8)
        sent_at = load.mark("docker kill sent")
        compose.docker("kill", "--signal", "KILL", cid)
        killed_at = load.mark(f"kill -9 {leader}")
        promoted_after = wait_for(
            f"{standby} promoted",
            lambda: cluster().get(standby, {}).get("Role") == "Leader",
            60,
            0.5,
        )
        load.mark(f"{standby} promoted")
        load.wait(max(0.0, killed_at + RECOVERY_WITHIN + 10 - time.time()))
        results = load.stop()
    in_flight = loadgen.in_flight_during(results, sent_at, killed_at)

    compose.docker("start", cid)
    restarted_at = time.time()
    try:
        rejoined_after = wait_for(
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
    unacknowledged = loadgen.failures(writes)
    retried = [r for r in writes if r.attempts > 1]
    late_retried = [r for r in writes if r.start > killed_at + RECOVERY_WITHIN and r.attempts > 1]
    first_success_after = min(
        (r.end - killed_at for r in acknowledged if r.start > killed_at), default=None
    )
    stored = loadgen.stored_records(STACK_URL, ca, load.prefix)
    times_stored = Counter(name for _, name in stored)
    stored_ids = {name: rid for rid, name in stored}
    lost = [r for r in acknowledged if times_stored[r.name] != 1 or stored_ids[r.name] != r.id]
    duplicated = sum(1 for n in times_stored.values() if n > 1)
    replays_with_other_id = [r for r in writes if r.replayed and stored_ids.get(r.name) != r.id]
    unacknowledged_but_stored = [r for r in unacknowledged if r.name in times_stored]
    again = asyncio.run(send_again(ca, api_key, acknowledged))
    not_replayed = [
        (r, w)
        for r, w in zip(acknowledged, again, strict=True)
        if not (w.replayed and w.response is not None and w.response.json().get("id") == r.id)
    ]
    after = cluster()
    conclude(
        "database-failover",
        "Database failover (kill -9 the Patroni primary)",
        f"{load.concurrency} clients write new records at {load.rate:.0f}/s through HAProxy, each "
        f"write with an Idempotency-Key, retried with it on a timeout, a dropped connection, 408, "
        f"429 or 5xx up to {WRITE_ATTEMPTS} attempts ({RETRY_WAITS} s "
        "of backoff); the container of the Patroni leader is killed with SIGKILL; each write's "
        "final answer and attempts are recorded (the timeline shows writes, not attempts); "
        "afterwards every record is read back through the service, every acknowledged write is "
        "sent again with its key, and the old primary's container is started again.",
        {
            "writes": loadgen.summary(writes),
            "killed primary": leader,
            "synchronous standby before the kill": (
                f"{standby} ({before.get(standby, {}).get('Role')})"
            ),
            "requests in flight at the kill": in_flight,
            "standby promoted after (s)": round(promoted_after, 1),
            "retries": loadgen.retries(writes),
            "retried because": sorted({e[:60] for r in retried for e in r.retried})[:4],
            "writes not acknowledged after every attempt": len(unacknowledged),
            "their last answers": sorted({f"{r.status or r.error}"[:80] for r in unacknowledged})[
                :4
            ],
            "last write that needed a retry started after the kill (s)": round(
                max((r.start - killed_at for r in retried), default=0.0), 1
            ),
            "first acknowledged write after the kill at (s)": (
                round(first_success_after, 2) if first_success_after is not None else None
            ),
            "acknowledged writes": len(acknowledged),
            "acknowledged writes not stored exactly once with their id": len(lost),
            "names stored more than once": duplicated,
            "replayed answers with another id than the stored one": len(replays_with_other_id),
            "unacknowledged writes that were nevertheless stored": len(unacknowledged_but_stored),
            "acknowledged writes sent again whose first answer was not replayed": len(not_replayed),
            "their answers": dict(Counter(answer(w) for _, w in not_replayed).most_common(4)),
            "old primary rejoined as sync standby after (s)": (
                round(rejoined_after, 1) if rejoined_after is not None else "not within 180 s"
            ),
            "cluster after": {m: f"{v['Role']}/{v['State']}" for m, v in after.items()},
        },
        {
            "synchronous replication before the kill": sync_before,
            "standby promoted": after.get(standby, {}).get("Role") == "Leader",
            "the retries wait longer than the recovery may take": RETRY_WAITS > RECOVERY_WITHIN,
            "writes go through again within 15 s (none started later needed a retry)": (
                not late_retried and first_success_after is not None
            ),
            "every write acknowledged within its retry budget": not unacknowledged,
            "nothing acknowledged is lost: each stored exactly once, with its id": not lost,
            "nothing duplicated: no name stored twice": duplicated == 0,
            "every replay answered the stored id": not replays_with_other_id,
            "every acknowledged write sent again is replayed with its id": not not_replayed,
            "old primary rejoined as sync standby": rejoined_after is not None,
        },
        load=load,
    )
