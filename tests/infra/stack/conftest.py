"""The stack's tools are scripts in deploy/docker (stackctl.py, pitr.py): importable here."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "deploy" / "docker"))
