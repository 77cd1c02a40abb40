"""Graceful shutdown: on SIGTERM or SIGINT, report not-ready first, keep serving, then stop.

The load balancer needs time to see `/readyz` turn 503 and take the instance out of its pool; a
server that stopped accepting at once would drop the requests still being routed to it. So the
first signal only starts draining: `/readyz` answers 503, responses ask keep-alive clients to
reconnect (through the load balancer, to another instance), and the listener stays open. After
`REGISTRO_DRAIN_SECONDS` the server's own shutdown runs (stop accepting, finish in-flight
requests within REGISTRO_SHUTDOWN_TIMEOUT_SECONDS, exit). A second signal skips the wait; one
within REPEAT_SECONDS of the first is the same request (Ctrl-C reaches every worker and the
supervisor, which forwards it). A request still running at the deadline is answered a JSON 503.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Mapping
from types import FrameType

logger = logging.getLogger("registro.lifecycle")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
REPEAT_SECONDS = 1.0


class Lifecycle:
    def __init__(self) -> None:
        self.draining = False
        self._first_signal_at = 0.0

    def drain_on_sigterm(self, seconds: float) -> None:
        """Wrap the server's SIGTERM and SIGINT handlers (call from the event loop, main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        stop_server = signal.getsignal(signal.SIGTERM)

        def stop() -> None:
            if callable(stop_server):
                stop_server(signal.SIGTERM, None)
            else:
                raise SystemExit(0)

        def log(message: str, fields: Mapping[str, object]) -> None:
            logger.info(message, extra={"fields": fields})

        # A signal handler may interrupt any code, locks held: it only sets a flag and hands
        # the rest (logging included) to the event loop.
        def on_signal(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if self.draining:
                if time.monotonic() - self._first_signal_at >= REPEAT_SECONDS:
                    loop.call_soon_threadsafe(log, "second signal: stopping now", {"signal": name})
                    loop.call_soon_threadsafe(stop)
                return
            self.draining = True
            self._first_signal_at = time.monotonic()
            fields = {"drain_seconds": seconds, "signal": name}
            loop.call_soon_threadsafe(log, "draining", fields)
            loop.call_soon_threadsafe(loop.call_later, seconds, stop)

        for signum in SIGNALS:
            signal.signal(signum, on_signal)
