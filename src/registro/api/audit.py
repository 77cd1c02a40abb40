"""/audit: who changed what, newest first. Read-only: nothing in the API alters the trail."""

from __future__ import annotations

from registro.api.operation import Call, Operation, Reply
from registro.api.responses import page
from registro.api.schemas import AuditQuery
from registro.store import AuditEntry


async def audit_trail(call: Call[None, AuditQuery]) -> Reply:
    limit = call.query.limit
    rows = await call.store.audit_page(call.query.before, limit + 1)
    return Reply(*page(rows, limit, "/audit?before={last}&limit={limit}"))


OPERATIONS = [
    Operation(
        "GET",
        "/audit",
        audit_trail,
        "The audit trail, newest first (admin key)",
        "audit",
        list[AuditEntry],
        scope="admin",
        query=AuditQuery,
        paginated=True,
    ),
]
