"""Reading a request's path, query and body into validated values, or InvalidInput (422)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from registro.api.schemas import MAX_ID

Model = TypeVar("Model", bound=BaseModel)


class InvalidInput(Exception):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def _errors(where: str, exc: ValidationError) -> InvalidInput:
    return InvalidInput(
        [
            {"loc": ".".join((where, *(str(part) for part in e["loc"]))), "msg": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
    )


def record_id(request: Request) -> int:
    raw = request.path_params["id"]
    # The length check first: int() refuses more than 4300 digits (a ValueError, a 500).
    too_long = len(raw) > len(str(MAX_ID))
    if too_long or not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
        raise InvalidInput([{"loc": "path.id", "msg": f"must be an integer from 1 to {MAX_ID}"}])
    return int(raw)


def query(request: Request, model: type[Model]) -> Model:
    params: dict[str, Any] = dict(request.query_params)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise _errors("query", exc) from None


async def body(request: Request, model: type[Model]) -> Model:
    try:
        raw = await request.body()
    except ClientDisconnect:  # gone, or cut off by the body limit (which already answered 413)
        raise HTTPException(400, "The request body was not received") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _errors("body", exc) from None
