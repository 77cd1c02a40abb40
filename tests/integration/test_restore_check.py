"""deploy/aws/restore_check.py, the program restore.py's check Job runs in the service's image,
run here as the Job runs it (`python -c` with its text, the service installed) against a real
PostgreSQL: the rehearsal's Kubernetes stand-in runs no pod, so this is where its output and exit
status are proven."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from registro.store import open_store
from registro.store.base import Actor
from tests.conftest import new_postgres_database

pytestmark = pytest.mark.postgres

PROGRAM = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "restore_check.py"
NEWEST = "newest change:"


def run_check(database: str) -> subprocess.CompletedProcess[str]:
    """As the Job: DATABASE_URL names the source's host (here one that does not resolve), and
    RESTORED_ADDRESS the restored instance's."""
    parts = urlsplit(database)
    source = parts._replace(netloc=f"{parts.username}@source.invalid:{parts.port}").geturl()
    env = {**os.environ, "DATABASE_URL": source, "RESTORED_ADDRESS": str(parts.hostname)}
    env.pop("REGISTRO_DATABASE_PASSWORD_FILE", None)
    env["REGISTRO_ENV"] = "qa"  # as the overlay's registro-config sets it
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # `registro`, as in the image
    return subprocess.run(
        [sys.executable, "-c", PROGRAM.read_text()],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def newest(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith(NEWEST)]
    return line.removeprefix(NEWEST).strip()


def test_a_current_schema_passes_and_the_newest_change_is_printed(
    postgres_server: str, postgres_template: str
) -> None:
    """`registro migrate --check` exits 0 on a current schema (src/registro/cli.py); the newest
    audit entry is the one restore.py compares with TIME."""
    database = new_postgres_database(postgres_server, postgres_template)
    empty = run_check(database)
    assert empty.returncode == 0, empty.stdout + empty.stderr
    assert "schema is current" in empty.stdout
    assert newest(empty.stdout) == "none"

    async def create() -> datetime:
        store = await open_store(database, 1, create=False)
        try:
            await store.create("restored", Actor("test", None, None))
            (entry,) = await store.audit_page(None, 1)
        finally:
            await store.close()
        return entry.at

    changed_at = asyncio.run(create())
    result = run_check(database)
    assert result.returncode == 0, result.stdout + result.stderr
    assert datetime.fromisoformat(newest(result.stdout)) == changed_at


def test_a_schema_behind_the_release_fails(postgres_server: str) -> None:
    """An empty database (a restore to before the first migration) is behind: exit 1."""
    result = run_check(new_postgres_database(postgres_server))
    assert result.returncode != 0
    assert "run `registro migrate`" in result.stdout
