"""The reference docs' tables say what the code does: the API table (docs/api.md) and the
configuration table (docs/configuration.md)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route
from starlette.types import ASGIApp

from registro.app import create_app
from registro.settings import ENVIRONMENT_VARIABLES, Settings, load_settings

DOCS = Path(__file__).parents[2] / "docs"
CODE_SPAN = re.compile(r"`([^`]*)`")
Operation = tuple[str, str]
OPERATION = re.compile(r"(GET|POST|PUT|PATCH|DELETE) (/\S*)")
STATUS = re.compile(r"\b[1-5]\d\d\b")


def table(doc: str, heading: str) -> list[dict[str, str]]:
    """The rows of the first table after the line `heading` in docs/`doc`, each keyed by the
    column headers."""
    lines = (DOCS / doc).read_text().splitlines()
    after = lines[lines.index(heading) + 1 :]
    start = next(i for i, line in enumerate(after) if line.startswith("|"))
    block = itertools.takewhile(lambda line: line.startswith("|"), after[start:])
    header, _separator, *rows = (
        [cell.strip() for cell in line.strip("|").split("|")] for line in block
    )
    # strict: a row with another number of cells (a "|" inside a cell) fails here.
    return [dict(zip(header, row, strict=True)) for row in rows]


# --- the API table against the routes and /openapi.json ---------------------------------------


def documented_operations() -> dict[Operation, set[int]]:
    """Each operation the API table names, with the status codes its row states (the numbers
    outside code spans, which hold bodies and query strings)."""
    operations: dict[Operation, set[int]] = {}
    for row in table("api.md", "## Operations"):
        outcomes = CODE_SPAN.sub("", row["success"] + " " + row["errors"])
        codes = {int(code) for code in STATUS.findall(outcomes)}
        for span in CODE_SPAN.findall(row["method and path"]):
            match = OPERATION.fullmatch(span.split("?")[0])
            if match:
                assert (match[1], match[2]) not in operations, f"{span} has two rows"
                operations[(match[1], match[2])] = codes
    return operations


def app(**overrides: object) -> ASGIApp:
    return create_app(load_settings(database_url="sqlite:///unused.db", **overrides))


def routed_operations(application: Any) -> set[Operation]:
    while not hasattr(application, "routes"):
        application = application.app
    return {
        (method, route.path)
        for route in application.routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }


async def served_openapi() -> dict[str, Any]:
    """The document with REGISTRO_AUTH=all: every status some mode answers (the rows say which
    mode asks for a key)."""
    transport = httpx.ASGITransport(app=app(auth="all"))
    async with httpx.AsyncClient(transport=transport, base_url="http://registro.test") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_every_route_has_a_row() -> None:
    assert set(documented_operations()) == routed_operations(app())


async def test_each_row_states_the_status_codes_of_its_operation() -> None:
    documented = {
        (method.upper(), path): {int(code) for code in operation["responses"]}
        for path, methods in (await served_openapi())["paths"].items()
        for method, operation in methods.items()
    }
    table_codes = documented_operations()
    assert {operation: table_codes.get(operation) for operation in documented} == documented


# --- the configuration table against the settings --------------------------------------------


def documented_dev_column() -> list[tuple[str, str]]:
    """Each variable the configuration table names, with its "dev (default)" cell."""
    return [
        (variable, row["dev (default)"])
        for row in table("configuration.md", "## Environment variables")
        for variable in CODE_SPAN.findall(row["variable"])
    ]


def effective(settings: Settings) -> dict[str, object]:
    """Every setting as the service uses it: properties resolve the dev defaults of DATABASE_URL,
    REGISTRO_AUTH and REGISTRO_LOG_FORMAT, whose fields stay unset."""
    return {
        **settings.model_dump(),
        "database_url": settings.database,
        "auth": settings.auth_mode,
        "log_format": settings.log_format_mode,
    }


def test_configuration_lists_exactly_the_variables_the_service_reads() -> None:
    documented = sorted(variable for variable, _ in documented_dev_column())
    assert documented == sorted(ENVIRONMENT_VARIABLES)


def test_configuration_dev_values_are_the_dev_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting a variable to the dev value the table states changes no setting."""
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    defaults = effective(load_settings())
    checked = []
    for variable, dev in documented_dev_column():
        stated = re.fullmatch(r"`([^`]+)`", dev)
        if stated is None:
            continue  # not a value: "unset", or prose
        with monkeypatch.context() as patch:
            patch.setenv(variable, stated[1])
            stated_in = f"docs/configuration.md: {variable}={stated[1]}"
            assert effective(load_settings()) == defaults, stated_in
        checked.append(variable)
    assert checked
