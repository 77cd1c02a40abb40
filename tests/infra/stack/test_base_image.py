"""deploy/docker/base-image.sh, run with a fake docker and a fake debootstrap that record their
calls: it builds the Debian suite BASE_IMAGE's tag names, and refuses a tag it cannot build."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "deploy" / "docker" / "base-image.sh"

# `image inspect` and `pull` fail (the image is absent, the registry unreachable) unless
# FAKE_DOCKER_HAS_IMAGE is set; `import` reads the tarball; every call is recorded.
FAKE_DOCKER = """#!/bin/sh
echo "$*" >>"$CALLS/docker"
case "$1" in
    image) [ "$2" = inspect ] && { [ -n "$FAKE_DOCKER_HAS_IMAGE" ]; exit $?; }; exit 0 ;;
    pull) exit 1 ;;
    import) cat >/dev/null; exit 0 ;;
esac
exit 0
"""
# debootstrap --variant=minbase SUITE ROOTFS MIRROR: the directories the slimming touches.
FAKE_DEBOOTSTRAP = """#!/bin/sh
echo "$*" >>"$CALLS/debootstrap"
mkdir -p "$3/etc/dpkg/dpkg.cfg.d" "$3/etc/apt/apt.conf.d" "$3/usr/share/locale/fr" \
         "$3/usr/share/doc" "$3/var/cache/apt"
touch "$3/usr/share/locale/locale.alias"
"""


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def run(tmp_path: Path, base_image: str, **extra: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    executable(bin_dir / "debootstrap", FAKE_DEBOOTSTRAP)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DOCKER": str(executable(tmp_path / "docker", FAKE_DOCKER)),
        "CALLS": str(calls_dir(tmp_path)),
        "TMPDIR": str(tmp_path),
        "BASE_IMAGE": base_image,
        **extra,
    }
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def calls_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "calls"
    directory.mkdir(exist_ok=True)
    return directory


def calls(tmp_path: Path, tool: str) -> list[str]:
    log = calls_dir(tmp_path) / tool
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_debootstraps_the_suite_of_the_tag_and_imports_it_under_that_name(
    tmp_path: Path, suite: str
) -> None:
    result = run(tmp_path, f"debian:{suite}-slim")

    assert result.returncode == 0, result.stderr
    [debootstrap] = calls(tmp_path, "debootstrap")
    assert debootstrap.split()[:2] == ["--variant=minbase", suite]
    assert any(
        c.startswith("import ") and c.endswith(f" - debian:{suite}-slim")
        for c in calls(tmp_path, "docker")
    )


@pytest.mark.parametrize("tag", ["debian:bullseye-slim", "debian:trixie", "ubuntu:24.04"])
def test_refuses_a_tag_it_cannot_build_in_one_line(tmp_path: Path, tag: str) -> None:
    result = run(tmp_path, tag)

    assert result.returncode == 2
    assert calls(tmp_path, "debootstrap") == []
    assert not any(c.startswith("import") for c in calls(tmp_path, "docker"))
    [line] = result.stderr.splitlines()
    assert tag in line and "debian:bookworm-slim or debian:trixie-slim" in line


def test_an_image_already_present_is_left_alone_whatever_its_tag(tmp_path: Path) -> None:
    result = run(tmp_path, "registry.example/debian:custom", FAKE_DOCKER_HAS_IMAGE="1")

    assert result.returncode == 0, result.stderr
    assert calls(tmp_path, "docker") == ["image inspect registry.example/debian:custom"]
    assert calls(tmp_path, "debootstrap") == []
