"""A database password read from a file at each new connection: rotation without a restart."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import new_postgres_database
from tests.support.service import REGISTRO, running_service

pytestmark = pytest.mark.postgres

ROLE = "rotated"


async def _sql(url: str, *statements: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        rows: list[asyncpg.Record] = []
        for statement in statements:
            rows = await connection.fetch(statement)
        return rows
    finally:
        await connection.close()


def _require_password_for_role(database: str) -> None:
    """The test server trusts everyone; make it ask ROLE for a password (first pg_hba match)."""
    rows = asyncio.run(_sql(database, "SHOW hba_file"))
    hba = Path(rows[0][0])
    hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    asyncio.run(_sql(database, "SELECT pg_reload_conf()"))


def _post_until(url: str, name: str, status: int, within: float = 10.0) -> int:
    deadline = time.monotonic() + within
    last = 0
    while time.monotonic() < deadline:
        last = httpx.post(f"{url}/data", json={"name": name}, timeout=5).status_code
        if last == status:
            break
        time.sleep(0.2)
    return last


def test_a_rotated_password_is_picked_up_by_new_connections(
    postgres_server: str, postgres_template: str, tmp_path: Path
) -> None:
    database = new_postgres_database(postgres_server, postgres_template)
    asyncio.run(
        _sql(
            database,
            f"CREATE ROLE {ROLE} LOGIN PASSWORD 'first'",
            f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {ROLE}",
            f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {ROLE}",
        )
    )
    _require_password_for_role(database)
    password_file = tmp_path / "password"
    password_file.write_text("first\n")
    service_url = database.replace("://registro@", f"://{ROLE}@")
    terminate = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{ROLE}'"

    with running_service(
        service_url,
        tmp_path / "service.log",
        REGISTRO_ENV="qa",
        REGISTRO_AUTH="off",
        REGISTRO_DATABASE_PASSWORD_FILE=str(password_file),
    ) as service:
        assert _post_until(service.url, "before", 200) == 200

        # The password changes in the database; the service's connections are dropped.
        asyncio.run(_sql(database, f"ALTER ROLE {ROLE} PASSWORD 'second'", terminate))
        assert _post_until(service.url, "stale", 503) == 503, "the old password still worked"

        # The secret store updates the file: new connections use it, no restart.
        password_file.write_text("second\n")
        assert _post_until(service.url, "after", 200) == 200
        assert service.process.poll() is None


def test_a_missing_password_file_stops_the_process_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "REGISTRO_DATABASE_PASSWORD_FILE": str(tmp_path / "absent")}
    result = subprocess.run(
        [REGISTRO, "serve"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.startswith("registro: invalid REGISTRO_DATABASE_PASSWORD_FILE=")
    assert "must name a readable file" in result.stderr
