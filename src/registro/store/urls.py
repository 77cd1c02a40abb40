"""DATABASE_URL in its standard forms, mapped to the drivers registro uses."""


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db` or `sqlite:////absolute.db` -> the file path."""
    return url.removeprefix("sqlite:///")


def sqlalchemy_url(url: str) -> str:
    if is_postgres(url):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return "sqlite+aiosqlite:///" + sqlite_path(url)
