"""API keys in the database, written once for both drivers: the statements in asyncpg's `$n`
placeholders (SQLite's are derived from them: registro.store.idempotent_write.sqlite_placeholders),
and a row read back as an ApiKey. Times are the service's clock on both, as `created_at` is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from registro.store.base import ApiKey

COLUMNS = "name, key_id, secret_hash, scopes, created_at, revoked_at"
ADD = f"INSERT INTO api_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
ALL = f"SELECT {COLUMNS} FROM api_keys ORDER BY id"
FIND = f"SELECT {COLUMNS} FROM api_keys WHERE key_id = $1"
REVOKE = "UPDATE api_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL RETURNING id"

Time = Callable[[Any], Any]  # a datetime to the column's value (ADD), or back (api_key)


def _same(value: Any) -> Any:
    return value


def parameters(key: ApiKey, to_column: Time = _same) -> tuple[Any, ...]:
    """ADD's parameters: the scopes as one comma-separated column."""
    revoked_at = None if key.revoked_at is None else to_column(key.revoked_at)
    scopes = ",".join(sorted(key.scopes))
    return key.name, key.key_id, key.secret_hash, scopes, to_column(key.created_at), revoked_at


def api_key(row: Any, from_column: Time = _same) -> ApiKey:
    """A row of ALL or FIND (a mapping by column name)."""
    created_at: datetime = from_column(row["created_at"])
    revoked_at = row["revoked_at"]
    return ApiKey(
        name=row["name"],
        key_id=row["key_id"],
        secret_hash=row["secret_hash"],
        scopes=frozenset(row["scopes"].split(",")),
        created_at=created_at,
        revoked_at=None if revoked_at is None else from_column(revoked_at),
    )
