"""Rolling update: `make rollout-local TAG=...` under load replaces the replicas one at a time,
each taken out of HAProxy's pool and drained before SIGTERM: zero failed requests, and /version
reports the new revision on every replica at the end."""

from __future__ import annotations

import json
import subprocess
import threading
import time

from deploy.docker import haproxy, rollout

from tests.e2e import load as loadgen
from tests.e2e.conftest import STACK_URL, build_variant, replica_commit
from tests.e2e.report import conclude


class PoolWatch(threading.Thread):
    """Samples HAProxy's pool while a release runs: the fewest stable replicas in it at once."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.fewest = len(rollout.STABLE)
        self.samples = 0
        self.errors = 0

    def run(self) -> None:
        while not self.stop.wait(0.3):
            try:
                pool = haproxy.servers()
            except (RuntimeError, OSError, subprocess.SubprocessError):
                self.errors += 1
                continue
            self.fewest = min(self.fewest, sum(pool[s].in_pool for s in rollout.STABLE))
            self.samples += 1


def run_make(*args: str, timeout: float) -> tuple[int, list[dict], float]:
    start = time.monotonic()
    proc = subprocess.run(
        ["make", "--no-print-directory", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    print(proc.stdout[-4000:], proc.stderr[-4000:])  # shown by pytest when the drill fails
    return proc.returncode, events, time.monotonic() - start


def mark_events(load: loadgen.Load, events: list[dict], kinds: tuple[str, ...]) -> None:
    """The moments rollout.py reported (its JSON events, timed as they happened) on the timeline."""
    for e in events:
        if e["event"] in kinds:
            label = " ".join(filter(None, (e["event"], e.get("server"), e.get("phase"))))
            load.mark(label, e["t"])


def test_rolling_update(ca: str, api_key: str) -> None:
    tag, commit = build_variant("rollout")
    watch = PoolWatch()
    with loadgen.Load(
        base_url=STACK_URL, ca=ca, key=api_key, rate=40, concurrency=8, max_seconds=400
    ) as load:
        load.wait(5)
        watch.start()
        code, events, took = run_make("rollout-local", f"TAG={tag}", timeout=360)
        watch.stop.set()
        watch.join()
        mark_events(load, events, ("rollout-start", "drain", "ready", "rollout-done"))
        done_at = time.time()
        load.wait(5)
        results = load.stop()

    failed = loadgen.failures(results)
    commits = {s: replica_commit(s) for s in rollout.STABLE}
    after = {r.commit for r in results if r.op == "version" and r.ok and r.start > done_at}
    order = [
        (e["event"], e.get("server"))
        for e in events
        if e["event"] in ("drain", "drained", "sigterm", "readyz-503", "stopped", "ready")
    ]
    expected = [
        (step, s)
        for s in rollout.STABLE
        for step in ("drain", "drained", "sigterm", "readyz-503", "stopped", "ready")
    ]
    per_replica = {
        s: round(
            next(e["t"] for e in events if e["event"] == "ready" and e["server"] == s)
            - next(e["t"] for e in events if e["event"] == "drain" and e["server"] == s),
            1,
        )
        for s in rollout.STABLE
        if (("ready", s) in order and ("drain", s) in order)
    }
    conclude(
        "rolling-update",
        "Rolling update (make rollout-local)",
        "The replicas are replaced one at a time by an image of a new revision while "
        f"{load.concurrency} clients send {load.rate:.0f} requests/s: each is put in drain in "
        "HAProxy "
        "(no new requests), its open requests finish, it gets SIGTERM (its /readyz turns 503, "
        "which HAProxy's check sees), it exits, and its replacement joins once healthy.",
        {
            "load": loadgen.summary(results),
            "failed requests": len(failed),
            "failures": sorted({f"{r.op}: {r.status or r.error}" for r in failed})[:5],
            "rollout duration (s)": round(took, 1),
            "seconds per replica, drain to ready": per_replica,
            "fewest stable replicas in the pool at once": watch.fewest,
            "pool samples (failed samples)": f"{watch.samples} ({watch.errors})",
            "/version on each replica at the end": {s: c == commit for s, c in commits.items()},
        },
        {
            "make rollout-local exit 0": code == 0,
            "the new release's migrations ran before the first replica was drained": [
                e["event"] for e in events if e["event"] in ("migrated", "drain")
            ][:1]
            == ["migrated"],
            "zero failed requests": not failed,
            "drain, drained, SIGTERM, readyz 503, stopped, ready, one replica after another": order
            == expected,
            "readyz 503 seen for every replica": all(
                e["seen"] for e in events if e["event"] == "readyz-503"
            )
            and len(per_replica) == 3,
            "never fewer than 2 replicas in the pool": watch.fewest >= 2 and watch.samples > 20,
            "every replica reports the new revision": set(commits.values()) == {commit},
            "all /version answers after the rollout are the new revision": after == {commit},
        },
        load=load,
    )
