"""JSON responses, serialised with orjson."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

import orjson
from starlette.responses import Response


def json(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status, headers, media_type="application/json")


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
