"""A log pipe nobody reads (a stalled log driver) never stalls the worker: lines are dropped and
counted, `/livez` answers, SIGTERM stops the process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.postgres import free_port
from tests.support.service import REGISTRO, wait_until

QUEUE_LINES = 200
FLOOD = 2000  # access lines of ~250 bytes: far more than the pipe (64 KiB) and the queue hold
BOUND = 10.0  # seconds any one request may take on a loaded machine (a stall is forever)


async def _flood(url: str) -> list[float]:
    async with httpx.AsyncClient(timeout=BOUND * 3) as client:
        semaphore = asyncio.Semaphore(20)

        async def one() -> float:
            async with semaphore:
                started = time.monotonic()
                assert (await client.get(url)).status_code == 200
                return time.monotonic() - started

        return await asyncio.gather(*(one() for _ in range(FLOOD)))


def test_an_unread_stdout_pipe_drops_lines_but_never_stalls_the_worker(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "DATABASE_URL": f"sqlite:///{tmp_path}/registro.db",
        "REGISTRO_PORT": str(port),
        "REGISTRO_DRAIN_SECONDS": "0",
        "REGISTRO_LOG_QUEUE_LINES": str(QUEUE_LINES),
    }
    # stdout is a pipe this test never reads: once its buffer is full, every write would block.
    process = subprocess.Popen([REGISTRO, "serve"], env=env, stdout=subprocess.PIPE)
    try:
        wait_until(f"{url}/livez")
        durations = asyncio.run(_flood(f"{url}/livez"))
        started = time.monotonic()
        livez = httpx.get(f"{url}/livez", timeout=BOUND * 3)
        livez_seconds = time.monotonic() - started
        time.sleep(1.5)  # the dropped-lines counter is published every second
        metrics = httpx.get(f"{url}/metrics", timeout=BOUND * 3).text
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        exit_code = process.wait(20)
        stop_seconds = time.monotonic() - stopped
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()
    assert max(durations) < BOUND, f"slowest request {max(durations):.2f}s"
    assert livez.status_code == 200 and livez_seconds < BOUND
    dropped = re.search(r"^registro_log_lines_dropped_total (\S+)$", metrics, re.M)
    assert dropped is not None, metrics
    assert float(dropped[1]) > FLOOD - QUEUE_LINES - 65536 / 150, dropped[0]
    assert stop_seconds < 10, f"SIGTERM took {stop_seconds:.1f}s"
    assert exit_code == 0
