"""DATABASE_URL in its standard forms (checked by registro.settings), mapped to the drivers
registro uses."""

from collections.abc import Callable
from pathlib import Path

from registro.settings import is_postgres


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db` or `sqlite:////absolute.db` -> the file path."""
    return url.removeprefix("sqlite:///")


def sqlalchemy_url(url: str) -> str:
    if is_postgres(url):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return "sqlite+aiosqlite:///" + sqlite_path(url)


def password_reader(path: Path | None) -> Callable[[], str] | None:
    """A password read from `path` each time it is called (each new connection), or None."""
    if path is None:
        return None
    return lambda: path.read_text().strip()
