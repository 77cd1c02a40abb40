"""A real, throw-away PostgreSQL server on 127.0.0.1, for integration tests and benchmarks.

Uses the machine's server binaries (Debian's or Ubuntu's postgresql package, or PG_BIN).
initdb refuses to run as root, so as root the cluster is created and run as `postgres`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _server_binaries() -> Path:
    """PG_BIN, else the newest Debian/Ubuntu postgresql-NN package's binaries."""
    if "PG_BIN" in os.environ:
        return Path(os.environ["PG_BIN"])
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return installed[-1].parent if installed else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _server_binaries()
USER = "registro"


class PostgresMissing(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def running_postgres(
    durable: bool = False, max_connections: int = 200, password: str | None = None
) -> Iterator[str]:
    """Start a server; yield the URL of its `postgres` database; stop and delete it after.

    `durable=False` turns fsync off: fine for tests, and benchmarks state which they used.
    With a `password`, TCP connections need one (SCRAM), as on RDS; the URL carries it.
    """
    if not (PG_BIN / "initdb").exists():
        raise PostgresMissing(f"no PostgreSQL server binaries in {PG_BIN}")
    workdir = Path(tempfile.mkdtemp(prefix="registro-pg-"))
    workdir.chmod(0o755)
    data = workdir / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(workdir, "postgres", "postgres")
    port = free_port()
    authentication = ["--auth=trust"]
    if password is not None:
        (workdir / "pwfile").write_text(password + "\n")
        authentication = [
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={workdir / 'pwfile'}",
        ]
    options = [
        f"-p {port}",
        "-c listen_addresses=127.0.0.1",
        f"-k {workdir}",
        f"-c max_connections={max_connections}",
    ]
    if not durable:
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    try:
        subprocess.run(
            _as_server_user(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    USER,
                    *authentication,
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_server_user(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(workdir / "server.log"),
                    "-o",
                    " ".join(options),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        credentials = f"{USER}:{password}" if password is not None else USER
        yield f"postgresql://{credentials}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)
