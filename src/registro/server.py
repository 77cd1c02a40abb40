"""Runs the service under uvicorn, with one or several worker processes."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from registro.settings import Settings, load_settings

GRACEFUL_SHUTDOWN_SECONDS = 30  # for in-flight requests, after draining


def worker_app() -> ASGIApp:
    """The uvicorn factory: each worker process builds its own app from the environment."""
    from registro.app import create_app
    from registro.http import BoundedHttpToolsProtocol
    from registro.telemetry.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_queue_lines)
    BoundedHttpToolsProtocol.limits = settings.http_limits
    return create_app(settings, drain_on_sigterm=True)


def clear_metrics_dir(directory: Path) -> None:
    """Workers share metrics through `*.db` files; a previous run's files would be counted again.

    Only those files go: the directory is the operator's and may hold anything else.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def serve(settings: Settings) -> None:
    # Once shut down, uvicorn re-raises the SIGTERM that stopped it under the handler found at
    # start; by default that kills the process before the temporary directory is removed.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    configured = settings.prometheus_multiproc_dir
    with contextlib.ExitStack() as cleanup:
        if configured is None:
            directory = Path(
                cleanup.enter_context(tempfile.TemporaryDirectory(prefix="registro-metrics-"))
            )
        else:
            directory = configured
            clear_metrics_dir(directory)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        uvicorn.run(
            "registro.server:worker_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            loop="uvloop",
            http="registro.http:BoundedHttpToolsProtocol",
            timeout_keep_alive=settings.http_keep_alive_seconds,
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
