"""Schema migrations with Alembic: upgrade to head, and tell where a database stands.

Releases change the schema by expand and contract: a migration only adds what the next release
needs, so the release before it still works on the newer schema. A database at a revision this
release does not know was migrated by a later release; it is "ahead", which is fine to serve
from (during a rolling update, or after a rollback) and never migrated down.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from registro.settings import is_postgres
from registro.store.sqlite import require_directory
from registro.store.urls import sqlite_path

MIGRATIONS = Path(__file__).parent / "migrations"
# Held by every `registro migrate` while it changes the schema or the app role's grants.
MIGRATION_LOCK_ID = 7_261_013  # any constant


def alembic_config(database_url: str, password_file: Path | None = None) -> Config:
    config = Config()
    config.attributes["password_file"] = password_file
    config.set_main_option("script_location", str(MIGRATIONS))
    # Stored raw: ConfigParser would read "%" in a password as interpolation.
    config.set_main_option("database_url", database_url.replace("%", "%%"))
    return config


SchemaState = Literal["current", "behind", "ahead"]


@functools.cache
def _scripts() -> ScriptDirectory:
    """Read once per process: /readyz asks on every probe."""
    return ScriptDirectory(str(MIGRATIONS))


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    return frozenset(r.revision for r in _scripts().walk_revisions())


def schema_state(revision: str | None) -> SchemaState:
    """Where a database at `revision` stands against this release's migrations."""
    if revision == head_revision():
        return "current"
    if revision is None or revision in known_revisions():
        return "behind"
    return "ahead"


def upgrade(database_url: str, password_file: Path | None = None) -> str | None:
    """Bring the database to head, unless a later release has migrated it further: then leave
    it and return its revision. Blocking: call it outside the event loop."""
    if not is_postgres(database_url):
        require_directory(sqlite_path(database_url))
    config = alembic_config(database_url, password_file)
    command.upgrade(config, "head")
    ahead: str | None = config.attributes.get("ahead_at")
    return ahead
