"""The local canary's analysis (deploy/docker/canary.py), offline: its checks are the cluster's
AnalysisTemplate's, and it counts their measurements as Argo Rollouts does."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import yaml
from deploy.docker import canary

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.offline

TEMPLATE = ROOT / "deploy" / "k8s" / "base" / "analysis-template.yaml"


def step() -> canary.CanaryStep:
    return canary.first_canary_step(ROOT / canary.ROLLOUT)


def test_the_local_checks_are_the_committed_templates_prometheus_metrics() -> None:
    """What the cluster runs is the committed AnalysisTemplate: each of its Prometheus metrics,
    with the Rollout step's args and the template's defaults put in for `{{args.NAME}}` (Argo
    Rollouts resolves them when it creates the AnalysisRun: docs/features/analysis.md, "Analysis
    Template Arguments"), is the local check of that name: same query, counting fields and
    conditions. The cloudWatch metric (the ALB's own 5xx) has no local counterpart."""
    template = yaml.safe_load(TEMPLATE.read_text())
    first = step()
    assert template["metadata"]["name"] == first.template
    args = {a["name"]: a["value"] for a in template["spec"]["args"] if "value" in a}
    args.update(first.args)
    prometheus = [m for m in template["spec"]["metrics"] if "prometheus" in m["provider"]]
    checks = {c.name: c for c in canary.checks(first)}
    assert sorted(checks) == sorted(m["name"] for m in prometheus)
    for metric in prometheus:
        check = checks[metric["name"]]
        query = metric["provider"]["prometheus"]["query"]
        for name, value in args.items():
            query = query.replace("{{args.%s}}" % name, value)  # noqa: UP031 (braces)
        assert query == check.query
        assert "{{" not in check.query
        assert (
            metric["interval"],
            metric["count"],
            metric["failureLimit"],
            metric["inconclusiveLimit"],
            metric["successCondition"],
            metric["failureCondition"],
        ) == (
            check.interval,
            check.count,
            check.failure_limit,
            check.inconclusive_limit,
            check.success_condition,
            check.failure_condition,
        )


@pytest.mark.parametrize(
    ("result", "phase"),
    [
        ([0.99], "Successful"),
        ([0.95], "Successful"),  # at the bound: `result[0] >= 0.95` holds
        ([0.9499], "Failed"),
        ([], "Inconclusive"),  # no series: no traffic
        ([math.nan], "Inconclusive"),  # 0/0: every comparison is false
    ],
)
def test_a_measurement_is_judged_by_the_conditions_argo_evaluates(
    result: list[float], phase: str
) -> None:
    """Argo Rollouts evaluates both conditions on a measurement: a true failureCondition makes it
    Failed, else a true successCondition Successful, else (neither true) Inconclusive
    (argoproj/argo-rollouts utils/evaluate/evaluate.go, EvaluateResult; docs/features/
    analysis.md, "Inconclusive Runs"). The success-rate check's bound is 0.95."""
    (check,) = [c for c in canary.checks(step()) if c.name == "success-rate"]
    assert check.success_condition == "len(result) > 0 && result[0] >= 0.95"
    assert canary.judge(check, result) == phase


class Clock:
    """A monotonic clock that sleeping moves forward: the analysis runs in no real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def analyse(answer: Callable[[int], list[float]]) -> tuple[str, list[canary.Tally], list[float]]:
    """The first canary step's analysis with every query answered by answer(n), n counting the
    metric's measurements from 0; returns the phase, the tallies and when each query was made."""
    clock, asked = Clock(), []
    tallies = [canary.Tally(c) for c in canary.checks(step())]
    calls: dict[str, int] = {}

    def query(text: str) -> list[float]:
        asked.append(clock.now)
        n = calls[text] = calls.get(text, -1) + 1
        return answer(n)

    return canary.run_analysis(tallies, query, clock, clock.sleep), tallies, asked


def test_count_measurements_interval_apart_make_a_successful_analysis() -> None:
    """A metric measured `count` times, each Successful, is Successful, and the run is when every
    metric is (argo-rollouts analysis/analysis.go, assessMetricStatus: count reached). The
    measurements are `interval` apart: 30s, count 4 in deploy/slo/slo.yaml."""
    phase, tallies, asked = analyse(lambda n: [1.0])
    assert phase == "Successful"
    assert [t.measurements for t in tallies] == [["Successful"] * 4] * 2
    assert sorted(set(asked)) == [0.0, 30.0, 60.0, 90.0]


def test_one_failed_measurement_is_tolerated_a_second_fails_the_analysis() -> None:
    """failureLimit 1: a metric is Failed once more measurements failed than the limit
    (argo-rollouts analysis/analysis.go, assessMetricFailureInconclusiveOrError:
    failed > failureLimit), and a Failed metric ends the run at once."""
    phase, tallies, _ = analyse(lambda n: [0.5] if n == 1 else [1.0])
    assert phase == "Successful"
    assert tallies[0].measurements == ["Successful", "Failed", "Successful", "Successful"]
    phase, tallies, asked = analyse(lambda n: [0.5] if n in (1, 2) else [1.0])
    assert phase == "Failed"
    assert tallies[0].measurements == ["Successful", "Failed", "Failed"]
    assert max(asked) == 60.0


def test_no_data_twice_makes_the_analysis_inconclusive() -> None:
    """inconclusiveLimit 1: a second measurement with no data (an empty result) makes the metric,
    and the run, Inconclusive (assessMetricFailureInconclusiveOrError: inconclusive >
    inconclusiveLimit), which pauses a Rollout for a person (docs/features/analysis.md,
    "Inconclusive Runs"; the local canary aborts)."""
    phase, tallies, _ = analyse(lambda n: [])
    assert phase == "Inconclusive"
    assert tallies[0].measurements == ["Inconclusive", "Inconclusive"]


def test_more_consecutive_errors_than_the_default_limit_end_it_in_error() -> None:
    """A query that fails is an Error, not a measurement phase; more consecutive errors than
    consecutiveErrorLimit (default 4, which the template keeps) make the metric Error
    (assessMetricFailureInconclusiveOrError; utils/defaults/defaults.go); a good measurement in
    between resets the count. After an error Argo measures again 10 s later, whatever the
    interval (analysis/analysis.go, generateMetricTasks, DefaultErrorRetryInterval)."""

    def failing(n: int) -> list[float]:
        raise OSError("connection refused")

    phase, tallies, asked = analyse(failing)
    assert phase == "Error"
    assert tallies[0].consecutive_errors == canary.CONSECUTIVE_ERROR_LIMIT + 1
    assert tallies[0].measurements == []
    assert sorted(set(asked)) == [0.0, 10.0, 20.0, 30.0, 40.0]
    # 3 errors, a measurement, 2 errors: 5 errors, never more than 3 in a row.
    answers = iter([*[None] * 3, [1.0], *[None] * 2, [1.0], [1.0], [1.0]])

    def flaky(query: str) -> list[float]:
        value = next(answers)
        if value is None:
            raise OSError("connection refused")
        return value

    tally = canary.Tally(canary.checks(step())[0])
    clock = Clock()
    assert canary.run_analysis([tally], flaky, clock, clock.sleep) == "Successful"
    assert tally.measurements == ["Successful"] * 4
