"""/openapi.json, built from the operations' declarations for the configured REGISTRO_AUTH mode.

The wrapper that serves an operation (registro.api.operation) reads the same declaration, so the
document cannot drift from what the service accepts and answers: security requirements and
401/403 appear exactly where the mode asks for a key (schemathesis checks the rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from registro.api import idempotency_header
from registro.api.operation import ID_PARAMETER, Operation
from registro.api.schemas import MAX_ID, Invalid, Message
from registro.settings import AuthMode

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
    503: "Unavailable: the database is unreachable, or the instance is not ready",
}

ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID, "description": "The record's id"}

Key = tuple[Any, JsonSchemaMode]


def _schemas(operations: Sequence[Operation]) -> tuple[dict[Key, Any], dict[str, Any]]:
    """The JSON schema of every body and response type, by (type, mode), and their components."""
    wanted: list[Key] = [(Message, "serialization"), (Invalid, "serialization")]
    for op in operations:
        if op.response is not None:
            wanted.append((op.response, "serialization"))
        if op.body is not None:
            wanted.append((op.body, "validation"))
    unique = list(dict.fromkeys(wanted))
    inputs = [(key, key[1], TypeAdapter(key[0])) for key in unique]
    by_key, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF)
    return {key: schema for (key, _), schema in by_key.items()}, definitions.get("$defs", {})


def _parameters(op: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if ID_PARAMETER in op.path:
        parameters.append({"name": "id", "in": "path", "required": True, "schema": ID_SCHEMA})
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
    if op.idempotent:
        parameters.append(
            {
                "name": idempotency_header.HEADER,
                "in": "header",
                "required": False,
                "description": idempotency_header.KEY_DESCRIPTION,
                "schema": idempotency_header.KEY_SCHEMA,
            }
        )
    return parameters


def _json(schema: Any) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _responses(op: Operation, mode: AuthMode, schemas: dict[Key, Any]) -> dict[str, Any]:
    if op.response is None:
        ok: dict[str, Any] = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    else:
        ok = _json(schemas[(op.response, "serialization")])
    if op.paginated:
        ok["headers"] = {
            "Link": {
                "description": 'The next page: `<url>; rel="next"`',
                "schema": {"type": "string"},
            }
        }
    if op.idempotent:
        ok["headers"] = {
            idempotency_header.REPLAYED: {
                "description": (
                    f"`true` on the stored response to a repeated {idempotency_header.HEADER}"
                ),
                "schema": {"type": "string", "enum": ["true"]},
            }
        }
    responses = {"200": {"description": "OK", **ok}}
    for status in op.error_statuses(mode):
        model = Invalid if status == 422 else Message
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS[status],
            **_json(schemas[(model, "serialization")]),
        }
    return responses


def document(
    operations: Sequence[Operation],
    mode: AuthMode,
    title: str,
    version: str,
    description: str,
) -> dict[str, Any]:
    schemas, definitions = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.handler.__name__,
            "tags": [op.tag],
            "responses": _responses(op, mode, schemas),
        }
        if parameters := _parameters(op):
            entry["parameters"] = parameters
        if op.body is not None:
            entry["requestBody"] = {"required": True, **_json(schemas[(op.body, "validation")])}
        if op.needs_key(mode):
            entry["security"] = [{BEARER: []}]
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": definitions,
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (registro keys create)",
                }
            },
        },
    }
