"""Health, readiness and graceful shutdown of a real `registro serve` process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import asyncpg
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


Result = tuple[float, str, str | None]  # when sent, outcome, the response's Connection header


async def _load(url: str, until: float, results: list[Result]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < until:
            started = time.monotonic()
            try:
                response = await client.get(f"{url}/data/1")
                results.append(
                    (started, str(response.status_code), response.headers.get("connection"))
                )
            except httpx.HTTPError as exc:
                results.append((started, type(exc).__name__, None))


async def _first_unready(url: str, within: float) -> float | None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if (await client.get(f"{url}/readyz")).status_code == 503:
                return time.monotonic()
            await asyncio.sleep(0.02)
    return None


@pytest.mark.parametrize(
    ("workers", "signum"),
    [(1, signal.SIGTERM), (2, signal.SIGTERM), (1, signal.SIGINT), (2, signal.SIGINT)],
    ids=["1-worker-SIGTERM", "2-workers-SIGTERM", "1-worker-SIGINT", "2-workers-SIGINT"],
)
async def test_a_signal_drains_then_stops_without_dropping_a_request(
    pg_url: str, tmp_path: Path, workers: int, signum: signal.Signals
) -> None:
    env = {
        "REGISTRO_ENV": "qa",
        "REGISTRO_AUTH": "off",
        "REGISTRO_WORKERS": str(workers),
        "REGISTRO_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "REGISTRO_FAULT_LATENCY_MS": str(FAULT_LATENCY_MS),
    }
    with running_service(pg_url, tmp_path / "service.log", **env) as service:
        async with httpx.AsyncClient() as client:
            await client.post(f"{service.url}/data", json={"name": "probe"}, timeout=5)
        results: list[Result] = []
        # Like a load balancer: keep sending until the drain period is over, then stop.
        loaders = [
            asyncio.create_task(_load(service.url, time.monotonic() + 60, results))
            for _ in range(8)
        ]
        await asyncio.sleep(1.0)
        service.process.send_signal(signum)
        signalled_at = time.monotonic()  # measured from the event, not from when it was planned
        stop_sending = signalled_at + DRAIN_SECONDS - 0.05
        unready_at = await _first_unready(service.url, within=1.0)
        await asyncio.sleep(max(0.0, stop_sending - time.monotonic()))
        for loader in loaders:
            loader.cancel()
        await asyncio.gather(*loaders, return_exceptions=True)
        exit_code = await asyncio.to_thread(service.process.wait, DRAIN_SECONDS + 30)
        stopped_at = time.monotonic()
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as client:
                await client.get(f"{service.url}/livez", timeout=2)

    assert unready_at is not None and unready_at - signalled_at < 0.5, "readyz not 503 at once"
    finished = [r for r in results if r[0] < stop_sending]
    outcomes = [outcome for _, outcome, _ in finished]
    assert set(outcomes) == {"200"}, {o: outcomes.count(o) for o in set(outcomes)}
    # Served during the drain, each on a connection the server then closed, so that keep-alive
    # clients reconnect through the load balancer (DrainMiddleware's job).
    draining = [r for r in finished if r[0] > signalled_at + 0.2]
    assert len(draining) >= 8, "requests were not served during the drain"
    assert {connection for _, _, connection in draining} == {"close"}
    assert stopped_at - signalled_at >= DRAIN_SECONDS, "stopped before the drain was over"
    assert exit_code == 0, service.output()[-3000:]


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_second_signal_skips_the_drain(pg_url: str, tmp_path: Path, workers: int) -> None:
    long_drain = 60
    env = {"REGISTRO_ENV": "qa", "REGISTRO_WORKERS": str(workers)}
    env["REGISTRO_DRAIN_SECONDS"] = str(long_drain)
    with running_service(pg_url, tmp_path / "service.log", **env) as service:
        service.process.send_signal(signal.SIGTERM)
        first_at = time.monotonic()
        assert await _first_unready(service.url, within=2.0) is not None
        await asyncio.sleep(
            max(0.0, first_at + 1.5 - time.monotonic())
        )  # not a repeat of the first
        service.process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(service.process.wait, long_drain)
        seconds = time.monotonic() - first_at
    assert seconds < 10, f"took {seconds:.1f}s: the second signal did not skip the drain"
    assert exit_code == 0, service.output()[-3000:]


async def test_a_request_still_running_at_the_deadline_gets_a_json_503(
    pg_url: str, tmp_path: Path
) -> None:
    env = {
        "REGISTRO_ENV": "qa",
        "REGISTRO_AUTH": "off",
        "REGISTRO_DRAIN_SECONDS": "0",
        "REGISTRO_SHUTDOWN_TIMEOUT_SECONDS": "1",
        "REGISTRO_DB_LOCK_TIMEOUT_SECONDS": "30",
        "REGISTRO_DB_STATEMENT_TIMEOUT_SECONDS": "30",
    }
    locker = await asyncpg.connect(pg_url)
    try:
        with running_service(pg_url, tmp_path / "service.log", **env) as service:
            async with locker.transaction(), httpx.AsyncClient(timeout=20) as client:
                await locker.execute("LOCK TABLE records IN ACCESS EXCLUSIVE MODE")
                stuck = asyncio.create_task(client.get(f"{service.url}/data"))
                await asyncio.sleep(0.5)
                service.process.send_signal(signal.SIGTERM)
                response = await stuck
            exit_code = await asyncio.to_thread(service.process.wait, 20)
    finally:
        await locker.close()
    assert response.status_code == 503
    assert response.json() == {"message": "Server shutting down, try again"}
    assert response.headers["retry-after"] == "1"
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
