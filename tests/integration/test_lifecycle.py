"""Health, readiness and graceful shutdown of a real `registro serve` process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from registro.store.migrate import head_revision
from tests.conftest import new_postgres_database
from tests.support.service import REGISTRO, running_service

pytestmark = pytest.mark.postgres

DRAIN_SECONDS = 2.0
FAULT_LATENCY_MS = 300  # keeps requests in flight across the moment the server stops


@pytest.fixture
def pg_url(postgres_server: str, postgres_template: str) -> str:
    return new_postgres_database(postgres_server, postgres_template)


async def _load(url: str, until: float, results: list[tuple[float, str]]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < until:
            started = time.monotonic()
            try:
                response = await client.get(f"{url}/data/1")
                results.append((started, str(response.status_code)))
            except httpx.HTTPError as exc:
                results.append((started, type(exc).__name__))


async def _first_unready(url: str, within: float) -> float | None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if (await client.get(f"{url}/readyz")).status_code == 503:
                return time.monotonic()
            await asyncio.sleep(0.02)
    return None


async def test_sigterm_drains_then_stops_without_dropping_a_request(
    pg_url: str, tmp_path: Path
) -> None:
    env = {
        "REGISTRO_ENV": "qa",
        "REGISTRO_AUTH": "off",
        "REGISTRO_WORKERS": "2",
        "REGISTRO_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "REGISTRO_FAULT_LATENCY_MS": str(FAULT_LATENCY_MS),
    }
    with running_service(pg_url, tmp_path / "service.log", **env) as service:
        async with httpx.AsyncClient() as client:
            await client.post(f"{service.url}/data", json={"name": "probe"}, timeout=5)
        results: list[tuple[float, str]] = []
        start = time.monotonic()
        sigterm_at = start + 1.0
        # Like a load balancer: keep sending until the drain period is over, then stop.
        stop_sending = sigterm_at + DRAIN_SECONDS - 0.05
        loaders = [asyncio.create_task(_load(service.url, stop_sending, results)) for _ in range(8)]
        await asyncio.sleep(sigterm_at - time.monotonic())
        service.process.send_signal(signal.SIGTERM)
        unready_at = await _first_unready(service.url, within=1.0)
        await asyncio.gather(*loaders)
        exit_code = await asyncio.to_thread(service.process.wait, DRAIN_SECONDS + 30)
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as client:
                await client.get(f"{service.url}/livez", timeout=2)

    assert unready_at is not None and unready_at - sigterm_at < 0.5, "readyz not 503 at once"
    outcomes = [outcome for _, outcome in results]
    assert set(outcomes) == {"200"}, {o: outcomes.count(o) for o in set(outcomes)}
    served_while_draining = [t for t, _ in results if t > sigterm_at + 0.2]
    assert len(served_while_draining) >= 8, "requests were not served during the drain"
    in_flight_at_stop = [t for t, _ in results if t > stop_sending - FAULT_LATENCY_MS / 1000]
    assert in_flight_at_stop, "no request was in flight when the server stopped"
    assert exit_code == 0, service.output()[-3000:]


def test_livez_answers_without_the_database_and_readyz_does_not(tmp_path: Path) -> None:
    unreachable = "postgresql://nobody@127.0.0.1:9/nothing"
    with running_service(
        unreachable, tmp_path / "service.log", wait_for="/livez", REGISTRO_ENV="qa"
    ) as service:
        readyz = httpx.get(f"{service.url}/readyz", timeout=5)
        assert readyz.status_code == 503
        assert readyz.json()["message"] == "database unreachable"
        data = httpx.get(f"{service.url}/data", timeout=5)
        assert data.status_code == 503
        assert data.json() == {"message": "Database unavailable"}


def test_qa_never_migrates_and_is_unready_until_migrated(
    postgres_server: str, tmp_path: Path
) -> None:
    url = new_postgres_database(postgres_server)  # empty: never migrated
    with running_service(
        url, tmp_path / "service.log", wait_for="/livez", REGISTRO_ENV="qa"
    ) as service:
        readyz = httpx.get(f"{service.url}/readyz", timeout=5)
        assert readyz.status_code == 503
        assert readyz.json()["message"] == f"schema at None, expected {head_revision()}"
        migrate = subprocess.run(
            [REGISTRO, "migrate"],
            capture_output=True,
            text=True,
            env={**os.environ, "DATABASE_URL": url, "REGISTRO_ENV": "qa"},
        )
        assert migrate.returncode == 0, migrate.stderr
        assert httpx.get(f"{service.url}/readyz", timeout=5).status_code == 200
