"""Requests are labelled by their route template in metrics, logs and traces.

The label is the route Starlette's router matched, read from `scope["route"]`, which Starlette
sets from 1.7.0 on (starlette/routing.py, Router.app: `scope["route"] = route`); before, every
request would be labelled `unmatched`. pyproject.toml's lower bound follows, and `make
test-min-deps` runs this test against it.
"""

from __future__ import annotations

import httpx
import pytest

from registro.app import create_app
from registro.settings import load_settings
from registro.telemetry import requests


async def test_requests_are_labelled_by_the_route_they_matched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    labels: list[tuple[str, str, int]] = []
    monkeypatch.setattr(
        requests.metrics,
        "record_request",
        lambda method, route, status, seconds: labels.append((method, route, status)),
    )
    app = create_app(load_settings(database_url="sqlite:///unused.db", auth="off"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registro.test") as client:
        await client.get("/livez")
        await client.get("/data/not-an-id")  # 422 before any database access
        await client.patch("/data/1")  # 405: matched partially, still the route's template
        await client.get("/nowhere")
    assert labels == [
        ("GET", "/livez", 200),
        ("GET", "/data/{id}", 422),
        ("PATCH", "/data/{id}", 405),
        ("GET", "unmatched", 404),
    ]
