"""The alert rules, unit-tested with promtool inside the Prometheus image the stack runs: the
stack's own (alerts.test.yml) and the SLO's (slo.test.yml, on the rules generated from
deploy/slo/slo.yaml; `make verify-k8s` runs it with Debian's promtool too)."""

from __future__ import annotations

import subprocess

import pytest


@pytest.mark.parametrize("tests", ["alerts.test.yml", "slo.test.yml"])
def test_alert_rules_pass_promtool_tests(tests: str) -> None:
    result = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--entrypoint",
            "promtool",
            "registro-prometheus:local",
            "test",
            "rules",
            f"/etc/prometheus/{tests}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
