"""The service's own PostgreSQL role: it changes data, never the schema or the audit trail.

`registro migrate` runs as the owner of the tables (the RDS master, the stack's `registro`); with
REGISTRO_APP_ROLE it then creates or updates the service's LOGIN role and grants it exactly what
the service does, nothing else. Not being the owner, the role cannot ALTER the audit table or
DISABLE its append-only triggers; without UPDATE, DELETE and TRUNCATE on it, the triggers are a
second line, not the only one. SQLite has no roles: there, whoever can open the file can do all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable

import asyncpg

from registro.store.base import DatabaseUnavailable
from registro.store.migrate import MIGRATION_LOCK_ID
from registro.store.postgres import CONNECTION_ERRORS

# What the service does with each table (store/postgres.py); sequences: USAGE on all of them.
GRANTS = {
    "records": "SELECT, INSERT, UPDATE, DELETE",
    "audit": "SELECT, INSERT",
    # `registro keys create/revoke` run with the service's credentials (from a pod or container).
    "api_keys": "SELECT, INSERT, UPDATE",
    "alembic_version": "SELECT",  # /readyz compares the schema with this release's
    # Claimed, completed and, once expired, purged by the writes that carry an Idempotency-Key.
    "idempotency_keys": "SELECT, INSERT, UPDATE, DELETE",
}
SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)


class RoleRefused(Exception):
    """The app role would not be a separate, unprivileged role; the message says why."""


def scram_verifier(password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, RFC 7677).

    Sent instead of the password, so the password never appears in a statement the server may
    log (log_statement=ddl). ASCII only: PostgreSQL's SASLprep of other text is not reproduced.
    """
    if not password.isascii():
        raise RoleRefused("the app role's password must be ASCII")
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


async def _refuse_privileged(connection: asyncpg.Connection, role: str) -> None:
    row = await connection.fetchrow(
        "SELECT r.rolsuper, pg_has_role($1, t.tableowner, 'MEMBER') AS acts_as_owner"
        " FROM pg_roles r, pg_tables t"
        " WHERE r.rolname = $1 AND t.tablename = 'audit' AND t.schemaname = current_schema()",
        role,
    )
    if row is None:
        return
    if row["rolsuper"]:
        raise RoleRefused(f"REGISTRO_APP_ROLE={role} is a superuser")
    if row["acts_as_owner"]:
        raise RoleRefused(f"REGISTRO_APP_ROLE={role} is, or can act as, the owner of the tables")


async def _apply(connection: asyncpg.Connection, role: str, password: str | None) -> None:
    quoted = f'"{role}"'  # the role's name is validated by settings: [a-z_][a-z0-9_]*
    if not await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        await connection.execute(f"CREATE ROLE {quoted} LOGIN")
    await _refuse_privileged(connection, role)
    login = f"LOGIN PASSWORD '{scram_verifier(password)}'" if password is not None else "LOGIN"
    await connection.execute(f"ALTER ROLE {quoted} {login}")
    database = await connection.fetchval("SELECT quote_ident(current_database())")
    schema = await connection.fetchval("SELECT quote_ident(current_schema())")
    await connection.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {quoted}")
    await connection.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {quoted}")
    await connection.execute(f"GRANT CONNECT ON DATABASE {database} TO {quoted}")
    await connection.execute(f"GRANT USAGE ON SCHEMA {schema} TO {quoted}")
    for table, privileges in GRANTS.items():
        await connection.execute(f"GRANT {privileges} ON {schema}.{table} TO {quoted}")
    await connection.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}")


async def grant_app_role(
    url: str, password: Callable[[], str] | None, role: str, role_password: str | None
) -> None:
    """Create or update `role` and give it exactly GRANTS, in one transaction, under the
    migrations' advisory lock (concurrent GRANTs on one object can fail)."""
    try:
        connection = await asyncpg.connect(url, password=password)
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            async with connection.transaction():
                await _apply(connection, role, role_password)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise RoleRefused(f"cannot set up REGISTRO_APP_ROLE={role}: {exc}") from exc
    finally:
        await connection.close()
