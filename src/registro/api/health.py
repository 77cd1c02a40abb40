"""Probes, version and metrics: what the platform asks of every instance."""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.responses import Response

from registro import __version__
from registro.api.operation import Call, Operations
from registro.api.schemas import Message, VersionOut
from registro.shared import shared
from registro.store import DatabaseBusy
from registro.store.migrate import head_revision, schema_state
from registro.telemetry import metrics

READY_CHECK_TIMEOUT = 2.0
OPERATIONS = Operations()


@OPERATIONS.declare(
    "GET",
    "/livez",
    summary="The process is alive (never touches the database)",
    tag="operations",
    response=Message,
    unavailable=False,
)
async def livez(call: Call[None, None]) -> Message:
    return Message(message="alive")


@OPERATIONS.declare(
    "GET",
    "/readyz",
    summary="Ready for traffic: database reachable, schema not behind this release, not draining",
    tag="operations",
    response=Message,
)
async def readyz(call: Call[None, None]) -> Message:
    state = shared(call.request)
    if state.lifecycle.draining:
        raise HTTPException(503, "draining")
    try:
        revision = await asyncio.wait_for(state.store.schema_revision(), READY_CHECK_TIMEOUT)
    except (DatabaseBusy, TimeoutError):  # up, but slow or locked: restarting will not help
        raise HTTPException(503, "database busy") from None
    except Exception:
        raise HTTPException(503, "database unreachable") from None
    if state.store.storage_full():  # writes would fail: a person must make room
        raise HTTPException(503, "database storage full")
    if schema_state(revision) == "behind":
        raise HTTPException(503, f"schema at {revision}, expected {head_revision()}")
    return Message(message="ready")


@OPERATIONS.declare(
    "GET",
    "/version",
    summary="Which build this is",
    tag="operations",
    response=VersionOut,
    unavailable=False,
)
async def version(call: Call[None, None]) -> VersionOut:
    settings = shared(call.request).settings
    return VersionOut(
        version=__version__, commit=settings.git_commit, build_time=settings.build_time
    )


@OPERATIONS.declare(
    "GET",
    "/metrics",
    summary="Prometheus metrics of all worker processes",
    tag="operations",
    response=None,
    unavailable=False,
)
async def metrics_text(call: Call[None, None]) -> Response:
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
