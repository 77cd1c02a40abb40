"""Property-based testing of every operation in /openapi.json against a live server.

Schemathesis (its CLI, the interface it keeps stable) generates valid and invalid requests from
the schema and checks every response: no 5xx, documented status codes, content types and bodies
that match the schema, invalid input refused, valid input accepted. It runs with
REGISTRO_AUTH=writes and an admin key, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import add_key, in_thread
from tests.support.service import running_service

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
EXAMPLES_PER_OPERATION = 40
HOOKS = Path(__file__).parents[1] / "support" / "schemathesis_hooks.py"


def test_every_operation_honours_its_schema(database_url: str, tmp_path: Path) -> None:
    token = in_thread(asyncio.run, add_key(database_url, "schemathesis", "admin"))
    with running_service(
        database_url, tmp_path / "service.log", REGISTRO_AUTH="writes", REGISTRO_LOG_LEVEL="WARNING"
    ) as service:
        result = subprocess.run(
            [
                SCHEMATHESIS,
                "run",
                f"{service.url}/openapi.json",
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {token}",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                "20261128",
                "--generation-database",
                "none",
                "--workers",
                "1",  # with threads, CPython 3.11 ast.parse fails inside hypothesis
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
        )
        server_log = service.output()
    assert result.returncode == 0, (
        result.stdout[-8000:] + result.stderr[-2000:] + server_log[-3000:]
    )
    assert "No issues found" in result.stdout or " passed" in result.stdout, result.stdout
