"""The README's tables say what the code does: the API table and the configuration table."""

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

README = Path(__file__).parents[2] / "README.md"
CODE_SPAN = re.compile(r"`([^`]*)`")
Operation = tuple[str, str]
OPERATION = re.compile(r"(GET|POST|PUT|PATCH|DELETE) (/\S*)")
STATUS = re.compile(r"\b[1-5]\d\d\b")


def table(heading: str) -> list[dict[str, str]]:
    """The rows of the first table after the line `heading`, each keyed by the column headers."""
    lines = README.read_text().splitlines()
    after = lines[lines.index(heading) + 1 :]
    start = next(i for i, line in enumerate(after) if line.startswith("|"))
    block = itertools.takewhile(lambda line: line.startswith("|"), after[start:])
    header, _separator, *rows = (
        [cell.strip() for cell in line.strip("|").split("|")] for line in block
    )
    # strict: a row with another number of cells (a "|" inside a cell) fails here.
    return [dict(zip(header, row, strict=True)) for row in rows]


# --- the API table against the routes and /openapi.json ---------------------------------------


def readme_operations() -> dict[Operation, set[int]]:
    """Each operation the API table names, with the status codes its row states (the numbers
    outside code spans, which hold bodies and query strings)."""
    operations: dict[Operation, set[int]] = {}
    for row in table("## API"):
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
    assert set(readme_operations()) == routed_operations(app())


async def test_each_row_states_the_status_codes_of_its_operation() -> None:
    documented = {
        (method.upper(), path): {int(code) for code in operation["responses"]}
        for path, methods in (await served_openapi())["paths"].items()
        for method, operation in methods.items()
    }
    readme = readme_operations()
    assert {operation: readme.get(operation) for operation in documented} == documented


# --- the configuration table against the settings --------------------------------------------


def readme_dev_column() -> list[tuple[str, str]]:
    """Each variable the configuration table names, with its "dev (default)" cell."""
    return [
        (variable, row["dev (default)"])
        for row in table("## Configuration")
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
    assert sorted(variable for variable, _ in readme_dev_column()) == sorted(ENVIRONMENT_VARIABLES)


def test_configuration_dev_values_are_the_dev_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting a variable to the dev value the README states changes no setting."""
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    defaults = effective(load_settings())
    checked = []
    for variable, dev in readme_dev_column():
        stated = re.fullmatch(r"`([^`]+)`", dev)
        if stated is None:
            continue  # not a value: "unset", or prose
        with monkeypatch.context() as patch:
            patch.setenv(variable, stated[1])
            assert effective(load_settings()) == defaults, f"README: {variable}={stated[1]}"
        checked.append(variable)
    assert checked
