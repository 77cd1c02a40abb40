"""Several workers start on a starved CPU: a worker that takes longer than uvicorn's default 5 s
to import the service is waited for, not killed and respawned for ever.

uvicorn's Multiprocess supervisor pings each worker through a pipe and kills one that does not
answer within `timeout_worker_healthcheck` (uvicorn/supervisors/multiprocess.py,
`keep_subprocess_alive`); the worker answers from a thread it starts only after the spawned
process has imported everything (`Process.target`). Seen on a loaded 2-core machine: "Child
process [...] died" in a loop, and the service never ready.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.service import running_service

# Imported by every Python that starts with this directory on its path; it delays only the
# workers, which multiprocessing's spawn starts with `-c "from multiprocessing.spawn import ..."`,
# past uvicorn's 5 s (on a busy machine their imports add to it).
SLOW_IMPORT = """
import sys, time
if any("multiprocessing" in argument for argument in sys.argv):
    time.sleep(6.5)
"""


def test_two_workers_that_start_slowly_are_waited_for(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_IMPORT)
    with running_service(
        f"sqlite:///{tmp_path / 'registro.db'}",
        tmp_path / "service.log",
        start_timeout=90,
        REGISTRO_WORKERS="2",
        PYTHONPATH=str(site),
    ) as service:
        assert httpx.get(f"{service.url}/livez", timeout=5).status_code == 200
        assert "died" not in service.output()
