"""The `docker run` line of docs/configuration.md fits the image: the port it publishes is the
one the image listens on, and a read-only container gets a writable place for its SQLite file."""

from __future__ import annotations

import re
from pathlib import Path

from registro.settings import DEFAULT_PORT

ROOT = Path(__file__).parents[2]
DOCKERFILE = (ROOT / "deploy" / "docker" / "registro" / "Dockerfile").read_text()


def docker_run() -> str:
    text = (ROOT / "docs" / "configuration.md").read_text().replace("\\\n", " ")
    [line] = [line for line in text.splitlines() if line.startswith("docker run --rm -p")]
    return line


def test_the_published_port_is_the_one_the_image_listens_on() -> None:
    """The image's EXPOSE and REGISTRO_PORT are DEFAULT_PORT (deploy/facts/facts.yaml)."""
    assert f"-p 127.0.0.1:{DEFAULT_PORT}:{DEFAULT_PORT} " in docker_run()
    assert "REGISTRO_HOST=0.0.0.0" in DOCKERFILE


def test_a_read_only_container_keeps_its_database_on_the_tmpfs() -> None:
    line = docker_run()
    assert "--read-only" in line and "--tmpfs /tmp" in line
    database = re.search(r"DATABASE_URL=sqlite:///(\S+)", line)
    assert database and database[1].startswith("/tmp/")  # noqa: S108 (the container's tmpfs)
