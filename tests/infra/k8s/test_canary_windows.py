"""The canary's queries fit the interval Prometheus scrapes at, here and in production.

rate() needs at least two samples inside its window
(https://prometheus.io/docs/prometheus/latest/querying/functions/#rate); a range of at least four
scrape intervals keeps one missed scrape from leaving it empty (the rule Grafana's
$__rate_interval applies: https://grafana.com/docs/grafana/latest/datasources/prometheus/
template-variables/#use-__rate_interval). A 1m window over 1m scrapes was the production defect:
every measurement inconclusive.
"""

from __future__ import annotations

import re

import yaml
from k8s_support import K8S, PLATFORM, REPO, Manifests

LOCAL = REPO / "deploy" / "docker" / "prometheus" / "prometheus.yml"
UNITS = {"s": 1, "m": 60, "h": 3600}


def seconds(duration: str) -> int:
    parts = re.findall(r"(\d+)([smh])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * UNITS[u] for n, u in parts)


def production_interval() -> int:
    values = yaml.safe_load((PLATFORM / "values" / "prometheus.yaml").read_text())
    return seconds(values["server"]["global"]["scrape_interval"])


def test_the_local_registro_jobs_scrape_at_the_global_interval() -> None:
    """The global interval is production's (both written from deploy/facts/facts.yaml): no job
    of the service's may scrape at another."""
    local = yaml.safe_load(LOCAL.read_text())
    for job in local["scrape_configs"]:
        if job["job_name"].startswith("registro"):
            assert "scrape_interval" not in job, job["job_name"]


def test_rate_windows_hold_four_scrapes(manifests: Manifests) -> None:
    interval = production_interval()
    for metric in manifests.one("AnalysisTemplate")["spec"]["metrics"]:
        if "prometheus" not in metric["provider"]:
            continue  # the ALB's CloudWatch metric: test_slo.py
        windows = re.findall(r"\[(\w+)\]", metric["provider"]["prometheus"]["query"])
        assert windows, metric["name"]
        for window in windows:
            assert seconds(window) >= 4 * interval, (metric["name"], window)
        # a measurement sees at least one new scrape
        assert seconds(metric["interval"]) >= interval, metric["name"]


def test_a_production_canary_is_decided_before_the_release_gives_up(manifests: Manifests) -> None:
    """Every pause and every analysis (count measurements, interval apart), at every weight, fits
    in release.sh's wait for the Rollout (ROLLOUT_TIMEOUT), with room for the pods to start."""
    metrics = manifests.one("AnalysisTemplate")["spec"]["metrics"]
    analysis = max(seconds(m["interval"]) * m["count"] for m in metrics)
    total = 0
    for step in manifests.one("Rollout")["spec"]["strategy"]["canary"]["steps"]:
        if "pause" in step:
            total += seconds(step["pause"]["duration"])
        if "analysis" in step:
            total += analysis
    match = re.search(r"ROLLOUT_TIMEOUT:-(\d+)", (K8S / "release.sh").read_text())
    assert match
    assert total <= int(match.group(1)) / 2, total
