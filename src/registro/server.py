"""Runs the service under uvicorn, with one or several worker processes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from registro.settings import Settings, load_settings

GRACEFUL_SHUTDOWN_SECONDS = 30  # for in-flight requests, after draining


def worker_app() -> ASGIApp:
    """The uvicorn factory: each worker process builds its own app from the environment."""
    from registro.app import create_app
    from registro.telemetry.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings, drain_on_sigterm=True)


def _fresh_metrics_dir(settings: Settings) -> None:
    """Workers share metrics through files; start from an empty directory each time."""
    directory = settings.prometheus_multiproc_dir
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="registro-metrics-"))
    else:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def serve(settings: Settings) -> None:
    _fresh_metrics_dir(settings)
    uvicorn.run(
        "registro.server:worker_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
