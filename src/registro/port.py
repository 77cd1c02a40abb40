"""Whether the port `registro serve` is to listen on is free, checked before anything starts.

uvicorn reports a port in use as a log line and exit 3, which is also this CLI's "database
unreachable"; checking first gives it one clear line and an exit code of its own.
"""

from __future__ import annotations

import errno
import socket


class PortInUse(Exception):
    """Another process listens on the address; the message is one line for the operator."""


def require_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port held only by connections in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUse(
                f"port {port} on {host} is in use by another process; "
                "choose another with REGISTRO_PORT, --port or `make run PORT=...`"
            ) from None
