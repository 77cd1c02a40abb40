"""JSON responses: pages of results (error bodies: registro.error_responses)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from registro.error_responses import JSON as JSON


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
