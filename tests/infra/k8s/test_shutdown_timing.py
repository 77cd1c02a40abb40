"""No request is dropped when a pod goes away: the shutdown numbers fit together.

Timeline after the API server marks a pod for deletion (docs/delivery.md):
  t=0         the pod leaves the endpoints; the ALB controller starts deregistering the target,
              which the ALB applies within seconds; meanwhile preStop sleeps and the pod serves.
  preStop     SIGTERM: the service drains for REGISTRO_DRAIN_SECONDS (/readyz 503, still serving),
  + drain     then stops accepting, finishes its in-flight requests and exits.
  + in-flight at most registro.server.GRACEFUL_SHUTDOWN_SECONDS (read from the service itself).
Both the kubelet's grace period and the ALB's deregistration delay must outlast all of it, or a
request still in flight is cut (by SIGKILL, or by the ALB closing the connection).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from k8s_support import Manifests

# How long the ALB may keep sending new requests after deregistration starts (controller reaction
# plus ALB propagation; AWS suggests a preStop of at least this much).
DEREGISTRATION_PROPAGATION_SECONDS = 10


@pytest.fixture(scope="module")
def in_flight(service_bin: Path) -> int:
    """How long the service gives in-flight requests once it stops accepting (its own constant)."""
    out = subprocess.run(
        [
            str(service_bin / "python"),
            "-c",
            "import registro.server as s; print(s.GRACEFUL_SHUTDOWN_SECONDS)",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(float(out.stdout))


def timings(m: Manifests) -> dict[str, int]:
    pod = m.one("Rollout")["spec"]["template"]["spec"]
    container = m.server_container()
    attributes = m.one("Ingress")["metadata"]["annotations"][
        "alb.ingress.kubernetes.io/target-group-attributes"
    ]
    delay = re.search(r"deregistration_delay\.timeout_seconds=(\d+)", attributes)
    assert delay, attributes
    return {
        "pre_stop": container["lifecycle"]["preStop"]["sleep"]["seconds"],
        "drain": int(float(m.container_environment()["REGISTRO_DRAIN_SECONDS"])),
        "grace": pod["terminationGracePeriodSeconds"],
        "deregistration": int(delay.group(1)),
    }


def test_pre_stop_outlasts_deregistration_propagation(manifests: Manifests) -> None:
    assert timings(manifests)["pre_stop"] >= DEREGISTRATION_PROPAGATION_SECONDS


def test_grace_period_covers_pre_stop_drain_and_in_flight(
    manifests: Manifests, in_flight: int
) -> None:
    t = timings(manifests)
    assert t["pre_stop"] + t["drain"] + in_flight <= t["grace"], (t, in_flight)


def test_alb_keeps_connections_until_the_pod_is_done(manifests: Manifests, in_flight: int) -> None:
    t = timings(manifests)
    assert t["pre_stop"] + t["drain"] + in_flight <= t["deregistration"], (t, in_flight)
    # ...and lets them go before the kubelet would kill the pod anyway.
    assert t["deregistration"] <= t["grace"], t
