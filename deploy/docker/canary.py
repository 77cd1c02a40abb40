"""The local canary: a new revision beside the stable replicas, judged as Argo Rollouts judges it.

    python -m deploy.docker.canary TAG [--fault-error-rate 0.2]

Run from the repository root (the Makefile's canary-local does); progress and events as the
rolling update's (deploy/docker/rollout.py).

It follows the first step of the Kubernetes Rollout (deploy/k8s/base/rollout.yaml): its setWeight
(HAProxy weights), its pause, then its analysis. The analysis's checks are the ones the cluster's
AnalysisTemplate is rendered from (deploy/slo/generate.py, canary_checks, from deploy/slo/slo.yaml):
each query is measured against the local Prometheus every interval and its value compared with
the check's bound, counted with Argo Rollouts' rules (count, failureLimit, inconclusiveLimit,
consecutiveErrorLimit). The ALB's CloudWatch metric has no local counterpart. Locally there is one
step: a successful analysis promotes (rolling update of the stable replicas), anything else
aborts. (Argo pauses on Inconclusive for a person; here that aborts.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deploy.docker import compose, haproxy, rollout
from deploy.docker.progress import event, log, wait_for
from deploy.slo import generate

ROLLOUT = Path("deploy/k8s/base/rollout.yaml")
CANARY_SERVICE, CANARY_SERVER = "app-canary", "canary"
PROMETHEUS = "http://127.0.0.1:9090"
# Argo Rollouts' default when a metric sets no consecutiveErrorLimit (the template sets none).
CONSECUTIVE_ERROR_LIMIT = 4
# After an error Argo Rollouts measures again this soon, whatever the metric's interval.
ERROR_RETRY_SECONDS = 10.0

Query = Callable[[str], list[float]]


class RolloutError(ValueError):
    """The Rollout's steps are not the setWeight, pause, analysis this canary follows."""


# --- the Rollout's first canary step ---------------------------------------------------------


@dataclass
class CanaryStep:
    weight: int  # percent of traffic
    pause: float  # seconds before the analysis
    template: str
    args: dict[str, str]


def first_canary_step(path: Path = ROLLOUT) -> CanaryStep:
    """The Rollout's steps up to its first analysis: setWeight, pause(s), analysis."""
    manifest = yaml.safe_load(path.read_text())
    weight, pause = None, 0.0
    for step in manifest["spec"]["strategy"]["canary"]["steps"]:
        ((kind, value),) = step.items()
        if kind == "setWeight":
            weight = int(value)
        elif kind == "pause":
            if "duration" not in value:
                raise RolloutError(f"{path}: an indefinite pause before the first analysis")
            pause += generate.seconds(str(value["duration"]))
        elif kind == "analysis":
            if weight is None or len(value["templates"]) != 1:
                raise RolloutError(f"{path}: expected setWeight, then one analysis template")
            args = {a["name"]: a["value"] for a in value.get("args", [])}
            return CanaryStep(weight, pause, value["templates"][0]["templateName"], args)
        else:
            raise RolloutError(f"{path}: unsupported step {kind!r}")
    raise RolloutError(f"{path}: no analysis step")


def checks(step: CanaryStep, service: str | None = None) -> list[generate.CanaryCheck]:
    """The step's analysis as the cluster runs it: the checks of the AnalysisTemplate it names,
    over the Service the step passes as service-name (or `service`)."""
    spec = generate.load_spec()
    if step.template != spec.raw["canary"]["template"]:
        raise RolloutError(f"the Rollout's analysis is {step.template}, not the SLO's template")
    return generate.canary_checks(spec, service or step.args["service-name"])


# --- measuring and judging, as Argo Rollouts does --------------------------------------------


def prometheus_query(query: str, base: str = PROMETHEUS) -> list[float]:
    """An instant query's values: a vector's samples in order, or a scalar's one value."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (local Prometheus)
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"prometheus: {body}")
    data = body["data"]
    if data["resultType"] == "vector":
        return [float(sample["value"][1]) for sample in data["result"]]
    if data["resultType"] == "scalar":
        return [float(data["result"][1])]
    raise RuntimeError(f"prometheus: unsupported result type {data['resultType']}")


def judge(check: generate.CanaryCheck, result: list[float]) -> str:
    """A measurement's phase: Failed when the failure condition holds, Successful when the
    success condition does, else Inconclusive (no data: an empty result, or NaN)."""
    if not result:
        return "Inconclusive"
    if check.bound.fails(result[0]):
        return "Failed"
    return "Successful" if check.bound.passes(result[0]) else "Inconclusive"


@dataclass
class Tally:
    """One metric's measurements so far and the phase Argo Rollouts gives them."""

    check: generate.CanaryCheck
    measurements: list[str] = field(default_factory=list)
    consecutive_errors: int = 0

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def interval(self) -> float:
        return generate.seconds(self.check.interval)

    def seen(self, phase: str) -> int:
        return self.measurements.count(phase)

    @property
    def phase(self) -> str:
        if self.seen("Failed") > self.check.failure_limit:
            return "Failed"
        if self.seen("Inconclusive") > self.check.inconclusive_limit:
            return "Inconclusive"
        if self.consecutive_errors > CONSECUTIVE_ERROR_LIMIT:
            return "Error"
        if len(self.measurements) >= self.check.count:
            return "Successful"
        return "Running"


def measure(tally: Tally, query: Query) -> str:
    """One measurement, counted in the tally; a query that fails is an Error, not a phase."""
    try:
        result = query(tally.check.query)
    except (OSError, RuntimeError) as exc:
        tally.consecutive_errors += 1
        event("measurement", metric=tally.name, phase="Error", error=str(exc))
        log(f"analysis: {tally.name}: error {exc}")
        return "Error"
    phase = judge(tally.check, result)
    tally.consecutive_errors = 0
    tally.measurements.append(phase)
    event("measurement", metric=tally.name, phase=phase, result=[str(v) for v in result])
    log(f"analysis: {tally.name} = {result} -> {phase}")
    return phase


def run_analysis(
    tallies: list[Tally],
    query: Query = prometheus_query,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Measure each metric every interval until every one is done; the first metric that fails
    (or errors, or is inconclusive) ends the analysis with that phase."""
    due = {t.name: clock() for t in tallies}
    limit = max(t.interval * (t.check.count + t.check.failure_limit + 2) for t in tallies)
    deadline = clock() + limit + 60
    while True:
        for tally in tallies:
            if tally.phase == "Running" and clock() >= due[tally.name]:
                errored = measure(tally, query) == "Error"
                due[tally.name] = clock() + (ERROR_RETRY_SECONDS if errored else tally.interval)
        phases = {t.name: t.phase for t in tallies}
        for bad in ("Failed", "Error", "Inconclusive"):
            if bad in phases.values():
                return bad
        if all(p == "Successful" for p in phases.values()):
            return "Successful"
        if clock() > deadline:
            return "Error"
        sleep(0.5)


# --- the canary on the local stack -----------------------------------------------------------


def canary(tag: str, fault_error_rate: float) -> int:
    compose.require_image(tag)
    stable = rollout.deployed_tag()
    step = first_canary_step()
    tallies = [Tally(c) for c in checks(step)]
    env = {"CANARY_TAG": tag, "CANARY_FAULT_ERROR_RATE": str(fault_error_rate)}
    log(
        f"canary: registro:{tag} beside stable registro:{stable}, "
        f"fault error rate {fault_error_rate}"
    )
    event("canary-start", tag=tag, stable=stable, fault_error_rate=fault_error_rate)
    rollout.migrate(tag)
    try:
        # setWeight: the canary's share beside the stable replicas, as HAProxy weighs them.
        pool = haproxy.servers()
        stable_weight = sum(pool[s].weight for s in rollout.STABLE)
        weight = round(stable_weight * step.weight / (100 - step.weight))
        rollout.start_and_enable(CANARY_SERVICE, CANARY_SERVER, env)
        haproxy.set_weight(CANARY_SERVER, weight)
        weights = {name: s.weight for name, s in haproxy.servers().items() if s.in_pool}
        share = weights.get(CANARY_SERVER, 0) / sum(weights.values())
        event("canary-weight", share=round(share, 3))
        log(
            f"canary: receiving {share:.0%} of requests (setWeight {step.weight}); "
            f"pause {step.pause:.0f} s, then analysis {[t.name for t in tallies]}"
        )
        time.sleep(step.pause)
        event("analysis-start")
        phase = run_analysis(tallies)
    except BaseException:
        _remove_canary(env, abort=True)
        raise
    event("analysis", phase=phase, measurements={t.name: t.measurements for t in tallies})
    if phase == "Successful":
        log("canary: analysis successful: promoting")
        rollout.rollout(tag)
        _remove_canary(env, abort=False)
        event("canary-promoted", tag=tag)
        log(f"canary: promoted, every replica runs registro:{tag}")
        return 0
    log(f"canary: analysis {phase}: aborting, traffic back to registro:{stable}")
    _remove_canary(env, abort=True)
    event("canary-aborted", tag=tag, phase=phase)
    return 1


def _remove_canary(env: dict[str, str], abort: bool) -> None:
    # Aborting takes the canary out at once (maintenance); after a promotion it drains first.
    server = CANARY_SERVER
    haproxy.set_state(server, "maint" if abort else "drain")
    if not abort:
        wait_for("canary: in-flight requests to finish", lambda: haproxy.sessions(server) == 0, 30)
    compose.compose("rm", "--stop", "--force", CANARY_SERVICE, env=env)
    event("canary-removed", abort=abort)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("tag")
    parser.add_argument("--fault-error-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    return canary(args.tag, args.fault_error_rate)


if __name__ == "__main__":
    sys.exit(main())
