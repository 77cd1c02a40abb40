"""`registro serve` on a port another process holds: one line, its own exit status, nothing else
done (no migration, no database file)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from registro.cli import PORT_IN_USE
from tests.support.service import REGISTRO


def test_a_port_in_use_is_one_line_and_exit_status_4(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRO_")}
        result = subprocess.run(
            [REGISTRO, "serve", "--port", str(port)],
            env={**env, "DATABASE_URL": f"sqlite:///{tmp_path}/registro.db"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert PORT_IN_USE == 4 and result.returncode == PORT_IN_USE
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"registro: port {port} on 127.0.0.1 is in use by another process; "
        "choose another with REGISTRO_PORT, --port or `make run PORT=...`"
    ]
    assert list(tmp_path.iterdir()) == []
