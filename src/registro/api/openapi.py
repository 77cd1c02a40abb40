"""Each operation is declared once: the same `Operation` routes requests and documents them.

The document is built from the operations and the pydantic models the endpoints validate with,
so /openapi.json cannot drift from what the service accepts (schemathesis checks the rest).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from registro.api.schemas import MAX_ID, InvalidOut, Message

Endpoint = Callable[[Request], Awaitable[Response]]
REF = "#/components/schemas/{model}"
BEARER = "bearerAuth"

ERROR_DESCRIPTIONS = {
    401: "Missing or invalid API key",
    403: "The API key lacks the scope",
    404: "No such record",
    409: "The name is taken",
    413: "Request body too large",
    415: "Content-Type is not application/json",
    422: "Invalid input",
    503: "Database unavailable",
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    endpoint: Endpoint
    summary: str
    tag: str
    response: Any = None  # the 200 body: a pydantic model, list[model], or None for text/plain
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: Sequence[int] = ()
    auth: Literal["required", "optional", "none"] = "none"
    paginated: bool = False
    unavailable: bool = True  # may answer 503 when the database is down


PATH_PARAMETERS = {
    "id": {"type": "integer", "minimum": 1, "maximum": MAX_ID, "description": "The record's id"},
}


def _models(operations: Sequence[Operation]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [Message, InvalidOut]
    for op in operations:
        for candidate in (op.response, op.body):
            model = getattr(candidate, "__args__", (candidate,))[0]
            if isinstance(model, type) and issubclass(model, BaseModel) and model not in found:
                found.append(model)
    return found


def _schema(annotation: Any) -> dict[str, Any]:
    """A model, or a list of a model, as a reference into components."""
    item = getattr(annotation, "__args__", None)
    if item:
        return {"type": "array", "items": _schema(item[0])}
    return {"$ref": REF.format(model=annotation.__name__)}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
        for name in PATH_PARAMETERS
        if f"{{{name}}}" in op.path
    ]
    if op.query is not None:
        schema = op.query.model_json_schema()
        for name, prop in schema["properties"].items():
            # An optional parameter is one that is absent, never one that is null.
            prop = {**next((b for b in prop.pop("anyOf", []) if b != {"type": "null"}), {}), **prop}
            prop.pop("title", None)
            description = prop.pop("description", None)
            parameter = {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", ()),
                "schema": prop,
            }
            if description:
                parameter["description"] = description
            parameters.append(parameter)
    return parameters


def _responses(op: Operation) -> dict[str, Any]:
    if op.response is None:
        ok: dict[str, Any] = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    else:
        ok = {"content": {"application/json": {"schema": _schema(op.response)}}}
    if op.paginated:
        ok["headers"] = {
            "Link": {
                "description": 'The next page: `<url>; rel="next"`',
                "schema": {"type": "string"},
            }
        }
    responses = {"200": {"description": "OK", **ok}}
    statuses = [*op.errors, *([503] if op.unavailable else [])]
    for status in statuses:
        model = InvalidOut if status == 422 else Message
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": _schema(model)}},
        }
    return responses


def document(
    operations: Sequence[Operation], title: str, version: str, description: str
) -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(model, "validation") for model in _models(operations)], ref_template=REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.endpoint.__name__,
            "tags": [op.tag],
            "responses": _responses(op),
        }
        if parameters := _parameters(op):
            entry["parameters"] = parameters
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(op.body)}},
            }
        if op.auth == "required":
            entry["security"] = [{BEARER: []}]
        elif op.auth == "optional":
            entry["security"] = [{}, {BEARER: []}]
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (registro keys create)",
                }
            },
        },
    }
