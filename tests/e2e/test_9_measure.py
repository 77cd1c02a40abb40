"""`make measure` (tests/e2e/measure.py): run once against the local stack as an operator would
against a deployment, and, offline, its refusals of bad arguments and its canary verdict."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e import measure, report, timeline
from tests.e2e.conftest import CA, ROOT, STACK_URL

LOCAL_PROMETHEUS = "http://127.0.0.1:9090"  # compose.yaml publishes it here
LOCAL_PLAIN_HTTP = "http://127.0.0.1:8080"  # HAProxy's redirecting port (compose.yaml)
FAKE_KEY = "not-a-real-key"
EMPTY = "<an empty file>"


def run_measure(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.e2e.measure", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.offline
@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (None, "the following arguments are required: --url, --api-key-file, --prometheus-url"),
        ({"--url": ""}, "no URL: make measure URL=https://..."),
        ({"--url": "ftp://example.com"}, "URL must be an http:// or https:// URL with a host"),
        ({"--api-key-file": "/nonexistent/key"}, "cannot read the API key file"),
        ({"--api-key-file": EMPTY}, "must hold the key on one line"),
        ({"--prometheus-url": "127.0.0.1:9090"}, "PROMETHEUS_URL must be an http:// or https://"),
        ({"--prometheus-url": "http://127.0.0.1:1"}, "Prometheus at http://127.0.0.1:1 does not"),
        ({"--ca-file": "/nonexistent/ca.crt"}, "cannot load the CA file"),
        ({"--seconds": "0"}, "--seconds must be above 0 and at most 600"),
        ({"--seconds": "3600"}, "--seconds must be above 0 and at most 600"),
        ({"--rate": "1000"}, "--rate must be above 0 and at most 50"),
        ({"--slo-window": "5q"}, "--slo-window: slo: '5q' is not a Prometheus duration"),
    ],
)
def test_bad_arguments_stop_it_with_one_line_before_anything_is_sent(
    overrides: dict[str, str] | None, says: str, tmp_path: Path
) -> None:
    """Each bad argument: exit 2, one line on stderr naming it, nothing on stdout, no report.
    The other arguments are good, but for Prometheus (port 1: nothing listens), which is asked
    last, after every argument was checked."""
    key_file, empty = tmp_path / "key", tmp_path / "empty"
    key_file.write_text(f"{FAKE_KEY}\n")
    empty.write_text("")
    out = tmp_path / "reports"
    argv: list[str] = []
    if overrides is not None:
        given = {
            "--url": "https://127.0.0.1:1",
            "--api-key-file": str(key_file),
            "--prometheus-url": "http://127.0.0.1:1",
            "--out": str(out),
            **overrides,
        }
        argv = [x for k, v in given.items() for x in (k, str(empty) if v == EMPTY else v)]
    result = run_measure(*argv)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("measure: ") and says in lines[0], lines
    assert FAKE_KEY not in result.stderr
    assert result.stdout == ""
    assert not out.exists()


@pytest.mark.offline
@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.0, "pass"), (0.5, "abort"), (None, "inconclusive"), (math.nan, "inconclusive")],
)
def test_the_canary_verdict_is_the_templates_checks_judged_as_argo_does(
    value: float | None, expected: str
) -> None:
    """The checks the AnalysisTemplate is rendered from (deploy/slo/generate.py, canary_checks),
    judged on a result as Argo Rollouts judges a measurement: a true failureCondition fails it,
    an empty result or NaN (neither condition true) is inconclusive
    (https://argo-rollouts.readthedocs.io/en/stable/features/analysis/, "Inconclusive Runs";
    argoproj/argo-rollouts utils/evaluate/evaluate.go, EvaluateResult)."""
    step = measure.local_canary.first_canary_step(ROOT / measure.local_canary.ROLLOUT)
    checks = measure.local_canary.checks(step, measure.stable_service())
    result = [] if value is None else [value]
    phases = [measure.local_canary.judge(c, result) for c in checks]
    assert len(checks) == 2 and measure.verdict(phases) == expected


def test_make_measure_against_the_local_stack(api_key: str, tmp_path: Path) -> None:
    """The one command an operator runs after a deploy, pointed at the local stack: it exits 0,
    writes the drills' report (results, page, a timeline image that plots every request) into
    a new folder, and neither prints nor writes the key."""
    key_file = tmp_path / "key"
    key_file.write_text(api_key + "\n")
    out = tmp_path / "reports"
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "measure",
            f"URL={STACK_URL}",
            f"API_KEY_FILE={key_file}",
            f"PROMETHEUS_URL={LOCAL_PROMETHEUS}",
            f"CA_FILE={CA}",
            f"HTTP_URL={LOCAL_PLAIN_HTTP}",
            "MEASURE_SECONDS=70",  # the canary's 1m rate window is then all the load's traffic
            f"MEASURE_OUT={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (folder,) = out.iterdir()
    entry = json.loads((folder / report.RESULTS_NAME).read_text())[measure.DRILL]
    assert entry["passed"], entry["measurements"]
    shown = timeline.embedded(folder / entry["timeline"]["image"])
    assert shown["requests"] == entry["measurements"]["load"]["requests"] > 0
    assert f"]({entry['timeline']['image']})" in (folder / report.PAGE_NAME).read_text()
    written = [p.read_bytes() for p in folder.rglob("*") if p.is_file()]
    assert api_key not in result.stdout + result.stderr
    assert not any(api_key.encode() in content for content in written)
