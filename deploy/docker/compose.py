"""The local stack's containers: docker-compose through deploy/docker/stack.sh, and docker.

Services are found by compose's labels (project `registro`), so every caller sees the same
container whether compose, a drill or a rollout started it.
"""

from __future__ import annotations

import os
import subprocess

STACK = ["deploy/docker/stack.sh"]
PROJECT = "registro"


def compose(*args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    result = subprocess.run(
        [*STACK, "compose", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"docker-compose {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def docker(*args: str, check: bool = True, timeout: float = 60) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def container(service: str) -> str | None:
    """The service's newest container (running or not), by compose's labels."""
    ids = docker(
        "ps",
        "-aq",
        "--filter",
        f"label=com.docker.compose.project={PROJECT}",
        "--filter",
        f"label=com.docker.compose.service={service}",
    ).split()
    return ids[0] if ids else None


def run_in(service: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`docker exec` of a command in the service's container; the caller judges the result."""
    cid = container(service)
    if cid is None:
        raise RuntimeError(f"{service} is not running")
    return subprocess.run(
        ["docker", "exec", cid, *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def container_state(service: str) -> str:
    """healthy / unhealthy / starting (a health check), running (none), exited or missing."""
    cid = container(service)
    if cid is None:
        return "missing"
    return (
        docker(
            "inspect",
            "-f",
            "{{if .State.Running}}{{if .State.Health}}{{.State.Health.Status}}"
            "{{else}}running{{end}}{{else}}exited{{end}}",
            cid,
            check=False,
        ).strip()
        or "missing"
    )


def running(cid: str) -> bool:
    return docker("inspect", "-f", "{{.State.Running}}", cid, check=False).strip() == "true"


def require_image(tag: str) -> None:
    if (
        subprocess.run(
            ["docker", "image", "inspect", f"registro:{tag}"], capture_output=True, check=False
        ).returncode
        != 0
    ):
        raise SystemExit(f"no image registro:{tag} (make image TAG={tag})")
