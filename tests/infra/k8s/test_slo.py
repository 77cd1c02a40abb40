"""The SLO defined once (deploy/slo/slo.yaml): what is generated from it is up to date, the rules
load and behave as the SRE workbook's burn-rate alerts should, and every alert leads to a runbook.

promtool is Debian's (package `prometheus`, the same 2.42 the stack's image runs); `promtool test
rules` evaluates the rules over the series a test gives and compares the alerts that fire
(https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/). The Prometheus
chart loads rule files from `serverFiles` (its values.yaml: `recording_rules.yml` and
`alerting_rules.yml`, listed in the default `prometheus.yml` as /etc/config/...).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml
from k8s_support import PLATFORM, REPO, Platform, require

from conftest import Service

SPEC = REPO / "deploy" / "slo" / "slo.yaml"
PROMETHEUS_DIR = REPO / "deploy" / "docker" / "prometheus"
LOCAL_RULES = PROMETHEUS_DIR / "slo.rules.yml"
SLO_TESTS = PROMETHEUS_DIR / "slo.test.yml"
CLUSTER_VALUES = PLATFORM / "values" / "prometheus.yaml"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return loaded


def seconds(duration: str) -> int:
    return sum(int(n) * UNITS[u] for n, u in re.findall(r"(\d+)([smhd])", duration))


def generate(out: Path, spec_file: Path = SPEC) -> list[Path]:
    """Run the generator into `out`; the files it wrote, relative to `out`."""
    subprocess.run(
        [sys.executable, "-m", "deploy.slo.generate", "--out", str(out), "--spec", str(spec_file)],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return [p.relative_to(out) for p in out.rglob("*") if p.is_file()]


def stale(out: Path, files: list[Path]) -> list[str]:
    return [str(f) for f in files if (out / f).read_text() != (REPO / f).read_text()]


def test_generated_files_match_the_spec(tmp_path: Path) -> None:
    files = generate(tmp_path)
    assert {f.name for f in files} == {
        "slo.rules.yml",
        "prometheus.yaml",
        "analysis-template.yaml",
        "slo.md",
    }
    assert not stale(tmp_path, files), "run `make slo` and commit what it changes"


def test_a_changed_spec_shows_as_drift(tmp_path: Path) -> None:
    """The comparison above can fail: a target changed in the spec changes every output."""
    changed = tmp_path / "slo.yaml"
    changed.write_text(SPEC.read_text().replace("target: 0.995", "target: 0.99"))
    assert changed.read_text() != SPEC.read_text()
    out = tmp_path / "out"
    files = generate(out, changed)
    assert len(stale(out, files)) == len(files)


def check(out: Path) -> subprocess.CompletedProcess[str]:
    """make slo-check, on the files under `out`."""
    return subprocess.run(
        [sys.executable, "-m", "deploy.slo.generate", "--check", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_passes_when_up_to_date_and_names_a_drifted_file(tmp_path: Path) -> None:
    generate(tmp_path)
    assert check(tmp_path).returncode == 0
    rules = tmp_path / LOCAL_RULES.relative_to(REPO)
    rules.write_text(rules.read_text() + "# edited by hand\n")
    drifted = check(tmp_path)
    assert drifted.returncode == 1
    assert str(LOCAL_RULES.relative_to(REPO)) in drifted.stdout
    assert "analysis-template.yaml" not in drifted.stdout
    generate(tmp_path)  # make slo puts it back
    assert check(tmp_path).returncode == 0


def cluster_rule_files() -> dict[str, Any]:
    files: dict[str, Any] = yaml.safe_load(CLUSTER_VALUES.read_text())["serverFiles"]
    return files


def test_the_clusters_run_the_local_stacks_rules() -> None:
    files = cluster_rule_files()
    assert set(files) == {"recording_rules.yml", "alerting_rules.yml"}
    local = yaml.safe_load(LOCAL_RULES.read_text())["groups"]
    assert files["recording_rules.yml"]["groups"] + files["alerting_rules.yml"]["groups"] == local
    assert all("record" in r for g in files["recording_rules.yml"]["groups"] for r in g["rules"])
    assert all("alert" in r for g in files["alerting_rules.yml"]["groups"] for r in g["rules"])


def test_the_chart_puts_the_rules_where_its_prometheus_reads_them(platform: Platform) -> None:
    """Rendered as bootstrap installs it: the server's ConfigMap holds both rule files, and its
    prometheus.yml lists them (mounted at /etc/config)."""
    config = platform.one("ConfigMap", "prometheus-server", "monitoring")["data"]
    local = yaml.safe_load(LOCAL_RULES.read_text())["groups"]
    rendered = [yaml.safe_load(config[f])["groups"] for f in cluster_rule_files()]
    assert rendered[0] + rendered[1] == local
    rule_files = yaml.safe_load(config["prometheus.yml"])["rule_files"]
    assert {f"/etc/config/{f}" for f in cluster_rule_files()} <= set(rule_files)


def test_the_clusters_keep_data_for_the_whole_window() -> None:
    values = yaml.safe_load(CLUSTER_VALUES.read_text())
    assert seconds(values["server"]["retention"]) >= seconds(spec()["window"])


def promtool() -> str:
    found = shutil.which("promtool")
    require(found is not None, "promtool is not installed (apt-get install prometheus)")
    assert found
    return found


def test_the_rules_load_in_prometheus(tmp_path: Path) -> None:
    files = [LOCAL_RULES]
    for name, content in cluster_rule_files().items():
        files.append(tmp_path / name)
        files[-1].write_text(yaml.safe_dump(content))
    result = subprocess.run(
        [promtool(), "check", "rules", *map(str, files)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_as_the_workbook_says(tmp_path: Path) -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", SLO_TESTS.name],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(LOCAL_RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def test_every_alert_is_tested_firing_and_silent() -> None:
    """slo.test.yml has, for each generated alert, a case where it fires and one where it
    stays silent (including the low-traffic guard, which has a case per objective)."""
    cases = [
        check
        for test in yaml.safe_load(SLO_TESTS.read_text())["tests"]
        for check in test["alert_rule_test"]
    ]
    names = {a["alert"] for a in alerts()}
    assert len(names) == 2 * len(spec()["objectives"])
    for name in names:
        outcomes = [bool(c["exp_alerts"]) for c in cases if c["alertname"] == name]
        assert True in outcomes, f"{name}: no case where it fires"
        assert False in outcomes, f"{name}: no case where it stays silent"
    guard = spec()["alerts"]["min_request_rate"]
    text = SLO_TESTS.read_text()
    assert f"guard of {guard}" in text, "the low-traffic case names the spec's guard"


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_every_alert_has_a_runbook_that_exists() -> None:
    for alert in alerts():
        url = alert["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        runbook = REPO / path
        assert runbook.is_file(), (alert["alert"], url)
        assert anchor in anchors(runbook.read_text()), (alert["alert"], url)
        assert alert["labels"]["severity"] == anchor, alert["alert"]


def test_the_latency_threshold_is_a_bucket_the_service_exports(service: Service) -> None:
    """A share under a threshold is exact only at a bucket boundary: the service's histogram
    must have a bucket `le` equal to the one the SLI reads."""
    for _ in range(3):
        httpx.get(f"{service.url}/data", timeout=5)
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    histogram = spec()["metrics"]["latency"]
    exported = set(re.findall(rf'^{histogram}_bucket{{.*le="([^"]+)"', text, re.M))
    assert exported, "no latency histogram in /metrics"
    thresholds = [
        o["threshold_seconds"] for o in spec()["objectives"].values() if o["sli"] == "latency"
    ]
    assert thresholds
    for threshold in thresholds:
        assert repr(float(threshold)) in exported, (threshold, sorted(exported))
        assert f'le="{float(threshold)!r}"' in LOCAL_RULES.read_text()


def test_the_canary_judges_the_albs_own_errors_against_the_same_budget() -> None:
    """R4: 5xx the ALB answers itself (HTTPCode_ELB_5XX_Count: no healthy target, a target gone,
    a timeout; Elastic Load Balancing, "CloudWatch metrics for your Application Load Balancer",
    which reports it only when non-zero and each minute) never reach the service's counters. The
    template reads them through Argo Rollouts' cloudWatch provider (argo-rollouts v1.9.0
    docs/analysis/cloudwatch.md: GetMetricData queries, `result[0].Values`), as a share of the
    ALB's requests in dimension LoadBalancer = the load-balancer arg, and fails above the share of
    bad requests success-rate fails above."""
    template = yaml.safe_load(
        (REPO / "deploy" / "k8s" / "base" / "analysis-template.yaml").read_text()
    )
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    success = re.search(r">= ([\d.]+)$", metrics["success-rate"]["successCondition"])
    assert success
    most = str(1 - Decimal(success.group(1)))
    alb = metrics["load-balancer-errors"]
    assert alb["successCondition"].endswith(f"all(result[0].Values, {{# <= {most}}})")
    assert alb["failureCondition"].endswith(f"any(result[0].Values, {{# > {most}}})")
    assert "len(result[0].Values) > 0" in alb["successCondition"]  # no data: inconclusive
    queries = alb["provider"]["cloudWatch"]["metricDataQueries"]
    returned = [q for q in queries if q.get("returnData", True)]
    assert [q["expression"] for q in returned] == ["FILL(elb5xx, 0) / requests"]
    stats = {q["id"]: q["metricStat"] for q in queries if "metricStat" in q}
    assert {i: s["metric"]["metricName"] for i, s in stats.items()} == {
        "elb5xx": "HTTPCode_ELB_5XX_Count",
        "requests": "RequestCount",
    }
    for stat in stats.values():
        assert stat["metric"]["namespace"] == "AWS/ApplicationELB"
        assert stat["metric"]["dimensions"] == [
            {"name": "LoadBalancer", "value": "{{args.load-balancer}}"}
        ]
        assert (stat["stat"], stat["period"]) == ("Sum", 60)
    assert {"name": "load-balancer"} in template["spec"]["args"]
    for field in ("interval", "count", "failureLimit", "inconclusiveLimit"):
        assert alb[field] == metrics["success-rate"][field], field
