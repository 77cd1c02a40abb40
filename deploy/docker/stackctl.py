"""Release operations on the local stack: rolling update and canary, driven like production.

    python -m deploy.docker.stackctl rollout TAG
    python -m deploy.docker.stackctl canary TAG [--fault-error-rate 0.2]

Run from the repository root (the Makefile's rollout-local / canary-local do). Progress goes to
stderr; each step is also one JSON line on stdout so that the drills can check what happened.
The canary and its analysis are deploy/docker/canary.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STACK = ["deploy/docker/stack.sh"]
PROJECT = "registro"
STATE_ENV = Path(".work/stack/stack.env")
BACKEND = "registro"
STABLE = ("app1", "app2", "app3")
CANARY_SERVICE, CANARY_SERVER = "app-canary", "canary"

# HAProxy `show servers state`: operational state 2 is UP; admin state bits 0x01/0x20 are
# maintenance, 0x08 drain.
SRV_RUNNING = 2


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def event(kind: str, **fields: Any) -> None:
    print(json.dumps({"event": kind, "t": time.time(), **fields}), flush=True)


def wait_for(what: str, predicate: Any, timeout: float, interval: float = 0.2) -> float:
    """Poll until predicate() is true; return the seconds it took, or raise TimeoutError."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


# --- the stack: compose, containers, HAProxy's runtime API -----------------------------------


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


def docker(*args: str, check: bool = True, timeout: float = 60) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


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


def haproxy(command: str) -> str:
    cid = container("haproxy")
    if cid is None:
        raise RuntimeError("the haproxy container is not running")
    result = subprocess.run(
        ["docker", "exec", "-i", cid, "socat", "stdio", "unix-connect:/tmp/haproxy-admin.sock"],
        input=command + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return result.stdout


@dataclass
class Server:
    name: str
    op_state: int
    admin_state: int
    weight: int

    @property
    def up(self) -> bool:
        return self.op_state == SRV_RUNNING

    @property
    def in_pool(self) -> bool:
        """Receives new requests: up and neither in maintenance nor draining."""
        return self.up and self.admin_state == 0 and self.weight > 0


def servers() -> dict[str, Server]:
    rows = {}
    for line in haproxy(f"show servers state {BACKEND}").splitlines():
        parts = line.split()
        if len(parts) < 12 or parts[0].startswith("#") or parts[1] != BACKEND:
            continue
        rows[parts[3]] = Server(parts[3], int(parts[5]), int(parts[6]), int(parts[7]))
    return rows


def stat(server: str) -> dict[str, str]:
    """HAProxy's `show stat` row for one server (scur, check_status, check_code, ...)."""
    lines = haproxy("show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == BACKEND and row.get("svname") == server:
            return row
    raise RuntimeError(f"no server {server} in HAProxy's stats")


def sessions(server: str) -> int:
    """Requests HAProxy currently has open on this server."""
    return int(stat(server)["scur"] or 0)


def set_state(server: str, state: str) -> None:
    out = haproxy(f"set server {BACKEND}/{server} state {state}").strip()
    if out:
        raise RuntimeError(f"set server {server} state {state}: {out}")


def deployed_tag() -> str:
    for line in STATE_ENV.read_text().splitlines():
        if line.startswith("REGISTRO_TAG="):
            return line.split("=", 1)[1]
    raise RuntimeError(f"no REGISTRO_TAG in {STATE_ENV}: is the stack up (make stack-up)?")


def record_deployed_tag(tag: str) -> None:
    lines = [ln for ln in STATE_ENV.read_text().splitlines() if not ln.startswith("REGISTRO_TAG=")]
    STATE_ENV.write_text("\n".join([*lines, f"REGISTRO_TAG={tag}"]) + "\n")


def require_image(tag: str) -> None:
    if (
        subprocess.run(
            ["docker", "image", "inspect", f"registro:{tag}"], capture_output=True, check=False
        ).returncode
        != 0
    ):
        raise SystemExit(f"stackctl: no image registro:{tag} (make image TAG={tag})")


# --- replacing one replica --------------------------------------------------------------------


def drain_and_stop(service: str, server: str) -> None:
    """Take a replica out the way Kubernetes does, with the load balancer told first:
    out of HAProxy's pool (no new requests), in-flight requests finished, then SIGTERM; the
    service answers /readyz 503 while it drains and exits once its own requests are done."""
    set_state(server, "drain")
    event("drain", server=server)
    took = wait_for(f"{server}: in-flight requests to finish", lambda: sessions(server) == 0, 30)
    event("drained", server=server, seconds=round(took, 2))
    cid = container(service)
    if cid is None:
        return
    docker("kill", "--signal", "TERM", cid)
    event("sigterm", server=server)
    # The load balancer sees the draining replica's /readyz turn 503 (check status 503).
    saw_503 = _wait_quiet(lambda: stat(server)["check_code"] == "503", 15)
    event("readyz-503", server=server, seen=saw_503)
    wait_for(f"{service}: exit after SIGTERM", lambda: not _running(cid), 60)
    event(
        "stopped", server=server, exit_code=int(docker("inspect", "-f", "{{.State.ExitCode}}", cid))
    )


def _running(cid: str) -> bool:
    return docker("inspect", "-f", "{{.State.Running}}", cid, check=False).strip() == "true"


def _wait_quiet(predicate: Any, timeout: float) -> bool:
    try:
        wait_for("condition", predicate, timeout)
    except TimeoutError:
        return False
    return True


def start_and_enable(service: str, server: str, env: dict[str, str]) -> None:
    compose("up", "-d", "--no-deps", "--no-build", service, env=env)
    took = wait_for(f"{service}: healthy", lambda: container_state(service) == "healthy", 120, 1)
    set_state(server, "ready")
    took += wait_for(f"{server}: up in HAProxy", lambda: servers()[server].in_pool, 30)
    event("ready", server=server, seconds=round(took, 2))


def migrate(tag: str) -> None:
    """The release's migrations, before any replica runs it, as the Kubernetes Job does: the
    replicas still on the previous release keep serving on the newer schema (expand, contract).
    A failure stops the release with nothing replaced."""
    log(f"migrate: registro migrate with registro:{tag}")
    out = compose("run", "--rm", "--no-deps", "-T", "migrate", env={"REGISTRO_TAG": tag})
    event("migrated", tag=tag, output=out.strip().splitlines()[-1:])


def rollout(tag: str) -> None:
    require_image(tag)
    log(f"rollout: registro:{tag} on {', '.join(STABLE)}, one at a time")
    event("rollout-start", tag=tag, previous=deployed_tag())
    migrate(tag)
    for service in STABLE:
        others = [s for s in STABLE if s != service]
        if not all(servers()[s].in_pool for s in others):
            raise SystemExit(
                f"rollout: refusing to take {service} out while {others} are not all up"
            )
        log(f"rollout: {service}: drain, stop, replace")
        drain_and_stop(service, service)
        start_and_enable(service, service, {"REGISTRO_TAG": tag})
        log(f"rollout: {service} now runs registro:{tag}")
    record_deployed_tag(tag)
    event("rollout-done", tag=tag)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("rollout").add_argument("tag")
    canary_args = commands.add_parser("canary")
    canary_args.add_argument("tag")
    canary_args.add_argument("--fault-error-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.command == "rollout":
        rollout(args.tag)
        return 0
    from deploy.docker import canary  # imports this module: only when asked for

    return canary.canary(args.tag, args.fault_error_rate)


if __name__ == "__main__":
    sys.exit(main())
