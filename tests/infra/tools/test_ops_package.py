"""deploy/ is one importable package, run from the repository root (`python -m deploy.aws.preflight
qa`): nothing reaches a module by putting its folder on sys.path."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Installed packages and generated files, not the repository's own Python.
NOT_OURS = {".git", ".venv", ".venvs", "node_modules", ".work"}


def python_files() -> Iterator[Path]:
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = sorted(d for d in subdirectories if d not in NOT_OURS)
        yield from (Path(directory) / f for f in sorted(files) if f.endswith(".py"))


def sys_path_uses(source: str) -> list[int]:
    """Lines that touch sys.path (`sys.path.insert(...)`, `sys.path[:0] = ...`, `from sys import
    path`): reading it is as suspect as changing it."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "sys"
            and any(alias.name == "path" for alias in node.names)
        ):
            lines.append(node.lineno)
    return lines


def test_the_rule_sees_each_way_of_changing_sys_path() -> None:
    assert sys_path_uses("import sys\nsys.path.insert(0, 'x')\n") == [2]
    assert sys_path_uses("import sys\nsys.path[:0] = ['x']\n") == [2]
    assert sys_path_uses("from sys import path\npath.append('x')\n") == [1]
    assert sys_path_uses("import os\nos.path.join('a')\n") == []


def test_no_python_file_changes_sys_path() -> None:
    files = list(python_files())
    assert any(f.parts[-3:] == ("deploy", "aws", "preflight.py") for f in files)
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in files
        for line in sys_path_uses(path.read_text())
    ]
    assert found == [], "import through the deploy package (from deploy.aws import stacks)"


def test_every_folder_of_deploy_with_python_is_a_package() -> None:
    """`python -m deploy.x.y` and `from deploy.x import y` need each folder on the way to be one."""
    deploy = ROOT / "deploy"
    missing = {
        str(folder.relative_to(ROOT))
        for path in python_files()
        if path.is_relative_to(deploy)
        for folder in (path.parent, *path.parent.parents)
        if folder.is_relative_to(deploy) and not (folder / "__init__.py").exists()
    }
    assert sorted(missing) == []
