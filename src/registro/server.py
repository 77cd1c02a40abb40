"""Runs the service under uvicorn, with one or several worker processes."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import tempfile
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from registro.lifecycle import SIGNALS
from registro.settings import DEFAULT_SHUTDOWN_TIMEOUT_SECONDS, Settings, load_settings

# What deployment manifests size their grace period by (REGISTRO_SHUTDOWN_TIMEOUT_SECONDS unset).
GRACEFUL_SHUTDOWN_SECONDS = DEFAULT_SHUTDOWN_TIMEOUT_SECONDS
# How long the supervisor of several workers waits for a worker to answer before it replaces it.
WORKER_HEALTHCHECK_SECONDS = 30


# Python collects its youngest objects every 700 net allocations of containers by default. Under
# load, what the requests in flight hold is several times that, so nearly every collection walks
# live objects and promotes them, and the older generations then collect them again. A threshold
# above that working set lets most of it die by reference counting first; a young collection of
# this size takes about 2 ms (measured with gc.callbacks in a worker under `make bench`'s load).
YOUNG_COLLECTION_THRESHOLD = 7000


def worker_app() -> ASGIApp:
    """The uvicorn factory: each worker process builds its own app from the environment."""
    from registro.app import create_app
    from registro.http import BoundedHttpToolsProtocol
    from registro.limits import http_limits
    from registro.telemetry.logs import configure_logging

    settings = load_settings()
    configure_logging(
        settings.log_level, settings.log_queue_lines, log_format=settings.log_format_mode
    )
    BoundedHttpToolsProtocol.limits = http_limits(settings)
    app = create_app(settings, drain_on_sigterm=True)
    # What the worker built to serve lives as long as it does: frozen, the collections that
    # each request's garbage sets off no longer walk it (Python's gc.freeze).
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
    return app


def clear_metrics_dir(directory: Path) -> None:
    """Workers share metrics through `*.db` files; a previous run's files would be counted again.

    Only those files go: the directory is the operator's and may hold anything else.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # an asked-for stop, done: success


class _Supervisor(Multiprocess):
    """uvicorn's worker supervisor, with signals passed on to the workers as they arrive.

    uvicorn's own looks at its signals every half second and, on the first, sends each worker
    SIGTERM and then only waits for them: a second signal would wait in its queue. Here every
    signal reaches the workers at once (so the first starts their drain without delay, SIGINT
    as SIGTERM, and a second one skips it as with one worker).

    The handler takes no lock: it runs between two bytecodes of the main thread (the signal
    module's documentation), possibly inside the handler of the signal before it. Setting
    `should_exit` (a threading.Event, whose lock is not re-entrant) from there once left the
    supervisor waiting on itself for ever; the signal goes to uvicorn's queue instead, which its
    loop reads within half a second, and a flag keeps it from replacing the workers meanwhile.
    """

    _stopping = False  # a signal came: set by the handler, without a lock

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config, sockets=[config.bind_socket()])
        for signum in SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        self.signal_queue.append(signum)
        for worker in self.processes:
            if worker.process.pid is not None and worker.process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):  # it ended since
                    os.kill(worker.process.pid, signal.SIGTERM)

    def keep_subprocess_alive(self) -> None:
        """Not once stopping: a worker that finished its drain before uvicorn's loop read the
        signal would be replaced by one that never gets a signal, and waited for for ever."""
        if not self._stopping:
            super().keep_subprocess_alive()

    def terminate_all(self) -> None:
        """Nothing more to send: each worker already has its signal, and drains."""


def serve(settings: Settings) -> None:
    # Once shut down, uvicorn re-raises the signal that stopped it under the handler found at
    # start; by default that kills the process before the temporary directory is removed.
    for signum in SIGNALS:
        signal.signal(signum, _exit_cleanly)
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
        config = uvicorn.Config(
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
            timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
            # A spawned worker answers the supervisor's pings only once it has imported the
            # service; on a starved CPU (a throttled pod, a busy host) that can take longer than
            # uvicorn's default 5 s, and the supervisor would kill and respawn it forever.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        )
        if settings.workers > 1:
            _Supervisor(config).run()
            return
        server = uvicorn.Server(config)
        server.run()
        if not server.started:
            raise SystemExit(STARTUP_FAILURE)
