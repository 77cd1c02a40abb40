"""The service's own database role cannot touch the audit trail's definition or its rows.

Set up as in production: a server that asks for passwords (SCRAM), an owner role that is not a
superuser but may create roles (as the RDS master), `registro migrate` run as that owner with
REGISTRO_APP_ROLE, and the service connecting as the app role it created.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from registro.app import create_app
from registro.settings import load_settings
from tests.conftest import IN_CI, bearer
from tests.support.postgres import PostgresMissing, running_postgres
from tests.support.service import REGISTRO

pytestmark = pytest.mark.postgres

APP_ROLE = "registro_app"
# Random per run: nothing here is a credential of anything real.
SUPERUSER_SECRET, OWNER_SECRET, APP_SECRET, ROTATED_SECRET = (
    secrets.token_hex(12) for _ in range(4)
)


@dataclass(frozen=True)
class Database:
    owner_url: str  # no password in it: the owner's is in owner_password_file
    owner_password_file: Path
    host: str  # 127.0.0.1:port

    def url(self, role: str) -> str:
        return f"postgresql://{role}@{self.host}/registro"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    try:
        with running_postgres(password=SUPERUSER_SECRET) as url:
            yield url
    except PostgresMissing as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(str(exc))


async def _create_owner(superuser_url: str) -> None:
    connection = await asyncpg.connect(superuser_url)
    try:
        await connection.execute(f"CREATE ROLE owner LOGIN CREATEROLE PASSWORD '{OWNER_SECRET}'")
        await connection.execute("CREATE DATABASE registro OWNER owner")
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def database(server: str, tmp_path_factory: pytest.TempPathFactory) -> Database:
    asyncio.run(_create_owner(server))
    host = server.split("@", 1)[1].split("/", 1)[0]
    password_file = tmp_path_factory.mktemp("owner") / "password"
    password_file.write_text(OWNER_SECRET + "\n")
    return Database(f"postgresql://owner@{host}/registro", password_file, host)


def migrate(
    database: Database, tmp_path: Path, role: str, password: str
) -> subprocess.CompletedProcess[str]:
    app_password = tmp_path / f"{role}-password"
    app_password.write_text(password + "\n")
    env = {
        **os.environ,
        "REGISTRO_ENV": "qa",
        "DATABASE_URL": database.owner_url,
        "REGISTRO_DATABASE_PASSWORD_FILE": str(database.owner_password_file),
        "REGISTRO_APP_ROLE": role,
        "REGISTRO_APP_PASSWORD_FILE": str(app_password),
    }
    return subprocess.run(
        [REGISTRO, "migrate"], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def app_password(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The database migrated, and the app role created, by `registro migrate`."""
    tmp = tmp_path_factory.mktemp("app")
    done = migrate(database, tmp, APP_ROLE, APP_SECRET)
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp / f"{APP_ROLE}-password"


@pytest.fixture
async def as_app(database: Database, app_password: Path) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database.url(APP_ROLE), password=APP_SECRET)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE audit DISABLE TRIGGER audit_append_only",
        "ALTER TABLE audit DISABLE TRIGGER ALL",
        "DROP TRIGGER audit_no_truncate ON audit",
        "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN NEW; END $$",
        "ALTER TABLE audit DROP COLUMN actor",
        "UPDATE audit SET actor = 'mallory'",
        "DELETE FROM audit",
        "TRUNCATE audit",
        "DROP TABLE audit",
        "DELETE FROM api_keys",
        "TRUNCATE records",
        "UPDATE alembic_version SET version_num = 'x'",
    ],
)
async def test_the_app_role_cannot_change_the_audit_trail(
    as_app: asyncpg.Connection, statement: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_app.execute(statement)


async def test_the_app_role_is_neither_owner_nor_superuser(as_app: asyncpg.Connection) -> None:
    row = await as_app.fetchrow(
        "SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, t.tableowner"
        " FROM pg_roles r, pg_tables t WHERE r.rolname = current_user AND t.tablename = 'audit'"
    )
    assert row is not None
    assert (row["rolsuper"], row["rolcreaterole"], row["rolcreatedb"]) == (False, False, False)
    assert row["tableowner"] == "owner"
    granted = await as_app.fetch(
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
        " WHERE grantee = current_user ORDER BY 1, 2"
    )
    assert {(r[0], r[1]) for r in granted} == {
        ("alembic_version", "SELECT"),
        ("api_keys", "INSERT"),
        ("api_keys", "SELECT"),
        ("api_keys", "UPDATE"),
        ("audit", "INSERT"),
        ("audit", "SELECT"),
        ("idempotency_keys", "DELETE"),
        ("idempotency_keys", "INSERT"),
        ("idempotency_keys", "SELECT"),
        ("idempotency_keys", "UPDATE"),
        ("records", "DELETE"),
        ("records", "INSERT"),
        ("records", "SELECT"),
        ("records", "UPDATE"),
    }


async def test_the_service_works_as_the_app_role(
    database: Database, app_password: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "REGISTRO_ENV": "qa",
        "DATABASE_URL": database.url(APP_ROLE),
        "REGISTRO_DATABASE_PASSWORD_FILE": str(app_password),
    }
    created = await asyncio.to_thread(
        subprocess.run,
        [REGISTRO, "keys", "create", "auditor", "--scopes", "read,write,admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    settings = load_settings(
        env="qa", database_url=database.url(APP_ROLE), database_password_file=app_password
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 51000))
        async with httpx.AsyncClient(transport=transport, base_url="http://registro.test") as c:
            assert (await c.get("/readyz")).status_code == 200
            # With an Idempotency-Key: the role may claim, complete and purge keys.
            keyed = {**bearer(token), "Idempotency-Key": "first"}
            record = (await c.post("/data", json={"name": "a"}, headers=keyed)).json()
            again = await c.post("/data", json={"name": "a"}, headers=keyed)
            assert (again.json(), again.headers["Idempotent-Replayed"]) == (record, "true")
            path = f"/data/{record['id']}"
            assert (await c.put(path, json={"name": "b"}, headers=bearer(token))).status_code == 200
            assert (await c.delete(path, headers=bearer(token))).status_code == 200
            audit = (await c.get("/audit", headers=bearer(token))).json()
    assert [e["action"] for e in audit][:3] == ["delete", "update", "create"]


async def test_migrate_again_rotates_the_password_and_keeps_the_grants(
    database: Database, app_password: Path, tmp_path: Path
) -> None:
    done = migrate(database, tmp_path, APP_ROLE, ROTATED_SECRET)
    assert done.returncode == 0, done.stdout + done.stderr
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(database.url(APP_ROLE), password=APP_SECRET)
    connection = await asyncpg.connect(database.url(APP_ROLE), password=ROTATED_SECRET)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("ALTER TABLE audit DISABLE TRIGGER ALL")
        assert await connection.fetchval("SELECT count(*) FROM records") >= 0
    finally:
        await connection.close()
    done = migrate(database, tmp_path, APP_ROLE, APP_SECRET)  # as the other tests expect
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_owner_is_refused_as_the_app_role(database: Database, tmp_path: Path) -> None:
    refused = migrate(database, tmp_path, "owner", "whatever")
    assert refused.returncode == 2
    assert "owner of the tables" in refused.stderr
    assert "Traceback" not in refused.stderr
