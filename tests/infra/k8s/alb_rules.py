"""An ALB listener in miniature: the rendered Ingress's rules, applied as the AWS Load Balancer
Controller v3.5.0 turns them into listener rules, in front of a real running service.

What it models, each from its source:
- Rule order: `pathType: Exact` first, then `Prefix` with the longest path first, then
  `ImplementationSpecific` in manifest order (kubernetes-sigs/aws-load-balancer-controller v3.5.0
  docs/guide/ingress/spec.md, "rules are ordered as follows").
- Path patterns: Exact `/p` -> `/p`; Prefix `/` -> `/*`; Prefix `/p` -> `/p` and `/p/*`
  (pkg/ingress/model_build_listener_rules.go, buildPathPatternsForExactPathType and
  buildPathPatternsForPrefixPathType); ALB path patterns are case-sensitive, `*` matches any run
  of characters and `?` one, and they are matched against the path only, not the query string
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/rule-condition-types.html#path-conditions).
- A backend with port name `use-annotation` takes its action from the annotation
  `alb.ingress.kubernetes.io/actions.<service name>` (docs/guide/ingress/annotations.md,
  "actions.${action-name}"); a `fixed-response` answers itself. The root service's annotation is
  Argo Rollouts' weighted forward to the stable and canary target groups, written at run time:
  absent from the rendered manifest, it forwards to the service here.
- No rule matched: the listener's default action, a 404 fixed response (the controller's default
  when the Ingress names no default backend).
- A target group with no healthy target answers 503 (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-troubleshooting.html,
  "HTTP 503: Service unavailable"): `unhealthy_for` seconds after start, to model a release whose
  targets are still registering.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

ACTIONS = "alb.ingress.kubernetes.io/actions."
ORDER = {"Exact": 0, "Prefix": 1, "ImplementationSpecific": 2}


@dataclass(frozen=True)
class Rule:
    host: str
    patterns: tuple[str, ...]
    action: dict[str, Any]  # {"type": "forward"} or the annotation's action


def path_patterns(path: str, path_type: str) -> tuple[str, ...]:
    if path_type == "Exact":
        return (path,)
    if path_type == "Prefix":
        if path == "/":
            return ("/*",)
        base = path.rstrip("/")
        return (base, base + "/*")
    return (path,)


def pattern_matches(pattern: str, path: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, path) is not None


def listener_rules(ingress: dict[str, Any]) -> list[Rule]:
    annotations = ingress["metadata"].get("annotations", {})
    paths: list[tuple[int, int, int, Rule]] = []
    index = 0
    for rule in ingress["spec"]["rules"]:
        for item in rule["http"]["paths"]:
            path_type = item.get("pathType", "ImplementationSpecific")
            service = item["backend"]["service"]
            action: dict[str, Any] = {"type": "forward"}
            if service["port"].get("name") == "use-annotation":
                raw = annotations.get(ACTIONS + service["name"])
                if raw is not None:
                    action = json.loads(raw)
            built = Rule(rule.get("host", ""), path_patterns(item["path"], path_type), action)
            # Longest prefix first; manifest order otherwise (a stable sort keeps it).
            length = -len(item["path"]) if path_type == "Prefix" else 0
            paths.append((ORDER[path_type], length, index, built))
            index += 1
    return [r for *_, r in sorted(paths, key=lambda p: p[:3])]


@dataclass
class Listener:
    rules: list[Rule]
    upstream: str
    unhealthy_until: float = 0.0

    def route(self, host: str, path: str) -> dict[str, Any]:
        for rule in self.rules:
            if rule.host and rule.host != host.split(":")[0]:
                continue
            if any(pattern_matches(p, path) for p in rule.patterns):
                return rule.action
        return {
            "type": "fixed-response",
            "fixedResponseConfig": {"statusCode": "404", "contentType": "text/plain"},
        }


def handler(listener: Listener) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            action = listener.route(self.headers.get("Host", ""), path)
            if action["type"] == "fixed-response":
                config = action["fixedResponseConfig"]
                self.answer(
                    int(config["statusCode"]),
                    config.get("contentType", "text/plain"),
                    config.get("messageBody", "").encode(),
                )
                return
            if time.monotonic() < listener.unhealthy_until:
                self.answer(503, "text/html", b"<html>503 Service Temporarily Unavailable</html>")
                return
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in ("host", "content-length", "connection")
            }
            upstream = httpx.request(
                self.command, listener.upstream + self.path, headers=headers, content=body,
                timeout=10,
            )  # fmt: skip
            self.answer(
                upstream.status_code,
                upstream.headers.get("content-type", "application/octet-stream"),
                upstream.content,
            )

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    return Handler


@contextmanager
def alb(ingress: dict[str, Any], upstream: str, unhealthy_for: float = 0.0) -> Iterator[str]:
    """Serve the Ingress's rules on 127.0.0.1 in front of `upstream`; yields the ALB's URL."""
    listener = Listener(listener_rules(ingress), upstream.rstrip("/"))
    listener.unhealthy_until = time.monotonic() + unhealthy_for
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(listener))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
