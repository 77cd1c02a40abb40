"""DATABASE_URL in its standard forms, mapped to the drivers registro uses."""

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

# One host of a libpq-style URL's host list: a name or address (IPv6 bracketed), optional port.
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:/\[\]]*)(:\d{1,5})?")


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def valid_postgres_hosts(url: str) -> bool:
    """Whether every host in a PostgreSQL URL (`h1:5432,h2:5432` too) is well formed."""
    if not is_postgres(url):
        return True
    hosts = urlsplit(url).netloc.rpartition("@")[2]
    return all(_HOST.fullmatch(host) for host in hosts.split(","))


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
