"""The alert rules, unit-tested with promtool inside the Prometheus image the stack runs."""

from __future__ import annotations

import subprocess


def test_alert_rules_pass_promtool_tests() -> None:
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
            "/etc/prometheus/alerts.test.yml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
