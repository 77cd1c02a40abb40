"""DATABASE_URL forms: what is accepted, and how it maps to the drivers."""

from __future__ import annotations

import pytest

from registro.settings import valid_postgres_hosts
from registro.store.urls import sqlalchemy_url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pw@db:5432/registro",
        "postgres://app@db/registro",
        "postgresql://app@pg1:5432,pg2:5433/registro?target_session_attrs=read-write",
        "postgresql://app@[::1]:5432/registro",
        "postgresql:///registro?host=/run/postgresql",
        "postgresql://app:p%40ss@db/registro",
        "sqlite:///registro.db",
    ],
)
def test_well_formed_urls_are_accepted(url: str) -> None:
    assert valid_postgres_hosts(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pw@db:notaport/registro",
        "postgresql://app@db:/registro",
        "postgresql://app@db:123456/registro",
        "postgresql://app@pg1:5432,pg2:x/registro",
    ],
)
def test_a_port_that_is_not_a_number_is_refused(url: str) -> None:
    assert not valid_postgres_hosts(url)


def test_urls_map_to_the_async_drivers() -> None:
    assert sqlalchemy_url("postgres://app@db/r") == "postgresql+asyncpg://app@db/r"
    assert sqlalchemy_url("sqlite:///r.db") == "sqlite+aiosqlite:///r.db"
