"""/data: the registry of uniquely named records (the seed's API, kept compatible)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from registro.api import inputs, responses
from registro.api.access import actor, authorize, log_change
from registro.api.openapi import Operation
from registro.api.schemas import Created, Message, NameIn, PageQuery, RecordOut
from registro.store import NameTaken, Store

NOT_FOUND = "Data not found"
TAKEN = "Data already exists"


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def create_record(request: Request) -> Response:
    principal = await authorize(request, "write")
    name = (await inputs.body(request, NameIn)).name
    who = actor(request, principal)
    record = await _store(request).create(name, who)
    if record is None:
        raise HTTPException(409, TAKEN)
    log_change("create", who, record)
    return responses.json(
        {"message": "Data inserted successfully", "id": record.id, "name": record.name}
    )


async def list_records(request: Request) -> Response:
    await authorize(request, "read")
    page = inputs.query(request, PageQuery)
    rows = await _store(request).page(page.after, page.limit + 1)
    records, headers = responses.page(rows, page.limit, "/data?after={last}&limit={limit}")
    return responses.json([{"id": r.id, "name": r.name} for r in records], headers=headers)


async def get_record(request: Request) -> Response:
    await authorize(request, "read")
    record = await _store(request).get(inputs.record_id(request))
    if record is None:
        raise HTTPException(404, NOT_FOUND)
    return responses.json({"id": record.id, "name": record.name})


async def rename_record(request: Request) -> Response:
    principal = await authorize(request, "write")
    record_id = inputs.record_id(request)
    name = (await inputs.body(request, NameIn)).name
    who = actor(request, principal)
    try:
        record = await _store(request).rename(record_id, name, who)
    except NameTaken:
        raise HTTPException(409, TAKEN) from None
    if record is None:
        raise HTTPException(404, NOT_FOUND)
    log_change("update", who, record)
    return responses.json({"id": record.id, "name": record.name})


async def delete_record(request: Request) -> Response:
    principal = await authorize(request, "write")
    who = actor(request, principal)
    record = await _store(request).delete(inputs.record_id(request), who)
    if record is None:
        raise HTTPException(404, NOT_FOUND)
    log_change("delete", who, record)
    return responses.json({"message": "Data deleted successfully"})


WRITE_ERRORS = (401, 403, 409, 413, 415, 422)

OPERATIONS = [
    Operation(
        "POST",
        "/data",
        create_record,
        "Add a record",
        "data",
        Created,
        body=NameIn,
        errors=WRITE_ERRORS,
        auth="required",
    ),
    Operation(
        "GET",
        "/data",
        list_records,
        "List records by id, a page at a time",
        "data",
        list[RecordOut],
        query=PageQuery,
        errors=(401, 403, 422),
        auth="optional",
        paginated=True,
    ),
    Operation(
        "GET",
        "/data/{id}",
        get_record,
        "Get a record",
        "data",
        RecordOut,
        errors=(401, 403, 404, 422),
        auth="optional",
    ),
    Operation(
        "PUT",
        "/data/{id}",
        rename_record,
        "Rename a record",
        "data",
        RecordOut,
        body=NameIn,
        errors=(404, *WRITE_ERRORS),
        auth="required",
    ),
    Operation(
        "DELETE",
        "/data/{id}",
        delete_record,
        "Delete a record",
        "data",
        Message,
        errors=(401, 403, 404, 422),
        auth="required",
    ),
]
