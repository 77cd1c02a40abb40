"""Traces on the stack: one request through HAProxy is one trace at the stack's receiver (which
stands in for the CloudWatch agent and X-Ray, docs/decisions/telemetry-export.md), with the
server span and its database spans, and the trace id is the one in its access log line and its
audit row. With the receiver stopped, requests still answer at once.

The request carries a sampled W3C traceparent (https://www.w3.org/TR/trace-context/, version 00,
flags 01): the replicas' parent-based sampler follows a caller's decision (OpenTelemetry SDK,
ParentBased sampler), so the drill's request is traced whatever the stack's ratio."""

from __future__ import annotations

import json
import os
import ssl
import statistics
import time
import urllib.request
import uuid
from typing import Any

import httpx
from deploy.docker import compose
from deploy.docker.progress import wait_for

from tests.e2e import load as loadgen
from tests.e2e.conftest import STACK_URL, TRACES_URL
from tests.e2e.report import conclude

REPLICAS = ("app1", "app2", "app3")
PROBES = 40  # traced requests with the receiver up, then as many with it stopped
PROMPT_SECONDS = 1.0  # the slowest of them, either way


def traceparent() -> tuple[str, str, str]:
    """A sampled traceparent whose trace id begins with the time, as X-Ray wants them."""
    trace_id = f"{int(time.time()):08x}{uuid.uuid4().hex[:24]}"
    parent = os.urandom(8).hex()
    return f"00-{trace_id}-{parent}-01", trace_id, parent


def spans_of(trace_id: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{TRACES_URL}/spans?trace_id={trace_id}", timeout=5) as r:  # noqa: S310
        spans: list[dict[str, Any]] = json.load(r)
    return spans


def wait_for_trace(trace_id: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The trace's spans once its server span and a database span have arrived (the replicas
    export in batches, OTEL_BSP_SCHEDULE_DELAY in compose.yaml)."""
    deadline = time.monotonic() + timeout
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        spans = spans_of(trace_id)
        kinds = {s["kind"] for s in spans}
        if {"SERVER", "CLIENT"} <= kinds:
            time.sleep(2)  # the rest of the batch
            return spans_of(trace_id)
        time.sleep(0.5)
    return spans


def access_line(request_id: str) -> dict[str, Any]:
    """The replica's access log line of the request (docker logs: the service's stdout)."""
    for replica in REPLICAS:
        cid = compose.container(replica)
        if cid is None:
            continue
        logs = compose.docker("logs", "--since", "10m", cid)
        for line in logs.splitlines():
            if request_id in line and line.startswith("{"):
                entry: dict[str, Any] = json.loads(line)
                if entry.get("logger") == "registro.access" and entry["request_id"] == request_id:
                    return entry
    return {}


def receiver_healthy() -> bool:
    return compose.container_state("traces") == "healthy"


def timed_writes(api: httpx.Client, auth: dict[str, str], label: str) -> list[float]:
    seconds = []
    for i in range(PROBES):
        header, _, _ = traceparent()
        started = time.perf_counter()
        response = api.post(
            "/data",
            json={"name": f"trace-{label}-{i}-{uuid.uuid4().hex[:6]}"},
            headers={**auth, "traceparent": header},
        )
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return seconds


def test_one_request_is_one_trace_with_its_ids(ca: str, api_key: str) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    header, trace_id, parent = traceparent()
    name = f"e2e-trace-{uuid.uuid4().hex[:8]}"
    with (
        loadgen.Load(
            base_url=STACK_URL, ca=ca, key=api_key, rate=10, concurrency=2, max_seconds=180
        ) as load,
        httpx.Client(
            base_url=STACK_URL, verify=ssl.create_default_context(cafile=ca), timeout=10
        ) as api,
    ):
        load.mark("traced write")
        created = api.post("/data", json={"name": name}, headers={**auth, "traceparent": header})
        request_id = created.headers.get("x-request-id", "")
        spans = wait_for_trace(trace_id)
        audit = next(
            (
                e
                for e in api.get("/audit", params={"limit": 100}, headers=auth).json()
                if e.get("request_id") == request_id
            ),
            {},
        )
        line = access_line(request_id)
        load.mark("receiver up: traced writes")
        up = timed_writes(api, auth, "up")
        load.mark("receiver stopped")
        compose.compose("stop", "traces")
        try:
            down = timed_writes(api, auth, "down")
        finally:
            load.mark("receiver started")
            compose.compose("start", "traces")
            wait_for("traces healthy", lambda: compose.container_state("traces") == "healthy", 60)
        results = load.stop()

    servers = [s for s in spans if s["kind"] == "SERVER"]
    server = servers[0] if len(servers) == 1 else {}
    statements = [s for s in spans if s["kind"] == "CLIENT"]
    resource = server.get("resource", {})
    start = min((s["start_ns"] for s in spans), default=0)
    conclude(
        "traces",
        "Traces (one request through HAProxy, its log line and audit row; the receiver down)",
        "Through HAProxy, a write with a sampled traceparent; its spans read back from the "
        "stack's OTLP receiver (standing in for the CloudWatch agent and X-Ray), its access "
        "line from the replica's stdout, its audit row from /audit. Then "
        f"{PROBES} traced writes with the receiver up and {PROBES} with its container stopped. "
        "Under light load.",
        {
            "load": loadgen.summary(results),
            "trace id": trace_id,
            "spans": [
                {
                    "name": s["name"],
                    "kind": s["kind"],
                    "start ms": round((s["start_ns"] - start) / 1e6, 2),
                    "duration ms": round((s["end_ns"] - s["start_ns"]) / 1e6, 2),
                }
                for s in sorted(spans, key=lambda s: s["start_ns"])
            ],
            "resource": {k: v for k, v in resource.items() if not k.startswith("telemetry.")},
            "access line trace id": line.get("trace_id"),
            "audit row trace id": audit.get("trace_id"),
            "writes, receiver up: median / slowest ms": [
                round(statistics.median(up) * 1000, 1),
                round(max(up) * 1000, 1),
            ],
            "writes, receiver stopped: median / slowest ms": [
                round(statistics.median(down) * 1000, 1),
                round(max(down) * 1000, 1),
            ],
        },
        {
            "the write succeeded": created.status_code == 200,
            "one trace: one server span, named by its route": len(servers) == 1
            and server["name"] == "POST /data",
            "the server span continues the caller's traceparent": server.get("parent_span_id")
            == parent,
            "the database statements are client spans under the server span": bool(statements)
            and all(
                s["parent_span_id"] == server.get("span_id")
                and s["attributes"].get("db.system.name") == "postgresql"
                for s in statements
            ),
            "the resource names service, version, commit and environment": resource.get(
                "service.name"
            )
            == "registro"
            and bool(resource.get("service.version"))
            and bool(resource.get("vcs.ref.head.revision"))
            and resource.get("deployment.environment.name") == "qa",
            "the access line carries the trace id next to the request id": line.get("trace_id")
            == trace_id,
            "the audit row carries the trace id next to the request id": audit.get("trace_id")
            == trace_id,
            f"with the receiver stopped every write answered within {PROMPT_SECONDS} s": max(down)
            < PROMPT_SECONDS,
            "no failed request": not loadgen.failures(results),
        },
        load=load,
    )
