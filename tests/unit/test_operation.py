"""The one wrapper every operation runs in: it authorizes as REGISTRO_AUTH says, validates, calls
the handler with what the operation declares, and serialises through the declared response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.routing import Router

from registro.api.operation import Call, Operations, PathEndpoint, routes
from registro.api.schemas import Message, NameIn
from registro.app import Service
from registro.auth import ANONYMOUS, Principal
from registro.lifecycle import Lifecycle
from registro.settings import AuthMode, load_settings
from registro.shared import Shared
from registro.store import Record

WRITER = Principal("writer", frozenset({"write"}))
READER = Principal("reader", frozenset({"read"}))
TOKENS = {"Bearer writer": WRITER, "Bearer reader": READER}


class FakeAuthenticator:
    async def principal(self, header: str | None) -> Principal | None:
        return TOKENS.get(header or "")


calls: list[Call[Any, Any]] = []
OPERATIONS = Operations()


@OPERATIONS.declare(
    "PUT",
    "/things/{id}",
    summary="s",
    tag="t",
    response=Record,
    scope="write",
    body=NameIn,
    audit="update",
)
async def rename(call: Call[NameIn, None]) -> Record:
    calls.append(call)
    return Record(call.record_id, call.body.name)


@OPERATIONS.declare("GET", "/wrong", summary="s", tag="t", response=Record, scope="read")
async def wrong_shape(call: Call[None, None]) -> Any:
    return {"id": 1, "name": "not a Record", "secret": "leaks if sent as it is"}


def test_the_decorator_declares_its_handler_in_order_and_returns_it_unchanged() -> None:
    assert [(op.method, op.path, op.handler) for op in OPERATIONS] == [
        ("PUT", "/things/{id}", rename),
        ("GET", "/wrong", wrong_shape),
    ]
    put, get = OPERATIONS
    assert (put.scope, put.body, put.audit) == ("write", NameIn, "update")
    assert (get.scope, get.body, get.audit) == ("read", None, "")


@pytest.fixture
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    mode: AuthMode = getattr(request, "param", "writes")
    app = Service(Router(routes(OPERATIONS, mode)), Shared(load_settings(), Lifecycle()))
    app.shared.authenticator = FakeAuthenticator()
    calls.clear()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def test_a_scope_the_mode_protects_needs_a_key_holding_it(client: httpx.AsyncClient) -> None:
    missing = await client.put("/things/7", json={"name": "a"})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    lacking = await client.put(
        "/things/7", json={"name": "a"}, headers={"Authorization": "Bearer reader"}
    )
    assert lacking.status_code == 403
    assert calls == [], "the handler ran for a caller the wrapper refused"
    allowed = await client.put(
        "/things/7", json={"name": " a "}, headers={"Authorization": "Bearer writer"}
    )
    assert allowed.status_code == 200 and allowed.json() == {"id": 7, "name": "a"}
    assert [c.principal for c in calls] == [WRITER]
    assert [c.audit for c in calls] == ["update"], "the handler is not given its audit action"


@pytest.mark.parametrize("client", ["off"], indirect=True)
async def test_a_scope_the_mode_opens_is_called_anonymously(client: httpx.AsyncClient) -> None:
    response = await client.put("/things/7", json={"name": "a"})
    assert response.status_code == 200
    # Even with a key: a mode that asks for none does not look at it.
    await client.put("/things/7", json={"name": "a"}, headers={"Authorization": "Bearer writer"})
    assert [c.principal for c in calls] == [ANONYMOUS, ANONYMOUS]


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/things/0", b'{"name": "a"}'),
        ("/things/" + "9" * 5000, b'{"name": "a"}'),
        ("/things/7", b'{"name": "a", "name": "b"}'),
        ("/things/7", b'{"name": ""}'),
        ("/things/7", b"not json"),
    ],
)
async def test_invalid_input_is_422_before_the_handler(
    client: httpx.AsyncClient, url: str, body: bytes
) -> None:
    headers = {"Authorization": "Bearer writer", "Content-Type": "application/json"}
    response = await client.put(url, content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("Invalid request: ")
    assert response.json()["errors"][0]["loc"] in {"path.id", "body", "body.name"}
    assert calls == []


async def test_a_result_of_another_shape_is_never_sent(client: httpx.AsyncClient) -> None:
    response = await client.get("/wrong", headers={"Authorization": "Bearer reader"})
    assert response.status_code == 500
    assert "secret" not in response.text
    assert Message.model_validate(response.json()).message == "Internal server error"


async def test_methods_are_dispatched_per_path_with_405_naming_the_allowed(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete("/things/7")
    assert response.status_code == 405
    assert response.headers["allow"] == "PUT"
    assert response.json()["message"]


@pytest.mark.parametrize("method", ["DELETE", "POST", "PATCH", "GET", "HEAD", "OPTIONS", "TRACE"])
async def test_a_method_the_path_lacks_never_reaches_its_endpoint(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """The Route refuses it (Starlette's Route.handle: its `methods` are the path's handlers),
    so the endpoint needs no 405 of its own; one that came back would be reached here."""
    entered: list[str] = []
    dispatch = PathEndpoint.dispatch

    async def recording(self: PathEndpoint) -> None:
        entered.append(self.scope["method"])
        await dispatch(self)

    monkeypatch.setattr(PathEndpoint, "dispatch", recording)
    response = await client.request(method, "/things/7")
    assert response.status_code == 405
    assert response.headers["allow"] == "PUT"
    assert response.headers["content-type"] == "application/json"
    assert entered == []
    allowed = await client.put(
        "/things/7", json={"name": "a"}, headers={"Authorization": "Bearer writer"}
    )
    assert allowed.status_code == 200, allowed.text
    assert entered == ["PUT"]
