"""Shared fixtures: the stacks in dependency order and their decoded templates (from deploy/aws)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deploy.aws import stacks  # the one reader of the stack order and environments

ROOT = Path(__file__).resolve().parents[3]
AWS_DIR = ROOT / "deploy" / "aws"


@pytest.fixture(scope="session")
def layers() -> list[str]:
    return stacks.layers()


@pytest.fixture(scope="session")
def templates(layers: list[str]) -> dict[str, dict[str, Any]]:
    """layer -> template as CloudFormation sees it (short-form tags expanded, line marks kept)."""
    return {layer: stacks.load_template(layer) for layer in layers}
