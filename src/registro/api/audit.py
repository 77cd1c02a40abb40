"""/audit: who changed what, newest first. Read-only: nothing in the API alters the trail."""

from __future__ import annotations

from registro.api.operation import Call, Operations, Reply
from registro.api.responses import page
from registro.api.schemas import AuditQuery
from registro.store import AuditEntry

OPERATIONS = Operations()


@OPERATIONS.declare(
    "GET",
    "/audit",
    summary="The audit trail, newest first (admin key)",
    tag="audit",
    response=list[AuditEntry],
    scope="admin",
    query=AuditQuery,
    paginated=True,
)
async def audit_trail(call: Call[None, AuditQuery]) -> Reply:
    limit = call.query.limit
    rows = await call.store.audit_page(call.query.before, limit + 1)
    return Reply(*page(rows, limit, "/audit?before={last}&limit={limit}"))
