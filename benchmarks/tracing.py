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
import os
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks.run import (
    BIN,
    CONNECTIONS,
    ROOT,
    WORKERS,
    database,
    header,
    measure,
    process,
    step,
    write_key,
)
from deploy.docker import otlp_receiver
from tests.support.postgres import free_port, running_postgres

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
    url = await database(server, "bench_tracing", ROWS)
    return url, await write_key(url)


def run(seconds: int, rounds: int, workdir: Path) -> dict[str, Any]:
    results = header(seconds, rounds)
    results["load_average"] = f"{os.getloadavg()[0]:.1f}"
    results["loads"] = {name: {"get": [], "post": []} for name in CONFIGS}
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
                    serve = [str(BIN / "registro"), "serve"]
                    with process(serve, env, log, f"{base}/readyz") as pid:
                        get = measure(base, "get.lua", [str(ROWS)], seconds, pid)
                        prefix = f"r{i}-{len(env)}-{port}"
                        post = measure(base, "post.lua", [prefix, token], seconds, pid)
                    results["loads"][name]["get"].append(get)
                    results["loads"][name]["post"].append(post)
    finally:
        receiver.shutdown()
    return results


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _mean_cpu(loads: list[dict[str, Any]]) -> float:
    """CPU per request over the rounds, weighted by each round's requests."""
    used: float = sum(r["cpu_us"] * r["requests"] for r in loads)
    return used / max(int(sum(r["requests"] for r in loads)), 1)


def report(results: dict[str, Any], command: str) -> str:
    loads = results["loads"]
    off = {
        kind: (_mean([r["rps"] for r in loads["off"][kind]]), _mean_cpu(loads["off"][kind]))
        for kind in ("get", "post")
    }
    rows = []
    for name, kinds in loads.items():
        cells = [name]
        for kind in ("get", "post"):
            rps = _mean([r["rps"] for r in kinds[kind]])
            cpu = _mean_cpu(kinds[kind])
            p99 = _mean([r["p99_ms"] for r in kinds[kind]])
            errors = sum(r["errors"] for r in kinds[kind])
            cells += [
                f"{cpu:.0f}",
                f"{cpu / off[kind][1]:.2f}",
                f"{rps:.0f}",
                f"{rps / off[kind][0]:.2f}",
                f"{p99:.1f}",
                str(errors),
            ]
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
            "where nothing listens. *CPU µs* is the service's own CPU time (server and workers, "
            "the export thread included) per request answered: it holds on a machine that other "
            "work loads, where req/s and p99 move with that work (load average "
            f"{results['load_average']} at the start). A ratio is against tracing off in the "
            "same run.",
            "",
            "| tracing | GET CPU µs | ratio | GET req/s | ratio | GET p99 ms | GET errors "
            "| POST CPU µs | ratio | POST req/s | ratio | POST p99 ms | POST errors |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
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
