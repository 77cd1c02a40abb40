"""Request ids, one JSON log line per request, metrics over all workers, OTLP traces."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from registro.telemetry.logs import configure_logging, flush
from tests.conftest import add_key, bearer, new_postgres_database
from tests.support.postgres import free_port
from tests.support.service import REGISTRO, running_service


async def test_the_request_id_is_always_the_services_own(client: httpx.AsyncClient) -> None:
    """A caller cannot choose the id the logs and the audit file its request under."""
    given = await client.get("/livez", headers={"X-Request-ID": "abc-123"})
    generated = await client.get("/livez")
    forged = await client.get("/livez", headers={"X-Request-ID": 'x" injected\\n'})
    ids = [r.headers["x-request-id"] for r in (given, generated, forged)]
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in ids), ids
    assert len(set(ids)) == 3


async def test_each_request_and_each_change_log_one_json_line_without_secrets(
    make_client, make_key, capfd: pytest.CaptureFixture[str]
) -> None:
    writer = await make_key("importer", "write")
    client = await make_client(auth="writes")
    configure_logging("INFO")
    try:
        assert flush()
        capfd.readouterr()
        await client.post(
            "/data", json={"name": "a"}, headers={**bearer(writer), "X-Request-ID": "log-test"}
        )
        assert flush()
        lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    finally:
        logging.getLogger().handlers.clear()
    access = [line for line in lines if line["logger"] == "registro.access"]
    assert len(access) == 1
    entry = access[0]
    assert entry["method"] == "POST" and entry["route"] == "/data" and entry["status"] == 200
    assert entry["caller_request_id"] == "log-test" and entry["duration_ms"] > 0
    assert len(entry["request_id"]) == 32
    audit = [line for line in lines if line["logger"] == "registro.audit"]
    assert len(audit) == 1
    assert audit[0]["action"] == "create" and audit[0]["actor"] == "importer"
    assert audit[0]["request_id"] == entry["request_id"] and audit[0]["name"] == "a"
    assert audit[0]["caller_request_id"] == "log-test"
    secret = writer.split("_", 2)[2]
    assert all(secret not in json.dumps(line) for line in lines)


@pytest.mark.postgres
def test_metrics_count_every_worker_whichever_answers(
    postgres_server: str, postgres_template: str, tmp_path: Path
) -> None:
    url = new_postgres_database(postgres_server, postgres_template)
    metrics_dir = tmp_path / "metrics"
    with running_service(
        url,
        tmp_path / "service.log",
        REGISTRO_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    ) as service:
        for _ in range(200):  # a new connection each time, so both workers take some
            assert httpx.get(f"{service.url}/data/1").status_code == 404
        writers = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(writers) == 2, "the requests did not reach both workers"
        for _ in range(10):
            text = httpx.get(f"{service.url}/metrics").text
            line = next(
                line
                for line in text.splitlines()
                if line.startswith("registro_http_requests_total{")
                and 'route="/data/{id}"' in line
                and 'status="404"' in line
            )
            assert float(line.rsplit(" ", 1)[1]) == 200.0
        assert 'registro_build_info{commit="unknown",version="0.1.0"} 1.0' in text
        assert "registro_http_request_duration_seconds_bucket" in text
        assert "registro_http_requests_in_flight" in text
        assert 'registro_db_pool_connections{state="idle"}' in text


def test_a_previous_runs_metric_files_are_cleared_and_nothing_else(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_99999.db").write_bytes(b"a previous run's counts")
    (metrics_dir / "operator-notes.txt").write_text("not ours")
    with running_service(
        f"sqlite:///{tmp_path}/metrics.db",
        tmp_path / "service.log",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    ) as service:
        assert httpx.get(f"{service.url}/metrics").status_code == 200
        assert not (metrics_dir / "counter_99999.db").exists()
        assert (metrics_dir / "operator-notes.txt").read_text() == "not ours"


def test_the_temporary_metrics_directory_is_removed_at_exit(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    with running_service(
        f"sqlite:///{tmp_path}/metrics.db", tmp_path / "service.log", TMPDIR=str(temporary)
    ) as service:
        assert httpx.get(f"{service.url}/data/1").status_code == 404
        assert [p.name[:17] for p in temporary.iterdir()] == ["registro-metrics-"]
    assert service.process.wait(20) == 0  # stopped by SIGTERM, cleanly
    assert list(temporary.iterdir()) == []


class _Collector(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Collector.received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def otlp_collector() -> Iterator[tuple[str, list[bytes]]]:
    _Collector.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Collector.received
    finally:
        server.shutdown()


def test_traces_are_exported_over_otlp_when_configured(
    otlp_collector: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    endpoint, received = otlp_collector
    url = f"sqlite:///{tmp_path}/registro.db"
    with running_service(
        url,
        tmp_path / "service.log",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME="registro-test",
        OTEL_BSP_SCHEDULE_DELAY="100",
    ) as s:
        httpx.post(f"{s.url}/data", json={"name": "traced"})
        httpx.get(f"{s.url}/data/1")
    # The service flushes its spans when it stops.
    spans, services = [], set()
    for body in received:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                spans += [span.name for span in scope_spans.spans]
    assert services == {"registro-test"}
    assert "POST /data" in spans
    assert "GET /data/{id}" in spans, " | ".join(spans)


DB_SYSTEM = "db.system.name"


def _spans(received: list[bytes]) -> tuple[list[Span], dict[str, str]]:
    spans: list[Span] = []
    resource: dict[str, str] = {}
    for body in received:
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            for attribute in resource_spans.resource.attributes:
                resource[attribute.key] = attribute.value.string_value
            for scope_spans in resource_spans.scope_spans:
                spans += scope_spans.spans
    return spans, resource


def _migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/registro.db"
    subprocess.run([REGISTRO, "migrate"], env={**os.environ, "DATABASE_URL": url}, check=True)
    return url


def _json_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_traced_request_has_its_statements_and_its_ids_in_log_and_audit(
    otlp_collector: tuple[str, list[bytes]], tmp_path: Path, backend: str, request: Any
) -> None:
    """One write: its server span has a child span per database statement (both drivers); the
    trace id is in its access line, in every application line of the request (the audit line)
    and in its audit row, next to the request id; the resource names the service, version,
    commit, environment and pod (REGISTRO_POD_NAME, from the downward API in the Rollout). Trace ids
    begin with the Unix time, which AWS X-Ray requires (awsxrayexporter
    internal/translator/segment.go convertToAmazonTraceID: older than 28 days is refused)."""
    endpoint, received = otlp_collector
    if backend == "postgres":
        url = new_postgres_database(
            request.getfixturevalue("postgres_server"), request.getfixturevalue("postgres_template")
        )
    else:
        url = _migrated_sqlite(tmp_path)
    admin = asyncio.run(add_key(url, "auditor", "admin"))
    with running_service(
        url,
        tmp_path / "service.log",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        REGISTRO_POD_NAME="registro-abc",
        REGISTRO_GIT_COMMIT="0123abc",
        OTEL_BSP_SCHEDULE_DELAY="100",
    ) as s:
        created = httpx.post(f"{s.url}/data", json={"name": "traced"})
        audit = httpx.get(f"{s.url}/audit", headers=bearer(admin)).json()
    log = s.output()  # once stopped: a worker writes its lines from a thread, and flushes at exit
    rid = created.headers["x-request-id"]
    lines = _json_lines(log)
    mine = [line for line in lines if line.get("request_id") == rid]
    assert {line["logger"] for line in mine} == {"registro.access", "registro.audit"}
    (trace_id,) = {line["trace_id"] for line in mine}
    assert audit[0]["request_id"] == rid and audit[0]["trace_id"] == trace_id
    assert abs(int(trace_id[:8], 16) - time.time()) < 300

    spans, resource = _spans(received)
    ours = [span for span in spans if span.trace_id.hex() == trace_id]
    (server,) = [span for span in ours if span.name == "POST /data"]
    assert all(span.parent_span_id == server.span_id for span in ours if span != server)
    systems = {
        a.value.string_value for s in ours for a in s.attributes if a.key == "db.system.name"
    }
    assert systems == {{"sqlite": "sqlite", "postgres": "postgresql"}[backend]}
    statements = [span for span in ours if span != server]
    assert statements and all(span.kind == Span.SPAN_KIND_CLIENT for span in statements)
    assert {"INSERT", "WITH"} & {span.name for span in statements}
    assert resource["service.name"] == "registro" and resource["service.version"]
    assert resource["vcs.ref.head.revision"] == "0123abc"
    assert resource["deployment.environment.name"] == "dev"
    assert resource["k8s.pod.name"] == "registro-abc"


@pytest.fixture
def silent_receiver() -> Iterator[str]:
    """An OTLP address that takes connections and never answers (a hung agent): the kernel
    completes each handshake into the backlog, nothing reads."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.mark.parametrize("receiver", ["refusing", "silent"])
def test_a_receiver_that_is_down_never_holds_up_a_request(
    receiver: str, silent_receiver: str, tmp_path: Path
) -> None:
    """Spans leave through the SDK's BatchSpanProcessor: a bounded queue that one thread
    exports, dropping spans when it is full (opentelemetry-sdk, sdk/trace/export
    BatchSpanProcessor, OTEL_BSP_MAX_QUEUE_SIZE). With the receiver refusing connections or
    silent (the exporter then waits OTEL_EXPORTER_OTLP_TIMEOUT, 10 s, per batch), every
    request still answers at once, and the service still stops in a few seconds."""
    endpoint = silent_receiver if receiver == "silent" else f"http://127.0.0.1:{free_port()}"
    with contextlib.ExitStack() as stack:
        s = stack.enter_context(
            running_service(
                f"sqlite:///{tmp_path}/registro.db",
                tmp_path / "service.log",
                OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                OTEL_BSP_SCHEDULE_DELAY="50",
                OTEL_BSP_MAX_QUEUE_SIZE="64",  # full within the run: the drops are exercised too
                OTEL_BSP_MAX_EXPORT_BATCH_SIZE="32",
                REGISTRO_DRAIN_SECONDS="0",
            )
        )
        slowest = 0.0
        with httpx.Client(base_url=s.url, timeout=5) as client:
            for i in range(300):
                started = time.perf_counter()
                response = client.post("/data", json={"name": f"n{i}"})
                slowest = max(slowest, time.perf_counter() - started)
                assert response.status_code == 200
        started = time.perf_counter()
        stack.close()  # SIGTERM: no drain here, then each worker's lifespan shutdown
        stopping = time.perf_counter() - started
    assert slowest < 1.0, f"a request took {slowest:.3f} s with the receiver {receiver}"
    # The SDK alone waits up to 30 s per worker for a receiver that is down; the service bounds
    # it (registro.telemetry.tracing.stop, FLUSH_SECONDS).
    assert stopping < 10, f"the service took {stopping:.1f} s to stop with the receiver {receiver}"


def test_an_unsampled_request_exports_nothing_and_carries_no_trace_id(
    otlp_collector: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    """At ratio 0 no new trace is kept (opentelemetry-sdk sampling.py TraceIdRatioBased; the
    parent-based sampler defers to it for a request without a traceparent): no span of it, not
    even its statements', is exported, and its log line and audit row name no trace. A caller's
    sampled traceparent is followed (ParentBased: remote_parent_sampled -> ALWAYS_ON)."""
    endpoint, received = otlp_collector
    url = _migrated_sqlite(tmp_path)
    admin = asyncio.run(add_key(url, "auditor", "admin"))
    caller_trace = f"{int(time.time()):08x}0123456789abcdef01234567"
    with running_service(
        url,
        tmp_path / "service.log",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
        OTEL_BSP_SCHEDULE_DELAY="100",
    ) as s:
        unsampled = httpx.post(f"{s.url}/data", json={"name": "untraced"})
        followed = httpx.post(
            f"{s.url}/data",
            json={"name": "followed"},
            headers={"traceparent": f"00-{caller_trace}-0123456789abcdef-01"},
        )
        audit = httpx.get(f"{s.url}/audit", headers=bearer(admin)).json()
    log = s.output()  # once stopped: a worker writes its lines from a thread, and flushes at exit
    lines = _json_lines(log)
    untraced_rid = unsampled.headers["x-request-id"]
    followed_rid = followed.headers["x-request-id"]
    by_request = {
        rid: [line for line in lines if line.get("request_id") == rid]
        for rid in (untraced_rid, followed_rid)
    }
    rows = {row["request_id"]: row for row in audit}
    assert by_request[untraced_rid] and all(
        ln.get("trace_id") is None for ln in by_request[untraced_rid]
    )
    assert rows[untraced_rid]["trace_id"] is None
    assert {ln["trace_id"] for ln in by_request[followed_rid]} == {caller_trace}
    assert rows[followed_rid]["trace_id"] == caller_trace
    spans, _ = _spans(received)
    assert spans and {span.trace_id.hex() for span in spans} == {caller_trace}
