"""/openapi.json is built from the same operations that route requests, for the configured
REGISTRO_AUTH mode."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import Route

from registro.api.openapi import document
from registro.app import OPERATIONS, create_app
from registro.settings import AuthMode, load_settings

UNDOCUMENTED = {"/openapi.json", "/docs"}
MODES: tuple[AuthMode, ...] = ("off", "writes", "all")
KEYED = {"401", "403"}


def paths(mode: AuthMode) -> dict[str, Any]:
    result: dict[str, Any] = document(OPERATIONS, mode, "registro", "0", "")["paths"]
    return result


def test_every_routed_path_and_method_is_documented() -> None:
    app = create_app(load_settings(database_url="sqlite:///unused.db"))
    while not hasattr(app, "routes"):
        app = app.app  # type: ignore[attr-defined]
    documented_paths = paths("off")
    for route in app.routes:
        if isinstance(route, Route) and route.path not in UNDOCUMENTED:
            documented = {m.upper() for m in documented_paths[route.path]}
            assert documented == (route.methods or set()) - {"HEAD"}, route.path


@pytest.mark.parametrize("mode", MODES)
def test_every_referenced_schema_is_defined(mode: AuthMode) -> None:
    doc = document(OPERATIONS, mode, "registro", "0", "")
    text = str(doc["paths"])
    names = {part.split("'")[0] for part in text.split("#/components/schemas/")[1:]}
    assert names
    for name in names:
        assert name in doc["components"]["schemas"], name


@pytest.mark.parametrize(
    ("mode", "keyed"),
    [
        ("off", {("GET", "/audit")}),
        ("writes", {("GET", "/audit"), ("POST", "/data"), ("PUT", "/data/{id}"),
                    ("DELETE", "/data/{id}")}),
        ("all", {("GET", "/audit"), ("POST", "/data"), ("PUT", "/data/{id}"),
                 ("DELETE", "/data/{id}"), ("GET", "/data"), ("GET", "/data/{id}")}),
    ],
)  # fmt: skip
def test_security_and_401_403_appear_exactly_where_the_mode_asks_for_a_key(
    mode: AuthMode, keyed: set[tuple[str, str]]
) -> None:
    for path, methods in paths(mode).items():
        for method, operation in methods.items():
            needs_key = (method.upper(), path) in keyed
            assert ("security" in operation) == needs_key, (mode, method, path)
            assert (set(operation["responses"]) >= KEYED) == needs_key, (mode, method, path)
            assert not (KEYED & set(operation["responses"])) or needs_key, (mode, method, path)
            if needs_key:
                assert operation["security"] == [{"bearerAuth": []}]


async def test_the_served_document_follows_REGISTRO_AUTH() -> None:
    import httpx

    served = {}
    for mode in MODES:
        app = create_app(load_settings(database_url="sqlite:///unused.db", auth=mode))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            served[mode] = (await client.get("/openapi.json")).json()["paths"]
        assert served[mode] == paths(mode)
    assert "security" not in served["off"]["/data"]["post"]
    assert served["writes"]["/data"]["post"]["security"] == [{"bearerAuth": []}]


def test_bodies_and_ids_document_their_refusals() -> None:
    post = paths("off")["/data"]["post"]
    assert {"413", "415", "422", "503"} <= set(post["responses"])
    name = document(OPERATIONS, "off", "r", "0", "")["components"]["schemas"]["NameIn"]
    assert "pattern" in name["properties"]["name"]
    assert "404" in paths("off")["/data/{id}"]["get"]["responses"]
