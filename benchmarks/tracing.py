"""What exporting traces costs a request: the service with tracing off, exporting every request
to a receiver, exporting at the production ratio, and with the receiver down, side by side.

    make bench-tracing            # report in .work/bench/tracing.md
    make bench-tracing PUBLISH=1  # and docs/benchmarks-tracing.md

One PostgreSQL (fsync on), one run: each configuration's service in turn for GET /data/{id} and
POST /data (wrk, 32 connections), ROUNDS rounds alternating, so that the machine's drift falls on
every configuration alike. The receiver is the stack's own (deploy/docker/otlp_receiver.py) in a
thread of this process; "down" is a local port where nothing listens. Every figure of the page is
written here.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
from benchmarks.run import BIN, CONNECTIONS, ROOT, WORKERS, machine, process, step, wrk
from deploy.docker import otlp_receiver
from tests.support.postgres import free_port, running_postgres

from registro.auth import new_key
from registro.store import open_store
from registro.store.migrate import upgrade

ROWS = 1000
WORKDIR = ROOT / ".work" / "bench"
PUBLISHED = ROOT / "docs" / "benchmarks-tracing.md"
PRODUCTION_RATIO = "0.05"  # deploy/k8s/base/config.env OTEL_TRACES_SAMPLER_ARG
CONFIGS: dict[str, dict[str, str]] = {
    "off": {},
    "on, every request": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    f"on, ratio {PRODUCTION_RATIO}": {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": PRODUCTION_RATIO,
    },
    "receiver down, every request": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
}


async def prepare(server: str) -> tuple[str, str]:
    admin = await asyncpg.connect(server)
    await admin.execute("CREATE DATABASE bench_tracing")
    await admin.close()
    url = server.rsplit("/", 1)[0] + "/bench_tracing"
    await asyncio.to_thread(upgrade, url)
    db = await asyncpg.connect(url)
    await db.execute(
        "INSERT INTO records (name, created_at, updated_at)"
        " SELECT 'record-' || i, now(), now() FROM generate_series(1, $1) AS i",
        ROWS,
    )
    await db.close()
    token, key = new_key("bench", frozenset({"write"}))
    store = await open_store(url, 1)
    await store.add_key(key)
    await store.close()
    return url, token


def run(seconds: int, rounds: int, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {
        "seconds": seconds,
        "rounds": rounds,
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "loads": {name: {"get": [], "post": []} for name in CONFIGS},
    }
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), otlp_receiver.handler(otlp_receiver.Store()))
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    up = f"http://127.0.0.1:{receiver.server_address[1]}"
    down = f"http://127.0.0.1:{free_port()}"
    step("starting PostgreSQL (fsync on)")
    try:
        with running_postgres(durable=True) as server:
            url, token = asyncio.run(prepare(server))
            for i in range(rounds):
                for name, extra in CONFIGS.items():
                    port = free_port()
                    env = {
                        "REGISTRO_ENV": "qa",
                        "REGISTRO_AUTH": "writes",
                        "REGISTRO_WORKERS": str(WORKERS),
                        "REGISTRO_PORT": str(port),
                        "DATABASE_URL": url,
                        **extra,
                    }
                    if name != "off":
                        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = down if "down" in name else up
                    base = f"http://127.0.0.1:{port}"
                    step(f"round {i + 1}/{rounds}: {name}")
                    log = workdir / "tracing-service.log"
                    with process([str(BIN / "registro"), "serve"], env, log, f"{base}/readyz"):
                        get = wrk(base, "get.lua", [str(ROWS)], seconds)
                        post = wrk(base, "post.lua", [f"r{i}-{len(env)}-{port}", token], seconds)
                    results["loads"][name]["get"].append(get.__dict__)
                    results["loads"][name]["post"].append(post.__dict__)
    finally:
        receiver.shutdown()
    return results


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def report(results: dict[str, Any], command: str) -> str:
    loads = results["loads"]
    off = {kind: _mean([r["rps"] for r in loads["off"][kind]]) for kind in ("get", "post")}
    rows = []
    for name, kinds in loads.items():
        cells = [name]
        for kind in ("get", "post"):
            rps = _mean([r["rps"] for r in kinds[kind]])
            p99 = _mean([r["p99_ms"] for r in kinds[kind]])
            errors = sum(r["errors"] for r in kinds[kind])
            cells += [f"{rps:.0f}", f"{rps / off[kind]:.2f}", f"{p99:.1f}", str(errors)]
        rows.append("| " + " | ".join(cells) + " |")
    m = results["machine"]
    return "\n".join(
        [
            "# Benchmarks: the cost of exporting traces",
            "",
            f"Produced by `{command}` on {results['date']}: {results['rounds']} rounds of "
            f"{results['seconds']} s per load and configuration, the configurations alternating "
            "within each round, one PostgreSQL (fsync on), on one machine "
            f"({m['cpu']}, Python {m['python']}). Every figure on this page was measured and "
            "written by `benchmarks/tracing.py`.",
            "",
            f"The service: {WORKERS} workers, `REGISTRO_AUTH=writes`, the JSON access log. "
            f"`wrk`, {CONNECTIONS} connections: GET /data/{{id}} over {ROWS} rows, POST /data "
            "with an API key (a write and its audit row, in one statement). Exporting: the "
            "OTLP/HTTP exporter behind the SDK's BatchSpanProcessor, to the stack's receiver "
            "(`deploy/docker/otlp_receiver.py`) in the benchmark's process; *every request* "
            "exports a server span and a span per statement for each request (what keeping every "
            "error by tail sampling in the agent would need); *ratio* is production's sampler "
            "(`deploy/k8s/base/config.env`); *receiver down* exports every request to a port "
            "where nothing listens. A ratio is req/s against tracing off in the same run.",
            "",
            "| tracing | GET req/s | GET ratio | GET p99 ms | GET errors "
            "| POST req/s | POST ratio | POST p99 ms | POST errors |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--publish", action="store_true")
    args = parser.parse_args()
    if subprocess.run(["which", "wrk"], capture_output=True).returncode:
        print("bench-tracing: wrk is missing (tools/tools.txt)", file=sys.stderr)
        return 1
    WORKDIR.mkdir(parents=True, exist_ok=True)
    results = run(args.seconds, args.rounds, WORKDIR)
    command = "make bench-tracing" + (" PUBLISH=1" if args.publish else "")
    text = report(results, command)
    (WORKDIR / "tracing.md").write_text(text)
    if args.publish:
        PUBLISHED.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
