"""Every JSON error body is built in registro/error_responses.py (issue 17: five places built
them, in two ways), and the HTTP layer's refusals are byte for byte what the application sends."""

from __future__ import annotations

import ast
from pathlib import Path

from registro import error_responses

SOURCE = Path(error_responses.__file__).parent


def _builds_an_error_body(node: ast.AST) -> bool:
    """A `{"message": ...}` dict, a JSONResponse, or an `Invalid(...)` model made by hand."""
    if isinstance(node, ast.Dict):  # the body's keys, not a log line's (which has "time"...)
        keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
        return "message" in keys and keys <= {"message", "errors"}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id in {"JSONResponse", "Invalid"}
    return False


def test_no_module_but_error_responses_builds_an_error_body() -> None:
    builders = sorted(
        f"{path.relative_to(SOURCE)}:{node.lineno}"
        for path in SOURCE.rglob("*.py")
        if path.name != "error_responses.py" and "migrations" not in path.parts
        for node in ast.walk(ast.parse(path.read_text()))
        if _builds_an_error_body(node)
    )
    assert builders == []


def test_the_http_layer_and_the_application_send_the_same_body() -> None:
    message = "Too many connections, try again"
    raw = error_responses.raw(503, message, "0" * 32)
    head, _, content = raw.partition(b"\r\n\r\n")
    reply = error_responses.error(503, message, {"Retry-After": "1"})
    assert content == reply.body
    assert b"content-type: application/json" in head
    assert reply.headers["content-type"] == "application/json"
