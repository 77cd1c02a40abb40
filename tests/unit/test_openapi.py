"""/openapi.json is built from the same operations that route requests."""

from __future__ import annotations

from starlette.routing import Route

from registro.api.openapi import document
from registro.app import OPERATIONS, create_app
from registro.settings import load_settings

UNDOCUMENTED = {"/openapi.json", "/docs"}


def test_every_routed_path_and_method_is_documented() -> None:
    app = create_app(load_settings(database_url="sqlite:///unused.db"))
    while not hasattr(app, "routes"):
        app = app.app  # type: ignore[attr-defined]
    doc = document(OPERATIONS, "registro", "0", "")
    for route in app.routes:
        if isinstance(route, Route) and route.path not in UNDOCUMENTED:
            documented = {m.upper() for m in doc["paths"][route.path]}
            assert documented == (route.methods or set()) - {"HEAD"}, route.path


def test_every_referenced_schema_is_defined() -> None:
    doc = document(OPERATIONS, "registro", "0", "")
    text = str(doc["paths"])
    for name in {part.split("'")[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in doc["components"]["schemas"], name


def test_writes_require_a_key_and_reads_accept_one() -> None:
    paths = document(OPERATIONS, "registro", "0", "")["paths"]
    assert paths["/data"]["post"]["security"] == [{"bearerAuth": []}]
    assert paths["/data"]["get"]["security"] == [{}, {"bearerAuth": []}]
    assert paths["/audit"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in paths["/livez"]["get"]
