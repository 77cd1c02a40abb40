"""The service's own CPU per request, in-process: the whole middleware stack and the operation
wrapper, with a store and an authenticator that answer at once (no network, no database).

`make bench` compares throughput against a reference, which on a shared machine moves with
everything else running; this measures only what the service's code costs, as the minimum of a
few runs of process time. Run: .venv/bin/python -m benchmarks.inprocess

With --path it reports instead the path of one `POST /data`: the frames from the application's
entry to the handler, and the files whose code runs, the service's own and in all (issue 17
asked for them before and after its redesign; run it with PYTHONPATH=<older tree>/src for the
before).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import registro
from registro.app import create_app
from registro.auth import Principal
from registro.settings import DEFAULT_PORT, load_settings
from registro.store import Actor, Record
from registro.telemetry.logs import configure_logging

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
        "server": ("127.0.0.1", DEFAULT_PORT),
    }


async def _microseconds(app: Any, scope: dict[str, Any], body: bytes) -> float:
    started = time.process_time()
    for _ in range(REQUESTS):
        await _send_once(app, scope, body)
    return (time.process_time() - started) / REQUESTS * 1e6


async def _send_once(app: Any, scope: dict[str, Any], body: bytes) -> None:
    """One request with `body`; anything but a 200 stops the run."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    await app(dict(scope), receive, send)


BODY = b'{"name": "bench"}'
POST_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
    (b"authorization", b"Bearer rg_bench_key"),
]
HANDLER = "create_record"  # the POST /data handler, in registro/api/data.py


def _app() -> Any:
    app: Any = create_app(load_settings(database_url="sqlite:///unused.db", auth="writes"))
    inner = app
    while not hasattr(inner, "state") and not hasattr(inner, "shared"):
        inner = inner.app
    # Older trees kept these on a Starlette app's state: in the typed container (up to af97b6d)
    # or on the state itself (8a6cffc and older).
    holder = getattr(inner, "shared", None) or getattr(inner.state, "shared", inner.state)
    holder.store, holder.authenticator = InstantStore(), AnyKey()
    return app


async def _path(app: Any) -> tuple[int, set[str]]:
    """Frames from the application's entry to the handler, and every file whose code ran."""
    files: set[str] = set()
    depth = -1

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal depth
        if event != "call":
            return
        files.add(frame.f_code.co_filename)
        if frame.f_code.co_name == HANDLER and depth < 0:
            depth, outer = 0, frame
            while outer is not None and outer.f_code.co_name != "_send_once":
                depth, outer = depth + 1, outer.f_back

    sys.setprofile(profile)
    try:
        await _send_once(app, _scope("POST", "/data", POST_HEADERS), BODY)
    finally:
        sys.setprofile(None)
    return depth, files


async def main() -> None:
    app = _app()
    if "--path" in sys.argv:
        with contextlib.redirect_stdout(io.StringIO()):
            await _path(app)  # the first request imports and caches what later ones reuse
            frames, files = await _path(app)
        if frames < 0:
            sys.exit(f"POST /data never reached {HANDLER}")
        own = {f for f in files if Path(f).is_relative_to(Path(registro.__file__).parent)}
        names = sorted(str(Path(f).relative_to(Path(registro.__file__).parent)) for f in own)
        print(f"POST /data: {frames} frames from the application's entry to {HANDLER}")
        print(f"  {len(own)} files of the service run, {len(files)} in all: {', '.join(names)}")
        return
    report = _logging_to_nowhere()
    get, post = [], []
    for _ in range(RUNS):
        get.append(await _microseconds(app, _scope("GET", "/data/1", []), b""))
        post.append(await _microseconds(app, _scope("POST", "/data", POST_HEADERS), BODY))
    print(
        f"GET /data/1 {min(get):.1f} us, POST /data {min(post):.1f} us (min of {RUNS} runs)",
        file=report,
    )


def _logging_to_nowhere() -> TextIO:
    """A worker's logging (registro.server.worker_app), its lines written to /dev/null: the
    access line and a write's audit line are part of what a request costs. Returns where the
    report goes (stdout as it was)."""
    report = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    configure_logging("INFO")
    return report


if __name__ == "__main__":
    asyncio.run(main())
