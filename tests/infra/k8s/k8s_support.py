"""Helpers for the Kubernetes checks: render a release as the pipeline does, and read it.

Every overlay is rendered with `kubectl kustomize` exactly as a release is (deploy/k8s/release.sh
render), with the overlay's placeholder outputs and a fixed image digest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
TEST_IMAGE = "000000000000.dkr.ecr.eu-west-1.amazonaws.com/registro@sha256:" + "ab" * 32
IN_CI = os.environ.get("CI") == "true"


def require(condition: bool, reason: str) -> None:
    """Skip locally when a tool is missing; in CI a missing tool is a failure, never a skip."""
    if not condition:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass(frozen=True)
class Manifests:
    overlay: str
    docs: list[dict[str, Any]]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        """The one `kind` named `name`; a generated ConfigMap or Secret also by its name before
        kustomize added the content hash (as replacements select it)."""
        found = [d for d in self.all(kind) if name is None or _named(d, name)]
        assert len(found) == 1, (
            f"{self.overlay}: expected one {kind} {name or ''}, got {len(found)}"
        )
        return found[0]

    def pod_templates(self) -> dict[str, dict[str, Any]]:
        """Every pod template that ships, keyed by Kind/name."""
        return {
            f"{d['kind']}/{d['metadata']['name']}": d["spec"]["template"]
            for d in self.docs
            if d["kind"] in {"Rollout", "Job", "Deployment", "StatefulSet", "DaemonSet"}
        }

    def server_container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.one("Rollout")["spec"]["template"]["spec"][
            "containers"
        ]
        assert len(containers) == 1
        return containers[0]

    def container_environment(self) -> dict[str, str]:
        """The environment the Rollout gives the service: its ConfigMap plus its own env."""
        container = self.server_container()
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env.update(self.one("ConfigMap", source["configMapRef"]["name"])["data"])
        for var in container.get("env", []):
            env[var["name"]] = var.get("value", "<from " + next(iter(var["valueFrom"])) + ">")
        return env


def _named(doc: dict[str, Any], name: str) -> bool:
    actual: str = doc["metadata"]["name"]
    hashed = doc["kind"] in {"ConfigMap", "Secret"} and re.fullmatch(
        rf"{re.escape(name)}-[a-z0-9]{{10}}", actual
    )
    return actual == name or bool(hashed)


def render_release(overlay: str, out: Path) -> Path:
    require(shutil.which("kubectl") is not None, "kubectl is not installed")
    outputs = K8S / "overlays" / overlay / "cloudformation-outputs.env"
    subprocess.run(
        [str(K8S / "release.sh"), "render", overlay, TEST_IMAGE, str(outputs), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out / "manifests.yaml"
