"""Replica crash: kill -9 one replica under load. HAProxy routes around it within 3 s, the
failed requests are no more than those in flight at the kill, and the replica rejoins."""

from __future__ import annotations

from deploy.docker import compose, haproxy
from deploy.docker.progress import wait_for

from tests.e2e import load as loadgen
from tests.e2e.conftest import STACK_URL
from tests.e2e.report import conclude

VICTIM = "app2"
ROUTED_AROUND_WITHIN = 3.0


def test_replica_crash(ca: str, api_key: str) -> None:
    cid = compose.container(VICTIM)
    assert cid and haproxy.servers()[VICTIM].in_pool, f"{VICTIM} must be up before the drill"
    with loadgen.Load(
        base_url=STACK_URL, ca=ca, key=api_key, rate=60, concurrency=12, max_seconds=150
    ) as load:
        load.wait(8)
        sent_at = load.mark("docker kill sent")
        compose.docker("kill", "--signal", "KILL", cid)
        killed_at = load.mark(f"kill -9 {VICTIM}")
        marked_down_after = wait_for(
            f"HAProxy marks {VICTIM} down", lambda: not haproxy.servers()[VICTIM].up, 30, 0.1
        )
        load.mark(f"{VICTIM} down in HAProxy")
        load.wait(12)

        compose.docker("start", cid)
        restarted_at = load.mark(f"docker start {VICTIM}")
        wait_for(f"{VICTIM} healthy", lambda: compose.container_state(VICTIM) == "healthy", 120, 1)
        wait_for(
            f"{VICTIM} back in HAProxy's pool", lambda: haproxy.servers()[VICTIM].in_pool, 60, 0.2
        )
        rejoined_after = load.mark(f"{VICTIM} back in the pool") - restarted_at
        served_before = int(haproxy.stat(VICTIM)["stot"])
        load.wait(6)
        served_after_rejoin = int(haproxy.stat(VICTIM)["stot"]) - served_before
        results = load.stop()
    in_flight = loadgen.in_flight_during(results, sent_at, killed_at)

    failed = loadgen.failures(results)
    late = [r for r in failed if r.start > killed_at + ROUTED_AROUND_WITHIN]
    last_failure_after = max((r.end - killed_at for r in failed), default=0.0)
    conclude(
        "replica-crash",
        "Replica crash (kill -9 under load)",
        f"`docker kill --signal KILL` on {VICTIM} while {load.concurrency} clients send "
        f"{load.rate:.0f} requests/s (reads, writes, /version); then the container is started "
        "again.",
        {
            "load": loadgen.summary(results),
            "docker kill took (s)": round(killed_at - sent_at, 2),
            "requests in flight at the kill": in_flight,
            "failed requests": len(failed),
            "failures": sorted({f"{r.op}: {r.status or r.error}" for r in failed})[:5],
            "HAProxy marked it down after (s)": round(marked_down_after, 2),
            "last failed request ended after the kill (s)": round(last_failure_after, 2),
            "failed requests started later than 3 s after the kill": len(late),
            "rejoined the pool after restart (s)": round(rejoined_after, 1),
            "requests it served in the 6 s after rejoining": served_after_rejoin,
        },
        {
            "marked down within 3 s": marked_down_after <= ROUTED_AROUND_WITHIN,
            "failures <= requests in flight at the kill": len(failed) <= in_flight,
            "no failure among requests started after kill + 3 s": not late,
            "rejoined and serves again": served_after_rejoin > 0,
        },
        load=load,
    )
