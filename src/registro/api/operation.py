"""An operation, declared once at its handler: what it needs (scope, path id, query, body), what
it answers, and the audit action it records.

Each API module declares its operations with `@OPERATIONS.declare(...)` on the handler, by
keyword, so a route's method, path, auth scope, idempotency and audit action sit next to the
code that serves it. The one generic wrapper here authorizes the caller as the configured
REGISTRO_AUTH mode says, validates the input, calls the handler with what it needs, and
serialises the handler's result through the declared response type. /openapi.json is built
from the same declarations (registro.api.openapi), so the document says what the wrapper does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

from pydantic import BaseModel, TypeAdapter
from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Send
from starlette.types import Scope as ASGIScope

from registro.api import idempotency_header, inputs
from registro.api.access import key_holder
from registro.api.responses import JSON
from registro.auth import ANONYMOUS, Principal, Scope, needs_key
from registro.middleware import UNEXPECTED_BODY
from registro.settings import AuthMode
from registro.shared import shared
from registro.store import Store
from registro.store.idempotent_write import StoredResponse

Body = TypeVar("Body")
Query = TypeVar("Query")
Endpoint = Callable[[Request], Awaitable[Response]]
ID_PARAMETER = "{id}"


@dataclass(slots=True)  # not frozen: built on every request, and frozen costs a setattr a field
class Call(Generic[Body, Query]):
    """What a handler is given: the caller and the validated input its operation declares."""

    request: Request
    principal: Principal
    body: Body
    query: Query
    record_id: int  # 0 when the path has no {id}
    transaction: Store | None = None  # an idempotent write's: the store in its key's transaction
    audit: str = ""  # the operation's declared audit action ("" when it changes nothing)

    @property
    def store(self) -> Store:
        if self.transaction is not None:
            return self.transaction
        return shared(self.request).store


@dataclass(frozen=True, slots=True)
class Reply:
    """A result with response headers (a page's Link)."""

    content: Any
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Call[Any, Any]], Awaitable[Any]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True, kw_only=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    # The 200 body: a type pydantic serialises (a model, a dataclass, list[...]); None when the
    # handler answers its own Response (text/plain).
    response: Any = None
    scope: Scope | None = None  # None: public, whatever REGISTRO_AUTH says
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: Sequence[int] = ()  # what the handler itself answers (404, 409, ...)
    paginated: bool = False
    unavailable: bool = True  # may answer 503 when the database is down
    idempotent: bool = False  # takes an Idempotency-Key (registro.api.idempotency_header)
    # The action the store records in the audit trail, and the audit log line names ("" for an
    # operation that changes nothing); the handler passes it on as `call.audit`.
    audit: str = ""

    def needs_key(self, mode: AuthMode) -> bool:
        return self.scope is not None and needs_key(self.scope, mode)

    def error_statuses(self, mode: AuthMode) -> list[int]:
        """Every error status the operation can answer under `mode`."""
        statuses = set(self.errors)
        if self.needs_key(mode):
            statuses |= {401, 403}
        if self.body is not None:
            statuses |= {413, 415, 422}
        if self.query is not None or ID_PARAMETER in self.path:
            statuses.add(422)
        if self.unavailable:
            statuses.add(503)
        return sorted(statuses)


class Operations(list[Operation]):
    """A module's operations, in the order their handlers are declared."""

    def declare(self, method: str, path: str, **fields: Any) -> Callable[[H], H]:
        """Declares the decorated handler as the operation `method` `path`; `fields` are
        Operation's other fields, by keyword (a wrong one fails at import, as Operation's)."""

        def register(handler: H) -> H:
            self.append(Operation(method=method, path=path, handler=handler, **fields))
            return handler

        return register


def _instance_check(annotation: Any) -> Callable[[Any], bool]:
    """Whether a result is of the declared type: `T` or `list[T]`. Cheaper than asking the
    serializer to treat a mismatch as an error, which it otherwise only warns about."""
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return lambda value: isinstance(value, list) and all(isinstance(v, item) for v in value)
    return lambda value: isinstance(value, annotation)


def endpoint(op: Operation, mode: AuthMode) -> Endpoint:
    """The operation as a request handler, for REGISTRO_AUTH=`mode`."""
    scope = op.scope if op.needs_key(mode) else None
    has_id = ID_PARAMETER in op.path
    query_model, body_model, handler = op.query, op.body, op.handler
    declared = _instance_check(Response if op.response is None else op.response)
    to_json = None if op.response is None else TypeAdapter(op.response).serializer.to_json
    idempotent, audit = op.idempotent, op.audit

    async def call(request: Request) -> Response:
        principal = ANONYMOUS if scope is None else await key_holder(request, scope)
        record_id = inputs.record_id(request) if has_id else 0
        query = None if query_model is None else inputs.query(request, query_model)
        if body_model is not None:
            raw = await inputs.raw_body(request)
            body = inputs.body(raw, body_model)
        elif UNEXPECTED_BODY in request.scope:  # never read: its size is all that was checked
            raise HTTPException(400, f"{request.method} takes no request body")
        else:
            raw, body = b"", None
        key = idempotency_header.key(request) if idempotent else None
        if key is None:
            return await respond(request, principal, body, query, record_id, None)

        async def write(store: Store) -> StoredResponse:
            response = await respond(request, principal, body, query, record_id, store)
            return StoredResponse(response.status_code, bytes(response.body))

        return await idempotency_header.once(request, raw, principal.name, key, write)

    async def respond(
        request: Request,
        principal: Principal,
        body: Any,
        query: Any,
        record_id: int,
        store: Store | None,
    ) -> Response:
        result = await handler(Call(request, principal, body, query, record_id, store, audit))
        headers = None
        if isinstance(result, Reply):
            result, headers = result.content, result.headers
        if not declared(result):  # a bug, never a reply: the client gets a 500
            raise TypeError(f"{op.method} {op.path} answered a {type(result).__name__}")
        if to_json is None:
            return result  # type: ignore[no-any-return]  # checked: a Response
        return Response(to_json(result), 200, headers, media_type=JSON)

    call.__name__ = op.handler.__name__
    return call


class PathEndpoint(HTTPEndpoint):
    """Starlette's HTTPEndpoint with its path's methods worked out once, when routes are built:
    Starlette's own looks them up on every request (a getattr for each HTTP method, and a check
    that the handler is a coroutine function), which the benchmark prices.

    Only a method of `handlers` (or HEAD, with GET) reaches it: its Route is declared with
    exactly those methods, and Starlette's Route answers any other with a 405 naming them,
    which registro.api.errors makes JSON."""

    handlers: ClassVar[Mapping[str, Endpoint]] = {}

    def __init__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        self.scope, self.receive, self.send = scope, receive, send

    async def dispatch(self) -> None:
        request = Request(self.scope, receive=self.receive, send=self.send)
        method = request.method
        response = await self.handlers["GET" if method == "HEAD" else method](request)
        await response(self.scope, self.receive, self.send)


def routes(operations: Sequence[Operation], mode: AuthMode) -> list[Route]:
    """One route per path, its methods dispatched by a PathEndpoint; the Route answers a wrong
    method with a 405 naming every allowed one."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for op in operations:
        by_path.setdefault(op.path, {})[op.method] = endpoint(op, mode)
    return [
        Route(path, type(path, (PathEndpoint,), {"handlers": handlers}), methods=list(handlers))
        for path, handlers in by_path.items()
    ]
