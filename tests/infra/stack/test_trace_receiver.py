"""The stack's trace receiver (deploy/docker/otlp_receiver.py) against the service's own OTLP
exporter, and the stack's wiring to it (compose.yaml)."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy.docker import otlp_receiver
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

COMPOSE = Path(__file__).resolve().parents[3] / "compose.yaml"


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), otlp_receiver.handler(otlp_receiver.Store()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def spans(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (127.0.0.1)
        found: list[dict[str, Any]] = json.load(response)
    return found


def test_the_receiver_keeps_what_the_sdk_exports(receiver: str) -> None:
    """The OTLP/HTTP binary encoding (opentelemetry-proto ExportTraceServiceRequest), as the
    service's exporter sends it, gzip included (OTEL_EXPORTER_OTLP_COMPRESSION)."""
    for compression in (None, "gzip"):
        provider = TracerProvider(resource=Resource.create({"service.name": "t"}))
        exporter = OTLPSpanExporter(
            endpoint=f"{receiver}/v1/traces",
            compression=otlp_compression(compression),
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        with (
            tracer.start_as_current_span("parent") as parent,
            tracer.start_as_current_span("child"),
        ):
            trace_id = format(parent.get_span_context().trace_id, "032x")
        provider.shutdown()
        found = spans(f"{receiver}/spans?trace_id={trace_id}")
        by_name = {s["name"]: s for s in found}
        assert set(by_name) == {"parent", "child"}
        assert by_name["child"]["parent_span_id"] == by_name["parent"]["span_id"]
        assert by_name["parent"]["resource"]["service.name"] == "t"
    assert spans(f"{receiver}/spans?trace_id={'0' * 32}") == []


def otlp_compression(name: str | None) -> Compression:
    return Compression.Gzip if name == "gzip" else Compression.NoCompression


def test_every_replica_exports_to_the_stacks_receiver() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    traces = services["traces"]
    assert traces["command"] == ["python3", "/opt/otlp_receiver.py"]
    assert "./deploy/docker/otlp_receiver.py:/opt/otlp_receiver.py:ro" in traces["volumes"]
    for name in ("app1", "app2", "app3", "app-canary"):
        environment = services[name]["environment"]
        assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://traces:4318", name
        assert set(services[name]["networks"]) & set(traces["networks"]), name
