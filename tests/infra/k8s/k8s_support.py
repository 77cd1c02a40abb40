"""Helpers for the Kubernetes checks: render a release and the platform as the pipeline does.

Every overlay is rendered with `kubectl kustomize` exactly as a release is (deploy/k8s/release.sh
render), with the overlay's placeholder outputs and a fixed image digest; the platform
with deploy/k8s/tools/platform_values.py and `helm template` of the upstream charts at the
pinned versions.
"""

from __future__ import annotations

import json
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
PLATFORM = K8S / "platform"
UPSTREAM = (REPO / os.environ.get("PLATFORM_UPSTREAM", "../shared/upstream")).resolve()
HELM = os.environ.get("HELM") or shutil.which("helm") or ""


def k8s_version() -> str:
    """The clusters' Kubernetes minor, as the Makefile defines it (K8S_VERSION)."""
    match = re.search(r"^K8S_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert match, "Makefile: no K8S_VERSION"
    return match.group(1)


def table(path: Path) -> list[list[str]]:
    """The rows of a whitespace-separated table file (deploy/k8s/platform/charts, ...)."""
    rows = [line.split() for line in path.read_text().splitlines()]
    return [row for row in rows if row and not row[0].startswith("#")]


def read_outputs(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def overlay_outputs(overlay: str) -> dict[str, str]:
    return read_outputs(K8S / "overlays" / overlay / "cloudformation-outputs.env")


def require(condition: bool, reason: str) -> None:
    """A missing tool or test input fails the test, saying how to get it: make verify-k8s
    installs its tools and checks its inputs before the tests run, so there is nothing to skip."""
    if not condition:
        pytest.fail(reason)


def require_upstream(path: Path) -> None:
    """The upstream charts and CRDs are test data beside the clone (../shared/upstream); where
    there is none, the skip (or, in CI, the failure) says how to build the same layout."""
    require(
        path.is_dir(),
        f"{path} is missing: `make platform-upstream` pulls the pinned charts and CRDs into "
        "the same layout in .work/upstream (then PLATFORM_UPSTREAM=.work/upstream)",
    )


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
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                env[var["name"]] = "<from " + next(iter(var["valueFrom"])) + ">"
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


@dataclass(frozen=True)
class Chart:
    release: str
    namespace: str
    version: str
    repository: str

    @property
    def source(self) -> Path:
        return UPSTREAM / "charts" / f"{self.release}-{self.version}"


CHARTS = [Chart(*row) for row in table(PLATFORM / "charts")]


def flatten(docs: list[Any]) -> list[dict[str, Any]]:
    """Documents, with each `List` replaced by its items (as the API server applies them)."""
    out: list[dict[str, Any]] = []
    for doc in docs:
        if doc and doc.get("kind") == "List":
            out.extend(flatten(doc["items"]))
        elif doc:
            out.append(doc)
    return out


def render_platform(overlay: str, out: Path, k8s_version: str) -> Path:
    """Everything bootstrap installs for `overlay`: DIR/<release>.yaml per chart (CRDs included)
    and DIR/manifests.yaml, rendered with the overlay's placeholder outputs."""
    require(bool(HELM) and Path(HELM).exists(), "helm is not installed (make helm)")
    require_upstream(UPSTREAM)
    outputs = K8S / "overlays" / overlay / "cloudformation-outputs.env"
    repository = github_repository(overlay)
    subprocess.run(
        [
            "python3",
            "-m",
            "deploy.k8s.tools.platform_values",
            str(outputs),
            str(out),
            f"GitHubRepository={repository}",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    for chart in CHARTS:
        rendered = subprocess.run(
            [
                HELM,
                "template",
                chart.release,
                str(chart.source),
                "--namespace",
                chart.namespace,
                "--include-crds",
                "--kube-version",
                k8s_version,
                "--values",
                str(out / "values" / f"{chart.release}.yaml"),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        (out / f"{chart.release}.yaml").write_text(rendered.stdout)
    return out


def github_repository(overlay: str) -> str:
    """What release.sh bootstrap passes the platform besides the outputs: the repository whose
    release workflow signs the images (deploy/aws/environments/ENV.json)."""
    values = json.loads((REPO / "deploy" / "aws" / "environments" / f"{overlay}.json").read_text())
    return str(values["GitHubRepository"])


@dataclass(frozen=True)
class Platform:
    """What `make bootstrap-k8s` installs for one overlay, rendered: each chart's documents (by
    release) and the platform's own manifests."""

    overlay: str
    directory: Path
    charts: dict[str, list[dict[str, Any]]]
    manifests: list[dict[str, Any]]
    policies: list[dict[str, Any]]  # applied after the charts, whose CRDs they need

    @property
    def docs(self) -> list[dict[str, Any]]:
        return [d for docs in self.charts.values() for d in docs] + self.manifests + self.policies

    def one(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        found = [
            d
            for d in self.docs
            if d["kind"] == kind
            and d["metadata"]["name"] == name
            and namespace in (None, d["metadata"].get("namespace"))
        ]
        assert len(found) == 1, f"{self.overlay}: expected one {kind} {name}, got {len(found)}"
        return found[0]
