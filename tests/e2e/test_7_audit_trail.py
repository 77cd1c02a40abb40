"""The audit trail on the stack: the client address is the one HAProxy saw, whatever the caller
writes in X-Forwarded-For; the request id is the service's; and the replicas' database role
cannot change the audit trail (they connect as registro_app, `migrate` as the owner)."""

from __future__ import annotations

import ipaddress
import json
import ssl
import uuid

import httpx
from deploy.docker import compose

from tests.e2e import load as loadgen
from tests.e2e.conftest import STACK_URL
from tests.e2e.report import conclude

FORGED = "198.51.100.66"
# Run inside a replica, with the replica's own DATABASE_URL and password file.
TAMPER = """
import asyncio, json, os, pathlib, asyncpg
STATEMENTS = [
    "ALTER TABLE audit DISABLE TRIGGER ALL",
    "UPDATE audit SET actor = 'mallory'",
    "DELETE FROM audit",
    "TRUNCATE audit",
]
async def main():
    password = pathlib.Path(os.environ["REGISTRO_DATABASE_PASSWORD_FILE"]).read_text().strip()
    connection = await asyncpg.connect(os.environ["DATABASE_URL"], password=password)
    outcome = {"role": await connection.fetchval("SELECT current_user")}
    for statement in STATEMENTS:
        try:
            await connection.execute(statement)
            outcome[statement] = "succeeded"
        except asyncpg.PostgresError as exc:
            outcome[statement] = exc.sqlstate
    await connection.close()
    print(json.dumps(outcome))
asyncio.run(main())
"""
INSUFFICIENT_PRIVILEGE = "42501"


def edge_subnet() -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    config = compose.docker("network", "inspect", "-f", "{{json .IPAM.Config}}", "registro_edge")
    return ipaddress.ip_network(json.loads(config)[0]["Subnet"])


def test_audit_trail_cannot_be_forged(ca: str, api_key: str) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    caller_id = f"e2e-{uuid.uuid4().hex[:8]}"
    with (
        loadgen.Load(
            base_url=STACK_URL, ca=ca, key=api_key, rate=20, concurrency=4, max_seconds=120
        ) as load,
        httpx.Client(
            base_url=STACK_URL, verify=ssl.create_default_context(cafile=ca), timeout=10
        ) as api,
    ):
        load.mark("forged write")
        forged = {"X-Forwarded-For": f"{FORGED}, {'x' * 150}", "X-Request-ID": caller_id}
        created = api.post("/data", json={"name": caller_id}, headers={**auth, **forged})
        entry = next(
            (
                e
                for e in api.get("/audit", params={"limit": 100}, headers=auth).json()
                if e.get("caller_request_id") == caller_id
            ),
            {},
        )
        load.mark("tampering from a replica")
        tamper = compose.run_in("app1", "python3", "-c", TAMPER)
        results = load.stop()
    outcome = json.loads(tamper.stdout) if tamper.returncode == 0 else {"error": tamper.stderr}
    client = entry.get("client")
    subnet = edge_subnet()
    conclude(
        "audit-trail",
        "Audit trail (forged addresses and request ids, the service's database role)",
        "Through HAProxy, a write whose X-Forwarded-For starts with a forged address and ends "
        "with a 150-character entry, and with the caller's own X-Request-ID; then, from inside "
        "a replica with its own credentials, statements that would disable or rewrite the audit "
        "trail. Under light load.",
        {
            "load": loadgen.summary(results),
            "write status": created.status_code,
            "recorded client": client,
            "edge network": str(subnet),
            "response X-Request-ID": created.headers.get("x-request-id"),
            "recorded request id": entry.get("request_id"),
            "from a replica": outcome,
        },
        {
            "the write succeeded": created.status_code == 200,
            "the recorded client is the one HAProxy saw (edge network), not the forged one": (
                client is not None and ipaddress.ip_address(client) in subnet
            ),
            "the request id is the service's, the caller's kept beside it": (
                entry.get("request_id") == created.headers.get("x-request-id") != caller_id
            ),
            "the replicas connect as registro_app": outcome.get("role") == "registro_app",
            "every tampering statement is refused for privileges": all(
                outcome.get(s) == INSUFFICIENT_PRIVILEGE for s in outcome if s != "role"
            )
            and len(outcome) == 5,
            "no failed request": not loadgen.failures(results),
        },
        load=load,
    )
