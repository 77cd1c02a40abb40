"""Migrations: the schema is defined once, migrations match it, and concurrent runs are safe."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from registro.store.schema import metadata
from registro.store.urls import sqlalchemy_url
from tests.conftest import in_thread, new_postgres_database
from tests.support.service import REGISTRO, running_service


def _registro(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "REGISTRO_ENV": "qa"}
    return subprocess.run([REGISTRO, *args], env=env, capture_output=True, text=True, timeout=60)


async def test_migrations_produce_exactly_the_declared_schema(database_url: str) -> None:
    engine = create_async_engine(sqlalchemy_url(database_url))
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
    finally:
        await engine.dispose()
    assert differences == []


@pytest.mark.postgres
def test_check_fails_before_and_passes_after_migrate(postgres_server: str) -> None:
    url = new_postgres_database(postgres_server)
    before = _registro(url, "migrate", "--check")
    assert before.returncode == 1
    assert "run `registro migrate`" in before.stdout
    assert _registro(url, "migrate").returncode == 0
    after = _registro(url, "migrate", "--check")
    assert after.returncode == 0, after.stdout + after.stderr


@pytest.mark.postgres
def test_migrate_reads_connection_parameters_as_the_service_does(postgres_server: str) -> None:
    """libpq query parameters (RDS URLs carry sslmode) mean the same to migrate and to serve."""
    url = new_postgres_database(postgres_server) + "?sslmode=prefer&application_name=migrate"
    migrated = _registro(url, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    refused = _registro(url.replace("sslmode=prefer", "sslmode=require"), "migrate")
    assert refused.returncode == 3  # the test server has no TLS: asyncpg honoured sslmode
    assert "rejected SSL upgrade" in refused.stderr


@pytest.mark.postgres
def test_concurrent_migrations_are_serialised_by_the_advisory_lock(postgres_server: str) -> None:
    url = new_postgres_database(postgres_server)
    env = {**os.environ, "DATABASE_URL": url, "REGISTRO_ENV": "qa"}
    runs = [
        subprocess.Popen(
            [REGISTRO, "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0, 0], outputs
    assert sum("Running upgrade" in output for output in outputs) == 1, outputs
    assert _registro(url, "migrate", "--check").returncode == 0


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_schema_migrated_by_a_later_release_is_served_and_left_alone(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Expand and contract: a rollback, or old pods in a rolling update, meet a newer schema."""
    if database == "sqlite":
        url = f"sqlite:///{tmp_path}/later.db"
    else:
        url = new_postgres_database(request.getfixturevalue("postgres_server"))
    assert _registro(url, "migrate").returncode == 0
    asyncio.run(_set_revision(url, "9f00later"))

    check = _registro(url, "migrate", "--check")
    assert check.returncode == 0, check.stdout
    assert "newer than this release" in check.stdout
    migrate = _registro(url, "migrate")
    assert migrate.returncode == 0, migrate.stderr
    assert "left as it is" in migrate.stdout
    assert asyncio.run(_revision(url)) == "9f00later"
    with running_service(url, tmp_path / "service.log", REGISTRO_ENV="qa") as service:
        assert httpx.get(f"{service.url}/readyz").json() == {"message": "ready"}


async def _set_revision(url: str, revision: str) -> None:
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
            )
    finally:
        await engine.dispose()


async def _revision(url: str) -> str:
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.connect() as connection:
            return str(
                (
                    await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
                ).scalar_one()
            )
    finally:
        await engine.dispose()


async def _audit_columns(database_url: str) -> set[str]:
    engine = create_async_engine(sqlalchemy_url(database_url))
    try:
        async with engine.connect() as connection:
            columns = await connection.run_sync(lambda sync: sa.inspect(sync).get_columns("audit"))
    finally:
        await engine.dispose()
    return {column["name"] for column in columns}


def test_the_audit_trace_id_migrates_down_and_up_again(database_url: str) -> None:
    """0004 adds audit.trace_id and takes it away again, on both backends (Alembic
    op.add_column / op.drop_column; SQLite has had DROP COLUMN since 3.35)."""
    from alembic import command

    from registro.store.migrate import alembic_config

    assert "trace_id" in in_thread(asyncio.run, _audit_columns(database_url))
    config = alembic_config(database_url)
    in_thread(command.downgrade, config, "0003")
    assert "trace_id" not in in_thread(asyncio.run, _audit_columns(database_url))
    in_thread(command.upgrade, config, "head")
    assert "trace_id" in in_thread(asyncio.run, _audit_columns(database_url))
