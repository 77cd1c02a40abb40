"""`registro serve` as a real process on a free port, for tests that need the whole server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.postgres import free_port

REGISTRO = str(Path(sys.executable).with_name("registro"))


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until_ready(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


@contextlib.contextmanager
def running_service(database_url: str, log: Path, **env: str) -> Iterator[Service]:
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REGISTRO_PORT": str(port),
        "REGISTRO_HOST": "127.0.0.1",
        **env,
    }
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("wb") as out:
        process = subprocess.Popen([REGISTRO, "serve"], env=environment, stdout=out,
                                   stderr=subprocess.STDOUT)
    service = Service(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until_ready(service.url)
        yield service
    except TimeoutError:
        raise RuntimeError(f"service did not start:\n{service.output()}") from None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.send_signal(signal.SIGTERM)  # the second one skips the drain wait
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
