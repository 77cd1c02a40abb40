"""Where a SQLite DATABASE_URL puts the file, and that commands which only read create none.

`sqlite:///` is followed by the path: `sqlite:///registro.db` is relative to the working
directory, `sqlite:////var/lib/registro.db` (a fourth slash) is absolute.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from registro.store.urls import sqlalchemy_url, sqlite_path
from tests.support.service import REGISTRO


def registro(cwd: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRO_")}
    return subprocess.run(
        [REGISTRO, *args],
        env={**env, "DATABASE_URL": url},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def files(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///registro.db", "registro.db"),
        ("sqlite:///./data/registro.db", "./data/registro.db"),
        ("sqlite:////var/lib/registro/registro.db", "/var/lib/registro/registro.db"),
    ],
)
def test_three_slashes_then_the_path(url: str, path: str) -> None:
    assert sqlite_path(url) == path
    assert sqlalchemy_url(url) == f"sqlite+aiosqlite:///{path}"


def test_relative_and_absolute_urls_put_the_file_where_they_say(tmp_path: Path) -> None:
    (tmp_path / "cwd").mkdir()
    assert registro(tmp_path / "cwd", "sqlite:///relative.db", "migrate").returncode == 0
    assert (tmp_path / "cwd" / "relative.db").is_file()
    absolute = tmp_path / "absolute.db"
    assert registro(tmp_path / "cwd", f"sqlite:///{absolute}", "migrate").returncode == 0
    assert str(absolute).startswith("/") and absolute.is_file()


@pytest.mark.parametrize(
    "command", [["migrate", "--check"], ["keys", "list"], ["keys", "revoke", "x"]]
)
def test_commands_that_need_a_database_never_create_one(tmp_path: Path, command: list[str]) -> None:
    result = registro(tmp_path, "sqlite:///registro.db", *command)
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "registro: database unavailable: no SQLite database at registro.db "
        "(`registro migrate` or `registro serve` creates it)"
    ]
    assert files(tmp_path) == set()


def test_reading_an_existing_database_leaves_the_files_as_they_were(tmp_path: Path) -> None:
    assert registro(tmp_path, "sqlite:///registro.db", "migrate").returncode == 0
    before = files(tmp_path)
    assert registro(tmp_path, "sqlite:///registro.db", "migrate", "--check").returncode == 0
    assert registro(tmp_path, "sqlite:///registro.db", "keys", "list").returncode == 0
    assert files(tmp_path) == before
