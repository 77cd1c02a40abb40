"""Canary: `make canary-local TAG=...` runs one replica of a new revision at ~10% of traffic and
judges it with the AnalysisTemplate's own checks against Prometheus. A healthy canary is
promoted; one injecting 20% errors is aborted automatically and traffic returns to stable."""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from deploy.docker import canary, compose, rollout

from tests.e2e import load as loadgen
from tests.e2e.conftest import STACK_URL, build_variant, replica_commit
from tests.e2e.report import conclude
from tests.e2e.test_3_rolling_update import mark_events, run_make

DESCRIPTION = (
    "`make canary-local` follows the first step of the Kubernetes Rollout (deploy/k8s/base/"
    "rollout.yaml): one replica of the new revision joins HAProxy's pool with the step's setWeight "
    "(as an HAProxy weight beside the 3 stable replicas), waits the step's pause, then runs the "
    "step's analysis: the checks deploy/k8s/base/analysis-template.yaml is rendered from "
    "(deploy/slo/generate.py, from deploy/slo/slo.yaml) over the step's service-name "
    "(registro-canary), each measured every `interval` against the local Prometheus, its value "
    "compared with the check's bound and counted with count, failureLimit and inconclusiveLimit "
    "as Argo Rollouts does. The local Prometheus scrapes every {i}, as "
    "production's does (deploy/k8s/platform/values/prometheus.yaml), so the template's 1m rate "
    "windows hold the same number of samples. Load: {c} clients, {r:.0f} requests/s."
)
PROMETHEUS_CONFIG = Path("deploy/docker/prometheus/prometheus.yml")
# canary.py's events marked on the timeline (the promotion's rollout adds its drain/ready ones).
CANARY_MOMENTS = (
    "canary-start",
    "canary-weight",
    "analysis-start",
    "analysis",
    "canary-promoted",
    "canary-aborted",
    "canary-removed",
    "drain",
    "ready",
)


def describe(load: loadgen.Load) -> str:
    interval = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"]
    return DESCRIPTION.format(c=load.concurrency, r=load.rate, i=interval)


def window(events: list[dict], start: str, end: str) -> tuple[float, float]:
    t0 = next(e["t"] for e in events if e["event"] == start)
    t1 = next(e["t"] for e in events if e["event"] == end)
    return t0, t1


def during(results: list[loadgen.Result], t0: float, t1: float) -> list[loadgen.Result]:
    return [r for r in results if t0 <= r.start <= t1]


def canary_share(window: list[loadgen.Result], commit: str) -> tuple[float, int]:
    """The share of /version answers that came from the canary's revision, and their count."""
    versions = [r.commit for r in window if r.op == "version" and r.ok]
    return (versions.count(commit) / len(versions) if versions else 0.0), len(versions)


def measured(events: list[dict]) -> dict[str, str]:
    """Each analysis metric's measurements in order, with the value Prometheus returned."""
    out: dict[str, list[str]] = {}
    for e in events:
        if e["event"] == "measurement":
            value = ", ".join(f"{float(v):.4g}" for v in e.get("result", [])) or e.get("error", "")
            out.setdefault(e["metric"], []).append(f"{e['phase']}: {value or 'no data'}")
    return {metric: "; ".join(values) for metric, values in out.items()}


def test_healthy_canary_is_promoted(ca: str, api_key: str) -> None:
    stable_commit = replica_commit("app1")
    tag, commit = build_variant("canary")
    with loadgen.Load(
        base_url=STACK_URL, ca=ca, key=api_key, rate=40, concurrency=8, max_seconds=600
    ) as load:
        load.wait(5)
        code, events, took = run_make("canary-local", f"TAG={tag}", timeout=540)
        mark_events(load, events, CANARY_MOMENTS)
        done_at = time.time()
        load.wait(5)
        results = load.stop()

    phase = next((e["phase"] for e in events if e["event"] == "analysis"), None)
    t0, t1 = window(events, "canary-weight", "analysis") if phase else (0, 0)
    canary_window = during(results, t0, t1)
    share, versions = canary_share(canary_window, commit)
    failed = loadgen.failures(results)
    commits = {s: replica_commit(s) for s in rollout.STABLE}
    conclude(
        "canary-healthy",
        "Canary of a healthy revision (make canary-local)",
        describe(load) + " Here the canary is healthy.",
        {
            "load": loadgen.summary(results),
            "analysis": phase,
            "measurements (phase: value)": measured(events),
            "share of /version answers from the canary during analysis": (
                f"{share:.1%} of {versions}"
            ),
            "failed requests during the canary": (
                f"{len(loadgen.failures(canary_window))} of {len(canary_window)}"
            ),
            "failed requests in the whole drill": len(failed),
            "canary to promoted, total (s)": round(took, 1),
            "stable revision before": stable_commit,
        },
        {
            "make canary-local exit 0": code == 0,
            "analysis Successful": phase == "Successful",
            "canary promoted": any(e["event"] == "canary-promoted" for e in events),
            "canary got between 4% and 20% of requests": 0.04 <= share <= 0.20,
            "zero failed requests": not failed,
            "every replica runs the canary's revision after promotion": set(commits.values())
            == {commit},
            "all /version answers after promotion are the new revision": {
                r.commit for r in results if r.op == "version" and r.ok and r.start > done_at
            }
            == {commit},
            "the canary replica is gone": compose.container(canary.CANARY_SERVICE) is None,
        },
        load=load,
    )


def test_faulty_canary_is_aborted(ca: str, api_key: str) -> None:
    stable_commit = replica_commit("app1")
    tag, commit = build_variant("faulty")
    with loadgen.Load(
        base_url=STACK_URL, ca=ca, key=api_key, rate=40, concurrency=8, max_seconds=600
    ) as load:
        load.wait(5)
        code, events, took = run_make(
            "canary-local", f"TAG={tag}", "FAULT_ERROR_RATE=0.2", timeout=540
        )
        mark_events(load, events, CANARY_MOMENTS)
        aborted_at = time.time()
        load.wait(10)
        results = load.stop()

    phase = next((e["phase"] for e in events if e["event"] == "analysis"), None)
    t0, t1 = window(events, "canary-start", "canary-removed") if phase else (0, 0)
    canary_window = during(results, t0, t1)
    canary_failed = loadgen.failures(canary_window)
    after = [r for r in results if r.start > aborted_at]
    share, versions = canary_share(canary_window, commit)
    conclude(
        "canary-faulty",
        "Canary injecting 20% errors (make canary-local FAULT_ERROR_RATE=0.2)",
        describe(load) + " Here the canary answers 20% of /data requests with an injected 500.",
        {
            "load": loadgen.summary(results),
            "analysis": phase,
            "measurements (phase: value)": measured(events),
            "share of /version answers from the canary": f"{share:.1%} of {versions}",
            "failed requests while the canary ran": f"{len(canary_failed)} of {len(canary_window)} "
            f"({len(canary_failed) / max(len(canary_window), 1):.2%})",
            "canary start to aborted (s)": round(took, 1),
            "failed requests after the abort": f"{len(loadgen.failures(after))} of {len(after)}",
        },
        {
            "make canary-local fails (aborted)": code != 0,
            "analysis Failed": phase == "Failed",
            "canary aborted and removed": any(e["event"] == "canary-aborted" for e in events)
            and compose.container(canary.CANARY_SERVICE) is None,
            "the injected faults reached clients (the drill can see them)": len(canary_failed) > 0,
            "every failure is an injected fault": all(
                r.status == 500 and "Injected fault" in (r.error or "") for r in canary_failed
            ),
            "zero failures after the abort": not loadgen.failures(after),
            "traffic back on the stable revision": {
                r.commit for r in after if r.op == "version" and r.ok
            }
            == {stable_commit},
            "stable replicas untouched": {replica_commit(s) for s in rollout.STABLE}
            == {stable_commit},
        },
        load=load,
    )
