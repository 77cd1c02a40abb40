"""The Idempotency-Key header: a retried write answers what the first attempt answered.

A key is the caller's (the API key's name; `anonymous` without one), so two callers never see
each other's responses. The first request with a key writes and its response (status and body)
is stored with it, in the write's transaction (registro.store.idempotent_write); a repeat of
the same request (method, path and body) gets that response back, marked
`Idempotent-Replayed: true`, and writes nothing; the key with another request is 422. Input
the service refuses before it writes (401, 403, 413, 415, 422) stores nothing.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from registro.api.inputs import InvalidInput, header
from registro.api.responses import JSON
from registro.error_responses import error
from registro.shared import shared
from registro.store import Store
from registro.store.idempotent_write import IdempotentRequest, KeyReused, StoredResponse, Write
from registro.store.schema import IDEMPOTENCY_KEY_MAX_LENGTH

HEADER = "Idempotency-Key"
HEADER_NAME = HEADER.lower().encode()  # as the server hands header names over
REPLAYED = "Idempotent-Replayed"
# Printable ASCII without spaces: a UUID, a ULID, any token a client library makes.
KEY = re.compile(rf"[!-~]{{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}")
KEY_DESCRIPTION = (
    f"Makes a retried write safe: 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters"
    " without spaces (a UUID will do), new for each write. A repeat of the same request (method,"
    " path, body) by the same caller within REGISTRO_IDEMPOTENCY_HOURS gets the first response"
    f" again, with `{REPLAYED}: true`, and writes nothing; the key with another request is 422."
)
KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH,
    "pattern": "^[!-~]+$",
}


def _invalid(msg: str) -> InvalidInput:
    return InvalidInput([{"loc": f"header.{HEADER}", "msg": msg}])


def key(request: Request) -> str | None:
    """The request's key, None without one, InvalidInput (422) for one that is malformed."""
    value = header(request, HEADER_NAME)
    if value is None:
        return None
    if not KEY.fullmatch(value):
        raise _invalid(
            f"must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters without spaces"
        )
    return value


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request. The body is hashed as sent: a retry sends the
    same bytes."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def stored(respond: Write, store: Store) -> StoredResponse:
    """The response a write gives, as stored: the handler's own refusals (404, 409) included,
    since they are what the first attempt answered."""
    try:
        return await respond(store)
    except HTTPException as exc:
        if exc.status_code >= 500:
            raise
        response = error(exc.status_code, exc.detail)
        return StoredResponse(response.status_code, bytes(response.body))


async def once(
    request: Request, body: bytes, actor: str, idempotency_key: str, respond: Write
) -> Response:
    """Run the write `respond` at most once for this caller's key; `body` is the request's, as
    sent."""
    settings, store = shared(request).settings, shared(request).store
    claim = IdempotentRequest(
        actor=actor,
        key=idempotency_key,
        fingerprint=fingerprint(request.method, request.url.path, body),
        kept=timedelta(hours=settings.idempotency_hours),
    )
    try:
        outcome = await store.once(claim, lambda transactional: stored(respond, transactional))
    except KeyReused:
        raise _invalid(
            "was first used for a different request (method, path or body): send a new key"
            " for a new write"
        ) from None
    headers = {REPLAYED: "true"} if outcome.replayed else None
    return Response(outcome.response.body, outcome.response.status, headers, media_type=JSON)
