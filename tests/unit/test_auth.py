"""API keys: format, hashing, and what the authenticator accepts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import pytest

from registro.auth import (
    ANONYMOUS,
    SCOPES,
    Authenticator,
    Principal,
    hash_secret,
    needs_key,
    new_key,
    parse_bearer,
)
from registro.settings import AuthMode
from registro.store import Store, open_store
from registro.store.migrate import upgrade


def test_a_new_key_stores_only_a_hash_of_its_secret() -> None:
    token, row = new_key("ci", frozenset({"write"}))
    prefix, key_id, secret = token.split("_", 2)
    assert prefix == "rg" and key_id == row.key_id
    assert row.secret_hash == hash_secret(secret) and secret not in repr(row)
    assert len(secret) >= 40  # 32 random bytes, base64


def test_keys_need_known_scopes() -> None:
    with pytest.raises(ValueError, match="scopes"):
        new_key("x", frozenset({"root"}))
    with pytest.raises(ValueError, match="scopes"):
        new_key("x", frozenset())


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic abc",
        "Bearer",
        "Bearer rg",
        "Bearer rg_only",
        "Bearer xx_id_secret",
    ],
)
def test_headers_that_are_not_our_keys_parse_to_nothing(header: str | None) -> None:
    assert parse_bearer(header) is None


def test_admin_implies_every_scope_and_anonymous_holds_none() -> None:
    assert Principal("a", frozenset({"admin"})).allows("write")
    assert not Principal("r", frozenset({"read"})).allows("write")
    assert not any(ANONYMOUS.allows(scope) for scope in SCOPES)


@pytest.mark.parametrize(
    ("mode", "open_to_anyone"),
    [("off", {"read", "write"}), ("writes", {"read"}), ("all", set())],
)
def test_each_mode_opens_exactly_its_scopes_and_never_admin(
    mode: AuthMode, open_to_anyone: set[str]
) -> None:
    assert {scope for scope in SCOPES if not needs_key(scope, mode)} == open_to_anyone


@pytest.mark.parametrize(
    "name", ["", "anonymous", "Anonymous", "-x", "a b", "a\nb", "é", "x" * 65, "a/b", "a,b"]
)
def test_key_names_are_plain_short_and_never_anonymous(name: str) -> None:
    with pytest.raises(ValueError, match="key name"):
        new_key(name, frozenset({"read"}))


@pytest.mark.parametrize("name", ["a", "ci-deployer", "svc.grafana_2", "X" * 64])
def test_plain_key_names_are_accepted(name: str) -> None:
    assert new_key(name, frozenset({"read"}))[1].name == name


async def test_authenticator_checks_secret_revocation_and_caches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/keys.db"
    await asyncio.to_thread(upgrade, url)
    store = await open_store(url)
    try:
        token, row = new_key("ci", frozenset({"write"}))
        await store.add_key(row)
        fresh = Authenticator(store, cache_seconds=0)
        cached = Authenticator(store, cache_seconds=60)

        principal = await fresh.principal(f"Bearer {token}")
        assert principal == Principal("ci", frozenset({"write"}))
        assert await cached.principal(f"Bearer {token}") == principal
        assert await fresh.principal(f"Bearer {token[:-1]}x") is None

        await store.revoke_key("ci")
        assert await fresh.principal(f"Bearer {token}") is None
        assert await cached.principal(f"Bearer {token}") == principal  # until the cache expires
    finally:
        await store.close()


class Keys(NamedTuple):
    store: Store
    tokens: dict[str, str]
    cache: Authenticator


@pytest.fixture
async def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Keys]:
    """Read keys a, b and c in a fresh store, and an authenticator that caches two keys."""
    monkeypatch.setattr(Authenticator, "MAX_CACHED", 2)
    url = f"sqlite:///{tmp_path}/keys.db"
    await asyncio.to_thread(upgrade, url)
    store = await open_store(url)
    try:
        tokens = {}
        for name in ("a", "b", "c"):
            tokens[name], row = new_key(name, frozenset({"read"}))
            await store.add_key(row)
        yield Keys(store, tokens, Authenticator(store, cache_seconds=60))
    finally:
        await store.close()


async def test_cache_keeps_verified_keys_through_a_flood_of_bad_ones(keys: Keys) -> None:
    tokens, cache = keys.tokens, keys.cache
    for name in ("a", "b"):
        assert await cache.principal(f"Bearer {tokens[name]}") is not None
    for _ in range(50):
        bogus, _ = new_key("bogus", frozenset({"read"}))
        assert await cache.principal(f"Bearer {bogus}") is None
    for name in ("a", "b", "c"):
        await keys.store.revoke_key(name)
    # Still cached, so still answered without the store: the bogus keys evicted nothing.
    assert await cache.principal(f"Bearer {tokens['a']}") == Principal("a", frozenset({"read"}))
    assert await cache.principal(f"Bearer {tokens['b']}") == Principal("b", frozenset({"read"}))
    assert await cache.principal(f"Bearer {tokens['c']}") is None  # revoked, not cached


async def test_cache_evicts_the_least_recently_used_key(keys: Keys) -> None:
    tokens, cache = keys.tokens, keys.cache
    for name in ("a", "b", "a", "c"):  # "b" is now the least recently used, and evicted
        assert await cache.principal(f"Bearer {tokens[name]}") is not None
    for name in ("a", "b", "c"):
        await keys.store.revoke_key(name)
    assert await cache.principal(f"Bearer {tokens['a']}") is not None
    assert await cache.principal(f"Bearer {tokens['c']}") is not None
    assert await cache.principal(f"Bearer {tokens['b']}") is None
