"""API keys: `Authorization: Bearer <key>`, stored only as SHA-256 hashes, with scopes.

A key reads `rg_<key id>_<secret>`. The key id finds the row; the secret is compared by hash in
constant time. Keys are random 256-bit secrets, so a fast hash is the right one (a slow
password hash guards guessable inputs, which these are not). Verified keys are cached in memory
for `REGISTRO_AUTH_CACHE_SECONDS`, which bounds how long a revoked key keeps working.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from registro.settings import AuthMode
from registro.store import ApiKey, Store

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
PREFIX = "rg"
# What REGISTRO_AUTH opens to callers without a key; anything else needs a key with the scope.
# `admin` (the audit trail) is open in no mode.
OPEN_SCOPES: dict[AuthMode, frozenset[str]] = {
    "off": frozenset({"read", "write"}),
    "writes": frozenset({"read"}),
    "all": frozenset(),
}
# A key's name is what the audit trail records as the actor: plain, short, and never the name
# that marks changes made without a key.
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RESERVED_NAMES = frozenset({"anonymous"})


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


# Who calls without a key. It holds no scope: what it may do is what the mode opens to anyone.
ANONYMOUS = Principal("anonymous", frozenset())


def needs_key(scope: Scope, mode: AuthMode) -> bool:
    """Whether REGISTRO_AUTH=`mode` asks for a key for `scope` (the API and its document)."""
    return scope not in OPEN_SCOPES[mode]


def check_key_name(name: str) -> None:
    if not KEY_NAME.fullmatch(name):
        raise ValueError(
            "a key name is 1 to 64 letters, digits, '.', '_' or '-', and starts with a letter"
            " or digit"
        )
    if name.lower() in RESERVED_NAMES:
        raise ValueError(f"the key name {name!r} is reserved")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(name: str, scopes: frozenset[str]) -> tuple[str, ApiKey]:
    """A fresh key: the token to show once, and the row to store (which holds no secret)."""
    check_key_name(name)
    unknown = scopes - set(SCOPES)
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiKey(name, key_id, hash_secret(secret), scopes, datetime.now(UTC), None)
    return f"{PREFIX}_{key_id}_{secret}", row


def parse_bearer(header: str | None) -> tuple[str, str] | None:
    """(key id, secret) from an Authorization header, or None when it is not one of ours."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    prefix, _, rest = token.strip().partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not key_id or not secret:
        return None
    return key_id, secret


class Authenticator:
    """Verifies bearer keys; remembers verified ones (never failures, which any client can
    invent by the million) in a bounded least-recently-used cache."""

    MAX_CACHED = 10_000

    def __init__(self, store: Store, cache_seconds: float) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    async def principal(self, header: str | None) -> Principal | None:
        """The key's holder, or None for a missing, malformed, unknown or revoked key."""
        parsed = parse_bearer(header)
        if parsed is None:
            return None
        key_id, secret = parsed
        digest = hash_secret(secret)
        cache_key = key_id + digest
        now = time.monotonic()
        cached = self._cache.get(cache_key)
        if cached and cached[0] > now:
            self._cache.move_to_end(cache_key)
            return cached[1]
        key = await self._store.find_key(key_id)
        if (
            not key
            or key.revoked_at is not None
            or not hmac.compare_digest(digest, key.secret_hash)
        ):
            self._cache.pop(cache_key, None)
            return None
        principal = Principal(key.name, key.scopes)
        self._cache[cache_key] = (now + self._cache_seconds, principal)
        self._cache.move_to_end(cache_key)
        if len(self._cache) > self.MAX_CACHED:
            self._cache.popitem(last=False)
        return principal
