"""docs/resilience.md, written by the drills: each drill stores its measurements in
docs/resilience.json under its own name, and the page is rendered from all of them, so a run of
one drill updates its section and keeps the others' last measurements (each dated)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "resilience.json"
PAGE = ROOT / "docs" / "resilience.md"

ORDER = [
    "smoke",
    "replica-crash",
    "rolling-update",
    "canary-healthy",
    "canary-faulty",
    "database-failover",
    "isolation",
    "audit-trail",
]


def record(
    drill: str, title: str, description: str, measurements: dict[str, object], passed: bool
) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    results[drill] = {
        "title": title,
        "description": description,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "passed": passed,
        "measurements": measurements,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    PAGE.write_text(render(results))


def render(results: dict[str, dict]) -> str:
    lines = [
        "# Resilience drills: measured results",
        "",
        "Written by the drills themselves (`make e2e`, tests/e2e/); do not edit by hand.",
        "Each drill runs against the local production-like stack (compose.yaml) under bounded load",
        "sent to https://127.0.0.1:8443, and records here what it measured. The raw figures are",
        "in [resilience.json](resilience.json).",
        "",
    ]
    for drill in sorted(results, key=lambda d: ORDER.index(d) if d in ORDER else len(ORDER)):
        r = results[drill]
        lines += [
            f"## {r['title']}",
            "",
            r["description"],
            "",
            f"Measured {r['measured_at']} at commit `{r['commit']}` on {r['machine']}: "
            f"**{'passed' if r['passed'] else 'FAILED'}**.",
            "",
            "| measurement | value |",
            "| --- | --- |",
        ]
        lines += [f"| {k.replace('_', ' ')} | {_fmt(v)} |" for k, v in r["measurements"].items()]
        lines.append("")
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value).replace("|", "\\|")


def conclude(
    drill: str,
    title: str,
    description: str,
    measurements: dict[str, object],
    checks: dict[str, bool],
) -> None:
    """Record the drill's measurements and which checks held, then fail on any that did not."""
    failed = [name for name, held in checks.items() if not held]
    record(
        drill,
        title,
        description,
        {
            **measurements,
            "checks": f"{len(checks) - len(failed)}/{len(checks)} held"
            + (f"; failed: {', '.join(failed)}" if failed else ""),
        },
        passed=not failed,
    )
    assert not failed, f"{drill}: checks failed: {failed}\nmeasurements: {measurements}"
