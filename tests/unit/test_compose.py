"""compose.yaml lets every container running the service shut down without cutting requests.

Docker sends SIGTERM, then SIGKILL once stop_grace_period has passed. In between the service
drains for REGISTRO_DRAIN_SECONDS (still serving, /readyz 503), then stops accepting and gives
in-flight requests up to registro.server.GRACEFUL_SHUTDOWN_SECONDS.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from registro.server import GRACEFUL_SHUTDOWN_SECONDS
from registro.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
GO_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def seconds(duration: str) -> float:
    """A compose duration (Go syntax: 40s, 1m30s, 500ms) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * GO_DURATION_UNITS[u] for n, u in parts)


def serving_containers() -> dict[str, dict[str, Any]]:
    """The services that run the service image with its own command (`registro serve`)."""
    services: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return {
        name: s
        for name, s in services.items()
        if s["image"].startswith("registro:") and "command" not in s
    }


def test_seconds_reads_go_durations() -> None:
    assert [seconds(d) for d in ("40s", "1m30s", "1.5s", "500ms")] == [40, 90, 1.5, 0.5]


def test_grace_period_covers_drain_and_in_flight_requests() -> None:
    containers = serving_containers()
    assert {"app1", "app2", "app3", "app-canary"} <= set(containers), set(containers)
    default_drain = Settings.model_fields["drain_seconds"].default
    for name, service in containers.items():
        drain = float(service.get("environment", {}).get("REGISTRO_DRAIN_SECONDS", default_drain))
        grace = seconds(service.get("stop_grace_period", "10s"))  # compose's default
        assert grace >= drain + GRACEFUL_SHUTDOWN_SECONDS, (name, grace, drain)
