"""Fixtures for the Kubernetes checks: each overlay's rendered release, and the real service."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from k8s_support import (
    CHARTS,
    OVERLAYS,
    REPO,
    Manifests,
    Platform,
    flatten,
    k8s_version,
    render_platform,
    render_release,
    require,
)


@pytest.fixture(scope="session", params=OVERLAYS)
def manifests(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Manifests:
    path = render_release(request.param, tmp_path_factory.mktemp(f"release-{request.param}"))
    return Manifests(request.param, [d for d in yaml.safe_load_all(path.read_text()) if d])


@pytest.fixture(scope="session")
def platform(manifests: Manifests, tmp_path_factory: pytest.TempPathFactory) -> Platform:
    out = render_platform(
        manifests.overlay, tmp_path_factory.mktemp(f"platform-{manifests.overlay}"), k8s_version()
    )

    def load(path: Path) -> list[dict[str, Any]]:
        return flatten(list(yaml.safe_load_all(path.read_text())))

    charts = {c.release: load(out / f"{c.release}.yaml") for c in CHARTS}
    return Platform(
        manifests.overlay, out, charts, load(out / "manifests.yaml"), load(out / "policies.yaml")
    )


@dataclass(frozen=True)
class Service:
    url: str
    env: dict[str, str]
    python: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def service_bin() -> Path:
    bin_dir = Path(os.environ.get("REGISTRO_VENV", REPO / ".venv")) / "bin"
    require(
        (bin_dir / "registro").exists(), f"the service is not installed in {bin_dir} (make venv)"
    )
    return bin_dir


@pytest.fixture(scope="session")
def service(
    manifests: Manifests, service_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The real service, started with the overlay's own environment.

    Only what points into the cluster is replaced: the database (a temporary SQLite file) and
    its password file, the bind address and port (127.0.0.1, a free port), the metrics
    directory, the trace agent (a free port on 127.0.0.1 where nothing listens: the agent down).
    """
    tmp = tmp_path_factory.mktemp(f"service-{manifests.overlay}")
    (tmp / "metrics").mkdir()
    (tmp / "password").write_text("unused by SQLite\n")
    env = manifests.container_environment()
    env.update(
        DATABASE_URL=f"sqlite:///{tmp / 'registro.db'}",
        REGISTRO_HOST="127.0.0.1",
        REGISTRO_PORT=str(free_port()),
        PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics"),
        REGISTRO_DATABASE_PASSWORD_FILE=str(tmp / "password"),
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
    )
    process_env = {"PATH": os.environ["PATH"], "HOME": str(tmp), **env}
    registro = str(service_bin / "registro")
    migrate = subprocess.run([registro, "migrate"], env=process_env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stderr
    url = f"http://127.0.0.1:{env['REGISTRO_PORT']}"
    with (tmp / "service.log").open("w") as log:
        proc = subprocess.Popen([registro, "serve"], env=process_env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 90  # a loaded CI machine starts it slowly
            while True:
                assert proc.poll() is None, (tmp / "service.log").read_text()
                try:
                    if httpx.get(f"{url}/livez", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the service did not answer /livez in 90 s"
                time.sleep(0.2)
            yield Service(url=url, env=env, python=service_bin / "python")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
