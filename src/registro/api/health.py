"""Probes, version and metrics: what the platform asks of every instance."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from registro import __version__
from registro.api import responses
from registro.api.openapi import Operation
from registro.api.schemas import HealthOut, VersionOut
from registro.store import DatabaseBusy
from registro.store.migrate import head_revision, schema_state
from registro.telemetry import metrics

READY_CHECK_TIMEOUT = 2.0


async def livez(request: Request) -> Response:
    return responses.json({"message": "alive"})


async def readyz(request: Request) -> Response:
    state = request.app.state
    if state.lifecycle.draining:
        return responses.json({"message": "draining"}, 503)
    try:
        revision = await asyncio.wait_for(state.store.schema_revision(), READY_CHECK_TIMEOUT)
    except (DatabaseBusy, TimeoutError):  # up, but slow or locked: restarting will not help
        return responses.json({"message": "database busy"}, 503)
    except Exception:
        return responses.json({"message": "database unreachable"}, 503)
    if schema_state(revision) == "behind":
        return responses.json({"message": f"schema at {revision}, expected {head_revision()}"}, 503)
    return responses.json({"message": "ready"})


async def version(request: Request) -> Response:
    settings = request.app.state.settings
    return responses.json(
        {"version": __version__, "commit": settings.git_commit, "build_time": settings.build_time}
    )


async def metrics_text(request: Request) -> Response:
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)


OPERATIONS = [
    Operation(
        "GET",
        "/livez",
        livez,
        "The process is alive (never touches the database)",
        "operations",
        HealthOut,
        unavailable=False,
    ),
    Operation(
        "GET",
        "/readyz",
        readyz,
        "Ready for traffic: database reachable, schema not behind this release, not draining",
        "operations",
        HealthOut,
    ),
    Operation(
        "GET",
        "/version",
        version,
        "Which build this is",
        "operations",
        VersionOut,
        unavailable=False,
    ),
    Operation(
        "GET",
        "/metrics",
        metrics_text,
        "Prometheus metrics of all worker processes",
        "operations",
        None,
        unavailable=False,
    ),
]
