"""/docs works with no internet access: its assets come from the service, checked in Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.service import running_service

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--virtual-time-budget=15000",
    "--dump-dom",
]


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return path


def test_docs_page_loads_only_assets_served_by_the_service(tmp_path: Path) -> None:
    with running_service(f"sqlite:///{tmp_path}/docs.db", tmp_path / "service.log") as service:
        html = httpx.get(f"{service.url}/docs").text
        assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", html)
        assert assets, html
        for asset in assets:
            assert asset.startswith("/"), f"external asset {asset}"
            assert httpx.get(f"{service.url}{asset}").status_code == 200, asset


def test_docs_render_every_operation_in_a_browser(tmp_path: Path) -> None:
    chromium = _chromium()
    with running_service(f"sqlite:///{tmp_path}/docs.db", tmp_path / "service.log") as service:
        result = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp_path / 'profile'}",
                f"{service.url}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    dom = result.stdout
    assert 'class="swagger-ui' in dom, result.stderr[-2000:]
    rendered = set(re.findall(r'data-path="([^"]+)"', dom))
    assert {"/data", "/data/{id}", "/audit", "/readyz"} <= rendered, rendered
