"""/data: the registry of uniquely named records (the seed's API, kept compatible)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from registro.api import responses
from registro.api.access import KEY_OPTIONAL, KEY_REQUIRED, actor, authorize
from registro.api.schemas import MAX_ID, Created, Message, NameIn, RecordOut
from registro.store import NameTaken, Store

router = APIRouter(tags=["data"])

RecordId = Annotated[int, Path(ge=1, le=MAX_ID, description="The record's id")]
NOT_FOUND = "Data not found"
TAKEN = "Data already exists"
DEFAULT_PAGE = 100
MAX_PAGE = 1000


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.post(
    "/data", response_model=Created, responses=responses.errors(400, 401, 403, 409, 413, 415, 422),
    openapi_extra=KEY_REQUIRED, summary="Add a record",
)
async def create(body: NameIn, request: Request) -> Response:
    principal = await authorize(request, "write")
    record = await _store(request).create(body.name, actor(request, principal))
    if record is None:
        raise HTTPException(409, TAKEN)
    return responses.json(
        {"message": "Data inserted successfully", "id": record.id, "name": record.name}
    )


@router.get(
    "/data", response_model=list[RecordOut], responses=responses.errors(401, 403, 422),
    openapi_extra=KEY_OPTIONAL, summary="List records by id, a page at a time",
    response_description='A page of records; `Link: <...>; rel="next"` when there are more.',
)
async def list_records(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Last id of the previous page")] = 0,
) -> Response:
    await authorize(request, "read")
    rows = await _store(request).page(after, limit + 1)
    page = rows[:limit]
    headers = None
    if len(rows) > limit:
        headers = {"Link": f'</data?after={page[-1].id}&limit={limit}>; rel="next"'}
    return responses.json([{"id": r.id, "name": r.name} for r in page], headers=headers)


@router.get(
    "/data/{id}", response_model=RecordOut, responses=responses.errors(401, 403, 404, 422),
    openapi_extra=KEY_OPTIONAL, summary="Get a record",
)
async def get_record(id: RecordId, request: Request) -> Response:
    await authorize(request, "read")
    record = await _store(request).get(id)
    if record is None:
        raise HTTPException(404, NOT_FOUND)
    return responses.json({"id": record.id, "name": record.name})


@router.put(
    "/data/{id}", response_model=RecordOut,
    responses=responses.errors(400, 401, 403, 404, 409, 413, 415, 422),
    openapi_extra=KEY_REQUIRED, summary="Rename a record",
)
async def rename(id: RecordId, body: NameIn, request: Request) -> Response:
    principal = await authorize(request, "write")
    try:
        record = await _store(request).rename(id, body.name, actor(request, principal))
    except NameTaken:
        raise HTTPException(409, TAKEN) from None
    if record is None:
        raise HTTPException(404, NOT_FOUND)
    return responses.json({"id": record.id, "name": record.name})


@router.delete(
    "/data/{id}", response_model=Message, responses=responses.errors(401, 403, 404, 422),
    openapi_extra=KEY_REQUIRED, summary="Delete a record",
)
async def delete(id: RecordId, request: Request) -> Response:
    principal = await authorize(request, "write")
    record = await _store(request).delete(id, actor(request, principal))
    if record is None:
        raise HTTPException(404, NOT_FOUND)
    return responses.json({"message": "Data deleted successfully"})
