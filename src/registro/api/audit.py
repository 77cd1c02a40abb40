"""/audit: who changed what, newest first. Read-only: nothing in the API alters the trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from registro.api import responses
from registro.api.access import KEY_REQUIRED, authorize
from registro.api.schemas import MAX_ID, AuditEntryOut
from registro.store import Store

router = APIRouter(tags=["audit"])


@router.get(
    "/audit", response_model=list[AuditEntryOut], responses=responses.errors(401, 403, 422),
    openapi_extra=KEY_REQUIRED, summary="The audit trail (admin)",
    response_description='Entries newest first; `Link: <...>; rel="next"` when there are more.',
)
async def audit_trail(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Last id seen")] = None,
) -> Response:
    await authorize(request, "admin")
    store: Store = request.app.state.store
    rows = await store.audit_page(before, limit + 1)
    page = rows[:limit]
    headers = None
    if len(rows) > limit:
        headers = {"Link": f'</audit?before={page[-1].id}&limit={limit}>; rel="next"'}
    body = [
        {
            "id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action,
            "record_id": e.record_id, "before": e.before, "after": e.after,
            "request_id": e.request_id, "client": e.client,
        }
        for e in page
    ]
    return responses.json(body, headers=headers)
