"""Schema migrations with Alembic: upgrade to head, and tell whether a database is at head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from registro.store.sqlite import require_directory
from registro.store.urls import is_postgres, sqlite_path

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str, password_file: Path | None = None) -> Config:
    config = Config()
    config.attributes["password_file"] = password_file
    config.set_main_option("script_location", str(MIGRATIONS))
    # Stored raw: ConfigParser would read "%" in a password as interpolation.
    config.set_main_option("database_url", database_url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def upgrade(database_url: str, password_file: Path | None = None) -> None:
    """Bring the database to head. Blocking: call it outside the event loop."""
    if not is_postgres(database_url):
        require_directory(sqlite_path(database_url))
    command.upgrade(alembic_config(database_url, password_file), "head")
