"""An OTLP/HTTP trace receiver for the local stack: it stands in for the CloudWatch agent (and
AWS X-Ray behind it) that receives the service's spans on EKS (docs/decisions/telemetry-export.md).

    python3 otlp_receiver.py [--port 4318]

POST /v1/traces takes an ExportTraceServiceRequest in protobuf (the OTLP/HTTP binary encoding,
opentelemetry-proto; gzip when Content-Encoding says so) and keeps its spans in memory, the most
recent MAX_SPANS. GET /spans?trace_id=HEX answers them as JSON for the drills
(tests/e2e/test_10_traces.py); GET /healthz answers 200. It runs in the service's own image,
which has opentelemetry-proto already (the service's exporter needs it), and uses nothing else.
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

MAX_SPANS = 100_000
MAX_BODY_BYTES = 8 << 20
KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return (
        getattr(value, kind)
        if kind in {"string_value", "int_value", "double_value", "bool_value"}
        else str(value)
    )


def _attributes(attributes: Any) -> dict[str, Any]:
    return {a.key: _value(a.value) for a in attributes if isinstance(a, KeyValue)}


def spans_of(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """Each span of the request with its resource, in JSON-ready form."""
    found = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "name": span.name,
                        "kind": KINDS.get(span.kind, str(span.kind)),
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "status": span.status.code,
                        "attributes": _attributes(span.attributes),
                        "resource": resource,
                        "scope": scope_spans.scope.name,
                    }
                )
    return found


class Store:
    def __init__(self) -> None:
        self.spans: deque[dict[str, Any]] = deque(maxlen=MAX_SPANS)
        self.lock = threading.Lock()

    def add(self, spans: list[dict[str, Any]]) -> None:
        with self.lock:
            self.spans.extend(spans)

    def of_trace(self, trace_id: str | None) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if trace_id is None or s["trace_id"] == trace_id]


def handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if urlsplit(self.path).path != "/v1/traces" or not 0 < length <= MAX_BODY_BYTES:
                self._answer(404 if length else 400, b"", "text/plain")
                return
            body = self.rfile.read(length)
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            try:
                request = ExportTraceServiceRequest.FromString(body)
            except Exception:
                self._answer(400, b"", "text/plain")
                return
            store.add(spans_of(request))
            reply = ExportTraceServiceResponse().SerializeToString()
            self._answer(200, reply, "application/x-protobuf")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/healthz":
                self._answer(200, b"ok\n", "text/plain")
            elif url.path == "/spans":
                trace_id = parse_qs(url.query).get("trace_id", [None])[0]
                self._answer(200, json.dumps(store.of_trace(trace_id)).encode(), "application/json")
            else:
                self._answer(404, b"", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a line per export would drown the stack's logs

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 (a container's own port)
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args(argv)
    ThreadingHTTPServer((args.host, args.port), handler(Store())).serve_forever()


if __name__ == "__main__":
    main()
