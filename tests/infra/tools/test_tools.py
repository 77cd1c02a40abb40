"""tools/tools.txt, the one list of the tools each verb needs, against the Makefile, the docs and
.ci/run; and tools/need.sh, which stops a verb whose tool is missing with one line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
LIST = ROOT / "tools" / "tools.txt"
NEED = ROOT / "tools" / "need.sh"
# Targets that need nothing but make and a shell (docker and packages install with apt themselves).
TOOL_LESS = {"help", "doctor", "packages", "docker", "docker-stop"}


def groups() -> dict[str, str]:
    """target -> the group whose tools it needs."""
    out = {}
    for line in LIST.read_text().splitlines():
        if line.startswith("@"):
            group, targets = (part.strip() for part in line[1:].split("|"))
            for target in targets.split():
                assert target not in out, f"{target} is in two groups"
                out[target] = group
    return out


def documented_targets() -> set[str]:
    """Every target the Makefile documents (`make help` lists) or the README and docs name."""
    makefile = set(re.findall(r"^([a-zA-Z0-9_-]+):.*## ", (ROOT / "Makefile").read_text(), re.M))
    docs = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    named = {t for doc in docs for t in re.findall(r"`make ([a-z][a-z0-9-]*)", doc.read_text())}
    return makefile | named


def test_every_documented_target_is_a_target_and_has_a_group() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in documented_targets():
        assert re.search(rf"^{target}:", makefile, re.M), f"`make {target}` is no target"
    assert documented_targets() - TOOL_LESS <= set(groups())


def test_every_group_of_a_tool_is_a_group() -> None:
    known = set(groups().values())
    for line in LIST.read_text().splitlines():
        if line.strip() and not line.startswith(("#", "@")):
            name, tool_groups, *_ = (part.strip() for part in line.split("|"))
            assert {g.rstrip("?") for g in tool_groups.split(",")} <= known, name


def test_ci_installs_the_packages_of_every_group_it_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    ran = {groups()[t] for t in re.findall(r"^make ([a-z0-9-]+)", ci, re.M) if t in groups()}
    installed = re.search(r'^make packages GROUPS="([a-z0-9 -]+)"', ci, re.M)
    assert installed and ran and ran <= set(installed[1].split())


def need(tmp_path: Path, tools: str, *args: str) -> subprocess.CompletedProcess[str]:
    listing = tmp_path / "tools.txt"
    listing.write_text("@ g | verb other\n@ h | third\n" + tools)
    env = {**os.environ, "TOOLS_LIST": str(listing)}
    return subprocess.run([str(NEED), *args], env=env, capture_output=True, text=True, timeout=30)


def test_a_missing_tool_is_one_line_with_its_install_command(tmp_path: Path) -> None:
    result = need(
        tmp_path,
        "bash | g | - | bash | - | bash --version\n"
        "nosuchtool | g,h | - | nosuchpkg | - | nosuchtool --version\n",
        "--goals",
        "verb",
    )
    assert result.stdout.count("\n") == 1
    assert "make verb needs nosuchtool: apt-get install nosuchpkg" in result.stdout
    assert "bash" not in result.stdout


def test_an_old_version_names_the_minimum_and_a_way_to_get_it(tmp_path: Path) -> None:
    result = need(
        tmp_path, "bash | g | 999.1 | - | get it from there | bash --version\n", "--goals", "verb"
    )
    assert re.search(r"bash >= 999\.1 \(found \d+\.\d+(\.\d+)?\): get it from there", result.stdout)


def test_an_optional_tool_only_warns(tmp_path: Path) -> None:
    result = need(tmp_path, "nosuchtool | g? | - | nosuchpkg | - | nosuchtool\n", "--goals", "verb")
    assert result.stdout == ""
    assert "nosuchtool is missing" in result.stderr and "apt-get install nosuchpkg" in result.stderr


def test_present_tools_and_other_groups_say_nothing(tmp_path: Path) -> None:
    tools = "bash | g | - | bash | - | bash --version\nnosuchtool | h | - | x | - | nosuchtool\n"
    assert need(tmp_path, tools, "--goals", "verb", "unlisted").stdout == ""
    assert need(tmp_path, tools, "--apt", "g", "h").stdout.split() == ["x"]
    doctor = need(tmp_path, tools, "--doctor").stdout
    assert re.search(r"ok +bash +\d+\.\d+", doctor) and re.search(r"MISSING +nosuchtool", doctor)


def outside_make() -> dict[str, str]:
    """The environment without what a calling make passes down (under `make test` too)."""
    return {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}


def test_make_stops_before_any_recipe_when_a_tool_is_missing(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("make is not installed")
    listing = tmp_path / "tools.txt"
    listing.write_text("@ bench | bench\nnosuchtool | bench | - | nosuchpkg | - | nosuchtool\n")
    result = subprocess.run(
        ["make", "bench"],
        cwd=ROOT,
        env={**outside_make(), "TOOLS_LIST": str(listing)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "make bench needs nosuchtool: apt-get install nosuchpkg" in line


def test_the_scripts_are_clean_shell() -> None:
    if shutil.which("shellcheck") is None:
        reason = "shellcheck is not installed (apt-get install shellcheck)"
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(reason)
    scripts = [NEED, ROOT / "tools" / "get-kubectl.sh", ROOT / ".ci" / "run"]
    result = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_make_help_lists_every_target_under_a_heading_aligned() -> None:
    """`make help` prints each `## ` target below the heading it is written under
    (tools/make-help.awk), every description starting in one column."""
    output = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert output[0] and not output[0].startswith(" "), "the first line is a heading"
    rows = [line for line in output if line.startswith("  ")]
    listed = {row.split()[0] for row in rows}
    assert listed == set(
        re.findall(r"^([a-zA-Z0-9_-]+):.*## ", (ROOT / "Makefile").read_text(), re.M)
    )
    columns = {len(row) - len(row[2:].split(" ", 1)[1].lstrip()) for row in rows}
    assert len(columns) == 1, columns
