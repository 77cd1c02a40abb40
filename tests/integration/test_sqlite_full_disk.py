"""SQLite on a full disk: writes are a 503, not a 500, and /readyz says not ready until there
is room again.

A real full filesystem: a small tmpfs the test mounts (it needs root, as CI has; elsewhere the
test is skipped and says why), the database on it, then a file filling the rest.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from registro.app import create_app
from registro.settings import load_settings
from registro.store.migrate import upgrade
from tests.conftest import in_thread

SIZE = "4m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    # Unbuffered, and the suppress outside the file: closing a buffered file on a full disk
    # raises again (Python 3.14 flushes what is left on close).
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as out:
        while True:
            out.write(b"\0" * 65536)
    return filler


@contextlib.asynccontextmanager
async def _client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_settings(env="dev", database_url=url))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registro.test") as c:
            yield c


async def test_a_full_disk_is_a_503_for_writes_and_not_ready_until_there_is_room(
    small_disk: Path,
) -> None:
    url = f"sqlite:///{small_disk}/registro.db"
    in_thread(upgrade, url)
    async with _client(url) as client:
        assert (await client.post("/data", json={"name": "before"})).status_code == 200
        filler = _fill(small_disk)
        statuses = set()
        for number in range(50):  # the pages SQLite had free fill up first
            response = await client.post("/data", json={"name": f"n{number}" + "x" * 90})
            statuses.add(response.status_code)
            if response.status_code != 200:
                break
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.json()["message"]
        assert statuses <= {200, 503}
        readyz = await client.get("/readyz")
        assert readyz.status_code == 503
        assert readyz.json() == {"message": "database storage full"}
        assert (await client.get("/data?limit=1")).status_code == 200  # reads still work

        filler.unlink()
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.post("/data", json={"name": "after"})).status_code == 200
