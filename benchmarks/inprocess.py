"""The service's own CPU per request, in-process: the whole middleware stack and the operation
wrapper, with a store and an authenticator that answer at once (no network, no database).

`make bench` compares throughput against a reference, which on a shared machine moves with
everything else running; this measures only what the service's code costs, as the minimum of a
few runs of process time. Run: .venv/bin/python benchmarks/inprocess.py
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from typing import Any

from registro.app import create_app
from registro.auth import Principal
from registro.settings import load_settings
from registro.store import Actor, Record

REQUESTS = 5000
RUNS = 5


class InstantStore:
    async def get(self, record_id: int) -> Record:
        return Record(record_id, "alpha")

    async def create(self, name: str, actor: Actor) -> Record:
        return Record(1, name)

    def pool_usage(self) -> tuple[int, int]:
        return 0, 1


class AnyKey:
    async def principal(self, header: str | None) -> Principal:
        return Principal("bench", frozenset({"write"}))


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _microseconds(app: Any, scope: dict[str, Any], body: bytes) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    started = time.process_time()
    for _ in range(REQUESTS):
        await app(dict(scope), receive, send)
    return (time.process_time() - started) / REQUESTS * 1e6


async def main() -> None:
    app: Any = create_app(load_settings(database_url="sqlite:///unused.db", auth="writes"))
    inner = app
    while not hasattr(inner, "state"):
        inner = inner.app
    inner.state.shared.store, inner.state.shared.authenticator = InstantStore(), AnyKey()
    body = b'{"name": "bench"}'
    post_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"authorization", b"Bearer rg_bench_key"),
    ]
    get, post = [], []
    with contextlib.redirect_stdout(io.StringIO()):  # the access log
        for _ in range(RUNS):
            get.append(await _microseconds(app, _scope("GET", "/data/1", []), b""))
            post.append(await _microseconds(app, _scope("POST", "/data", post_headers), body))
    print(f"GET /data/1 {min(get):.1f} us, POST /data {min(post):.1f} us (min of {RUNS} runs)")


if __name__ == "__main__":
    asyncio.run(main())
