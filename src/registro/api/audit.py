"""/audit: who changed what, newest first. Read-only: nothing in the API alters the trail."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from registro.api import inputs, responses
from registro.api.access import authorize
from registro.api.openapi import Operation
from registro.api.schemas import AuditEntryOut, AuditQuery
from registro.store import Store


async def audit_trail(request: Request) -> Response:
    await authorize(request, "admin")
    page = inputs.query(request, AuditQuery)
    store: Store = request.app.state.store
    rows = await store.audit_page(page.before, page.limit + 1)
    entries, headers = responses.page(rows, page.limit, "/audit?before={last}&limit={limit}")
    body = [
        {
            "id": e.id,
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "record_id": e.record_id,
            "before": e.before,
            "after": e.after,
            "request_id": e.request_id,
            "client": e.client,
            "caller_request_id": e.caller_request_id,
        }
        for e in entries
    ]
    return responses.json(body, headers=headers)


OPERATIONS = [
    Operation(
        "GET",
        "/audit",
        audit_trail,
        "The audit trail, newest first (admin key)",
        "audit",
        list[AuditEntryOut],
        query=AuditQuery,
        errors=(401, 403, 422),
        auth="required",
        paginated=True,
    ),
]
