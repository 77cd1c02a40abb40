"""/data: the registry of uniquely named records (the seed's API, kept compatible)."""

from __future__ import annotations

from starlette.exceptions import HTTPException

from registro.api.access import actor, log_change
from registro.api.operation import Call, Operations, Reply
from registro.api.responses import page
from registro.api.schemas import Created, Message, NameIn, PageQuery
from registro.store import NameTaken, Record

NOT_FOUND = "Data not found"
TAKEN = "Data already exists"

OPERATIONS = Operations()


def _found(record: Record | None) -> Record:
    if record is None:
        raise HTTPException(404, NOT_FOUND)
    return record


@OPERATIONS.declare(
    "POST",
    "/data",
    summary="Add a record",
    tag="data",
    response=Created,
    scope="write",
    body=NameIn,
    errors=(409,),
    idempotent=True,
    audit="create",
)
async def create_record(call: Call[NameIn, None]) -> Created:
    who = actor(call.request, call.principal)
    record = await call.store.create(call.body.name, who)
    if record is None:
        raise HTTPException(409, TAKEN)
    log_change(call.audit, who, record)
    return Created(record.id, record.name)


@OPERATIONS.declare(
    "GET",
    "/data",
    summary="List records by id, a page at a time",
    tag="data",
    response=list[Record],
    scope="read",
    query=PageQuery,
    paginated=True,
)
async def list_records(call: Call[None, PageQuery]) -> Reply:
    limit = call.query.limit
    rows = await call.store.page(call.query.after, limit + 1)
    return Reply(*page(rows, limit, "/data?after={last}&limit={limit}"))


@OPERATIONS.declare(
    "GET",
    "/data/{id}",
    summary="Get a record",
    tag="data",
    response=Record,
    scope="read",
    errors=(404,),
)
async def get_record(call: Call[None, None]) -> Record:
    return _found(await call.store.get(call.record_id))


@OPERATIONS.declare(
    "PUT",
    "/data/{id}",
    summary="Rename a record",
    tag="data",
    response=Record,
    scope="write",
    body=NameIn,
    errors=(404, 409),
    idempotent=True,
    audit="update",
)
async def rename_record(call: Call[NameIn, None]) -> Record:
    who = actor(call.request, call.principal)
    try:
        record = _found(await call.store.rename(call.record_id, call.body.name, who))
    except NameTaken:
        raise HTTPException(409, TAKEN) from None
    log_change(call.audit, who, record)
    return record


@OPERATIONS.declare(
    "DELETE",
    "/data/{id}",
    summary="Delete a record",
    tag="data",
    response=Message,
    scope="write",
    errors=(404,),
    idempotent=True,
    audit="delete",
)
async def delete_record(call: Call[None, None]) -> Message:
    who = actor(call.request, call.principal)
    log_change(call.audit, who, _found(await call.store.delete(call.record_id, who)))
    return Message(message="Data deleted successfully")
