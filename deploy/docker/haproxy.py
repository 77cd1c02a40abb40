"""The local stack's load balancer, through HAProxy's runtime API (its admin socket, reached with
`docker exec ... socat`): the servers of the service's backend, their state, weight and open
requests (https://docs.haproxy.org/2.6/management.html, "show servers state", "show stat",
"set server")."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from deploy.docker import compose

BACKEND = "registro"

# `show servers state`: operational state 2 is UP; admin state bits 0x01/0x20 are maintenance,
# 0x08 drain.
SRV_RUNNING = 2


def send(command: str) -> str:
    """One runtime API command; its answer."""
    cid = compose.container("haproxy")
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
    for line in send(f"show servers state {BACKEND}").splitlines():
        parts = line.split()
        if len(parts) < 12 or parts[0].startswith("#") or parts[1] != BACKEND:
            continue
        rows[parts[3]] = Server(parts[3], int(parts[5]), int(parts[6]), int(parts[7]))
    return rows


def stat(server: str) -> dict[str, str]:
    """HAProxy's `show stat` row for one server (scur, check_status, check_code, ...)."""
    lines = send("show stat").splitlines()
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
    out = send(f"set server {BACKEND}/{server} state {state}").strip()
    if out:
        raise RuntimeError(f"set server {server} state {state}: {out}")


def set_weight(server: str, weight: int) -> None:
    out = send(f"set weight {BACKEND}/{server} {weight}").strip()
    if out:
        raise RuntimeError(f"set weight: {out}")
