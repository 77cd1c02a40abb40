"""Who is calling: the API key check of operations that need one, and the audit's actor."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from registro.api.inputs import header
from registro.auth import Principal, Scope
from registro.shared import shared
from registro.store import Actor, Record
from registro.telemetry.logs import audit_log
from registro.telemetry.requests import caller_request_id, client_address, request_id, trace_id


async def key_holder(request: Request, scope: Scope) -> Principal:
    """The caller of an operation whose scope needs a key: its key's holder, if that key holds
    the scope; 401 (no valid key) or 403 (the key lacks the scope) otherwise."""
    authorization = header(request, b"authorization")
    principal = await shared(request).authenticator.principal(authorization)
    if principal is None:
        raise HTTPException(401, "Missing or invalid API key", {"WWW-Authenticate": "Bearer"})
    if not principal.allows(scope):
        raise HTTPException(403, f"The API key lacks the '{scope}' scope")
    return principal


def actor(request: Request, principal: Principal) -> Actor:
    scope = request.scope
    return Actor(
        principal.name,
        request_id(scope),
        client_address(scope),
        caller_request_id(scope),
        trace_id(scope),
    )


def log_change(action: str, who: Actor, record: Record) -> None:
    """The log line that goes with each audit row (the row itself is written by the store)."""
    audit_log.write(
        {
            "request_id": who.request_id,
            "trace_id": who.trace_id,
            "action": action,
            "actor": who.name,
            "record_id": record.id,
            "name": record.name,
            "caller_request_id": who.caller_request_id,
            "client": who.client,
        }
    )
