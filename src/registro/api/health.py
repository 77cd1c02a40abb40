"""Probes, version and metrics: what the platform asks of every instance."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import Response

from registro import __version__
from registro.api import responses
from registro.api.schemas import HealthOut, VersionOut
from registro.telemetry import metrics

router = APIRouter(tags=["operations"])

READY_CHECK_TIMEOUT = 2.0


@router.get("/livez", response_model=HealthOut, summary="The process is alive (no database)")
async def livez() -> Response:
    return responses.json({"message": "alive"})


@router.get(
    "/readyz", response_model=HealthOut, summary="Ready for traffic",
    responses={503: {"model": HealthOut, "description": "Draining, database down or schema behind"}},
)
async def readyz(request: Request) -> Response:
    state = request.app.state
    if state.lifecycle.draining:
        return responses.json({"message": "draining"}, 503)
    try:
        revision = await asyncio.wait_for(state.store.schema_revision(), READY_CHECK_TIMEOUT)
    except Exception:
        return responses.json({"message": "database unreachable"}, 503)
    if revision != state.schema_head:
        return responses.json(
            {"message": f"schema at {revision}, expected {state.schema_head}"}, 503
        )
    return responses.json({"message": "ready"})


@router.get("/version", response_model=VersionOut, summary="Which build this is")
async def version(request: Request) -> Response:
    settings = request.app.state.settings
    return responses.json(
        {"version": __version__, "commit": settings.git_commit, "build_time": settings.build_time}
    )


@router.get(
    "/metrics", summary="Prometheus metrics, all worker processes",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics_endpoint() -> Response:
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
