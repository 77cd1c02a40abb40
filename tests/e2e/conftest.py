"""The drills run against the stack `make stack-up` started (make e2e does both, and stops it).

A stack that is not up fails the drills: they are never skipped. Tests marked `offline` test the
drills' own tools (make e2e-offline) and need no stack.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from deploy.docker import compose
from deploy.facts.generate import fact

ROOT = Path(__file__).resolve().parents[2]
os.chdir(ROOT)

CA = str(ROOT / ".work" / "certs" / "ca.crt")
STACK_URL = "https://127.0.0.1:8443"  # HAProxy's HTTPS port (compose.yaml)
SERVICE_PORT = int(fact("port"))  # each replica's, inside its container
SERVICES = (
    "etcd", "pg1", "pg2", "pgproxy", "app1", "app2", "app3", "haproxy", "prometheus", "traces",
)  # fmt: skip
TRACES_URL = f"http://127.0.0.1:{fact('otlp_port')}"  # the stack's trace receiver (`traces`)


@pytest.fixture(scope="session")
def stack_up() -> None:
    states = {s: compose.container_state(s) for s in SERVICES}
    unhealthy = {s: state for s, state in states.items() if state != "healthy"}
    if unhealthy:
        pytest.fail(f"the stack is not up and healthy (make stack-up): {unhealthy}")


@pytest.fixture(autouse=True)
def stack(request: pytest.FixtureRequest) -> None:
    """Every drill needs the stack; tests marked `offline` (the drills' own tools) do not."""
    if request.node.get_closest_marker("offline") is None:
        request.getfixturevalue("stack_up")


@pytest.fixture(scope="session")
def ca() -> str:
    return CA


@pytest.fixture(scope="session")
def api_key() -> str:
    """An admin key made with the service's own CLI inside a replica."""
    out = compose.run_in(
        "app1",
        "registro",
        "keys",
        "create",
        f"e2e-{uuid.uuid4().hex[:8]}",
        "--scopes",
        "read,write,admin",
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def head_commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def build_variant(label: str) -> tuple[str, str]:
    """The service image of this checkout, labelled as another revision (tag, commit), for
    drills that need a 'new release'. Only the revision label differs from the running one."""
    commit = f"{head_commit()[:12]}-{label}"
    tag = f"e2e-{label}"
    subprocess.run(
        ["make", "--no-print-directory", "image", f"TAG={tag}", f"GIT_COMMIT={commit}"],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return tag, commit


def replica_commit(service: str) -> str:
    out = compose.run_in(
        service,
        "python3",
        "-c",
        "import json, urllib.request as u;"
        f"print(json.load(u.urlopen('http://127.0.0.1:{SERVICE_PORT}/version', timeout=5))"
        "['commit'])",
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
