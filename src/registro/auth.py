"""API keys: `Authorization: Bearer <key>`, stored only as SHA-256 hashes, with scopes.

A key reads `rg_<key id>_<secret>`. The key id finds the row; the secret is compared by hash in
constant time. Keys are random 256-bit secrets, so a fast hash is the right one (a slow
password hash guards guessable inputs, which these are not). Verified keys are cached in memory
for `REGISTRO_AUTH_CACHE_SECONDS`, which bounds how long a revoked key keeps working.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from registro.store import ApiKey, Store

SCOPES = ("read", "write", "admin")
PREFIX = "rg"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


ANONYMOUS = Principal("anonymous", frozenset(SCOPES))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(name: str, scopes: frozenset[str]) -> tuple[str, ApiKey]:
    """A fresh key: the token to show once, and the row to store (which holds no secret)."""
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
