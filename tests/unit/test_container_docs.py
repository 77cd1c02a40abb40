"""The `docker run` line of docs/configuration.md fits the image: the image listens beyond its
container's loopback, and a read-only container gets a writable place for its SQLite file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCKERFILE = (ROOT / "deploy" / "docker" / "registro" / "Dockerfile").read_text()


def docker_run() -> str:
    text = (ROOT / "docs" / "configuration.md").read_text().replace("\\\n", " ")
    [line] = [line for line in text.splitlines() if line.startswith("docker run --rm -p")]
    return line


def test_the_image_listens_on_the_containers_every_interface() -> None:
    """Published with -p, the container's port must be bound beyond its loopback. (The port in
    the line and in the image are both written from deploy/facts/facts.yaml.)"""
    assert "REGISTRO_HOST=0.0.0.0" in DOCKERFILE


def test_a_read_only_container_keeps_its_database_on_the_tmpfs() -> None:
    line = docker_run()
    assert "--read-only" in line and "--tmpfs /tmp" in line
    database = re.search(r"DATABASE_URL=sqlite:///(\S+)", line)
    assert database and database[1].startswith("/tmp/")  # noqa: S108 (the container's tmpfs)
