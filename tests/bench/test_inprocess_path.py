"""`benchmarks/inprocess.py --path`: the path of one `POST /data` through the service."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_path_of_a_post_reaches_its_handler_through_the_middleware_module() -> None:
    """It counts the frames down to the handler and names the service's files that ran; a
    request that never reached the handler (a fake the app no longer uses) makes it fail."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.inprocess", "--path"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    found = re.search(r"POST /data: (\d+) frames .* to create_record\n  (\d+) files of the", out)
    assert found, out
    assert 0 < int(found[1]) < 40 and 0 < int(found[2]) < 30, out
    for module in ("middleware.py", "api/operation.py", "api/data.py"):
        assert module in out, out
