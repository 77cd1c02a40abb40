"""JSON responses: the error body (one shape, `Message`) and pages of results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from starlette.responses import JSONResponse, Response

from registro.api.schemas import Message

JSON = "application/json"


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """An error reply, in the one error shape. Also an ASGI app: middleware answers with it."""
    return JSONResponse(Message(message=message).model_dump(), status, headers)


class _HasId(Protocol):
    @property
    def id(self) -> int: ...


Row = TypeVar("Row", bound=_HasId)


def page(rows: Sequence[Row], limit: int, next_url: str) -> tuple[Sequence[Row], dict[str, str]]:
    """The first `limit` of `rows` (fetched as limit + 1) and, when there are more, a Link header.

    `next_url` is formatted with the page's last id (`{last}`) and `{limit}`.
    """
    if len(rows) <= limit:
        return rows, {}
    last = rows[limit - 1].id
    return rows[:limit], {"Link": f'<{next_url.format(last=last, limit=limit)}>; rel="next"'}
