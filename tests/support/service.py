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

from registro.lifecycle import REPEAT_SECONDS
from tests.support.postgres import free_port

REGISTRO = str(Path(sys.executable).with_name("registro"))


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until(url: str, timeout: float = 20.0) -> None:
    """Wait for `url` to answer 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


@contextlib.contextmanager
def running_service(
    database_url: str, log: Path, wait_for: str = "/readyz", start_timeout: float = 20.0, **env: str
) -> Iterator[Service]:
    """Start `registro serve`; yield once `wait_for` answers 200 (within `start_timeout`);
    SIGTERM it after."""
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    environment = {
        **inherited,
        "DATABASE_URL": database_url,
        "REGISTRO_PORT": str(port),
        "REGISTRO_HOST": "127.0.0.1",
        "REGISTRO_ENV": "dev",  # explicit: PostgreSQL refuses an implicit dev
        "REGISTRO_LOG_FORMAT": "json",  # the tests read the lines as a collector would
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [REGISTRO, "serve"], env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    service = Service(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until(service.url + wait_for, start_timeout)
        yield service
    except TimeoutError:
        raise RuntimeError(f"service did not start:\n{service.output()}") from None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(REPEAT_SECONDS + 0.1)
            process.send_signal(signal.SIGTERM)  # a second one, not a repeat: skips the drain
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
