"""The smoke test as it runs after a release: through the ALB, whose listener rules are the
rendered Ingress's (alb_rules.py models them from the AWS Load Balancer Controller's source and
documentation), in front of the real service started by conftest.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest
from alb_rules import alb, listener_rules, pattern_matches
from k8s_support import K8S, Manifests

from conftest import Service


def smoke(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.k8s.tools.smoke", url],
        cwd=K8S.parents[1],
        capture_output=True,
        text=True,
        env={**os.environ, "SMOKE_POLL_SECONDS": "0.2", **env},
        timeout=120,
    )


def test_the_modelled_listener_keeps_the_non_public_paths_off_the_service(
    manifests: Manifests, service: Service
) -> None:
    """The rules as the controller builds them (Exact first, Prefix longest first; Prefix /p is
    /p and /p/*): what the Ingress says is not public answers 404 at the ALB, the rest reaches the
    service."""
    with alb(manifests.one("Ingress", "registro"), service.url) as url:
        for path in ("/openapi.json", "/metrics", "/metrics/", "/docs", "/docs/oauth2-redirect"):
            answer = httpx.get(url + path)
            assert answer.status_code == 404, path
            assert answer.json() == {"message": "Not found"}, path
        for path in ("/livez", "/readyz", "/version", "/data?limit=1", "/docsx", "/metricsx"):
            forwarded = httpx.get(url + path)
            direct = httpx.get(service.url + path)
            assert (forwarded.status_code, forwarded.content) == (
                direct.status_code,
                direct.content,
            ), path


def test_alb_path_patterns_follow_the_controllers_rules() -> None:
    """kubernetes-sigs/aws-load-balancer-controller v3.5.0 pkg/ingress/model_build_listener_rules.go
    buildPathPatternsForPrefixPathType: Prefix `/` is `/*`; Prefix `/docs` is `/docs` and `/docs/*`
    (so not `/docsx`); Exact has no wildcard."""

    def path(path: str, path_type: str) -> dict[str, Any]:
        backend = {"service": {"name": "svc", "port": {"number": 80}}}
        return {"path": path, "pathType": path_type, "backend": backend}

    paths = [path("/", "Prefix"), path("/docs", "Prefix"), path("/x", "Exact")]
    ingress = {"metadata": {"annotations": {}}, "spec": {"rules": [{"http": {"paths": paths}}]}}
    rules = listener_rules(ingress)
    assert [r.patterns for r in rules] == [("/x",), ("/docs", "/docs/*"), ("/*",)]
    assert pattern_matches("/docs/*", "/docs/a/b")
    assert not pattern_matches("/docs/*", "/docsx")
    assert not pattern_matches("/docs", "/Docs")


def test_smoke_passes_through_the_alb(manifests: Manifests, service: Service) -> None:
    """B2: smoke reads only what the Ingress routes to the service; /openapi.json is answered by
    the ALB itself with a 404 (deploy/k8s/base/ingress.yaml), so reading it failed every smoke
    test after a release, and in production that rolls the release back."""
    with alb(manifests.one("Ingress", "registro"), service.url) as url:
        result = smoke(url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "writes without a key are refused" in result.stdout


def test_smoke_waits_for_healthy_targets(manifests: Manifests, service: Service) -> None:
    """R13: right after a release the ALB answers 503 until its targets pass their health checks
    (ELB troubleshooting, "HTTP 503"); smoke polls /readyz through the ALB until a deadline
    instead of failing on the first answer."""
    with alb(manifests.one("Ingress", "registro"), service.url, unhealthy_for=2) as url:
        result = smoke(url, SMOKE_WAIT_SECONDS="60")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "serving" in result.stdout


def test_smoke_gives_up_at_its_deadline_naming_what_it_waited_for(
    manifests: Manifests, service: Service
) -> None:
    with alb(manifests.one("Ingress", "registro"), service.url, unhealthy_for=600) as url:
        result = smoke(url, SMOKE_WAIT_SECONDS="1")
    assert result.returncode != 0
    assert "not serving" in result.stderr and "503" in result.stderr


def test_smoke_waits_for_the_name_to_resolve() -> None:
    """R13: ExternalDNS publishes the name a minute or more after the ALB exists (its --interval,
    then the record's propagation): an unresolvable name is waited for, then named."""
    result = smoke("http://registro-smoke.invalid", SMOKE_WAIT_SECONDS="1")
    assert result.returncode != 0
    assert "registro-smoke.invalid does not resolve" in result.stderr


@pytest.mark.parametrize("resolves_after", [0, 2])
def test_the_wait_polls_until_the_name_resolves(resolves_after: int) -> None:
    from deploy.k8s.tools import smoke as smoke_module

    attempts: list[str] = []

    def resolve(host: str) -> bool:
        attempts.append(host)
        return len(attempts) > resolves_after

    def ready(url: str) -> int:
        return 200

    smoke_module.wait_until_serving(
        "https://api.example.com", deadline_seconds=10, poll_seconds=0, resolve=resolve, ready=ready
    )
    assert attempts == ["api.example.com"] * (resolves_after + 1)


def requests_counted(service: Service) -> float:
    """Client requests the analysis counts: registro_http_requests_total outside platform-routes."""
    total = 0.0
    for line in httpx.get(service.url + "/metrics").text.splitlines():
        if line.startswith("registro_http_requests_total{") and not any(
            f'route="{r}"' in line for r in ("/livez", "/readyz", "/metrics")
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_release_traffic_is_what_the_analysis_counts(
    manifests: Manifests, service: Service
) -> None:
    """R1: deploy/k8s/tools/traffic.py, which release.sh runs while the canary is judged, reaches
    the service through the Ingress's rules on routes the analysis counts (not its
    platform-routes), so a quiet canary still gets a verdict."""
    before = requests_counted(service)
    with alb(manifests.one("Ingress", "registro"), service.url) as url:
        command = [sys.executable, "-m", "deploy.k8s.tools.traffic", url, "--rate", "20"]
        result = subprocess.run(
            [*command, "--seconds", "3"],
            cwd=K8S.parents[1],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    sent = re.search(r"traffic: sent (\d+): 200 x(\d+)$", result.stdout, re.M)
    assert sent and sent.group(1) == sent.group(2), result.stdout  # every one answered 200
    assert int(sent.group(2)) >= 1
    assert requests_counted(service) - before == int(sent.group(2))
