"""The README's "Try it" walkthrough, typed as a newcomer would: each `curl` line runs in a shell
against a fresh `registro serve`, and what it prints is the `# ` lines under it (curl is in the
test group of tools/tools.txt, so make test stops before running without it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from registro.settings import DEFAULT_PORT
from tests.support.service import running_service

README = Path(__file__).parents[2] / "README.md"


def walkthrough() -> list[tuple[str, str]]:
    """(command, expected output) for each command of the sh block under "## Try it"."""
    text = README.read_text()
    section = text[text.index("## Try it") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README: no sh block under ## Try it"
    steps: list[tuple[str, list[str]]] = []
    for line in block[1].splitlines():
        if line.startswith("# "):
            steps[-1][1].append(line[2:])
        else:
            steps.append((line, []))
    return [(command, "\n".join(output)) for command, output in steps]


def test_the_walkthrough_has_every_operation_and_a_conflict() -> None:
    commands = " ".join(command for command, _ in walkthrough())
    for shown in ("-d '{", "limit=", "-X PUT", "-X DELETE", f"localhost:{DEFAULT_PORT}/data/"):
        assert shown in commands
    assert '{"message":"Data already exists"}' in [output for _, output in walkthrough()]


def test_each_command_prints_what_the_readme_says(tmp_path: Path) -> None:
    with running_service(f"sqlite:///{tmp_path / 'registro.db'}", tmp_path / "log") as service:
        port = service.url.rsplit(":", 1)[1]
        for command, expected in walkthrough():
            typed = command.replace(f"localhost:{DEFAULT_PORT}", f"localhost:{port}")
            result = subprocess.run(
                ["bash", "-c", typed], capture_output=True, text=True, timeout=30, check=False
            )
            assert result.stdout.strip() == expected, command
