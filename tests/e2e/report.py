"""docs/resilience.md, written by the drills: each drill stores its measurements in
docs/resilience.json under its own name, and the page is rendered from all of them, so a run of
one drill updates its section and keeps the others' last measurements (each dated). Beside its
numbers, each drill draws its timeline (tests/e2e/timeline.py) to docs/resilience/<drill>.png.
`make measure` (tests/e2e/measure.py) writes the same three into a folder of its own."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

from tests.e2e import timeline
from tests.e2e.load import Load, failures

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RESULTS_NAME, PAGE_NAME, IMAGES_NAME = "resilience.json", "resilience.md", "resilience"
RESULTS = DOCS / RESULTS_NAME
PAGE = DOCS / PAGE_NAME
IMAGES = DOCS / IMAGES_NAME  # <drill>.png, linked from the page relative to it
DRILLS_INTRO = (
    "Each drill runs against the local production-like stack (compose.yaml) under bounded load\n"
    "sent to https://127.0.0.1:8443, and records here what it measured."
)

ORDER = [
    "smoke",
    "replica-crash",
    "rolling-update",
    "canary-healthy",
    "canary-faulty",
    "database-failover",
    "point-in-time-restore",
    "isolation",
    "audit-trail",
    "traces",
]


def record(
    drill: str,
    title: str,
    description: str,
    measurements: dict[str, object],
    passed: bool,
    shown: dict[str, object] | None = None,
    *,
    out: Path = DOCS,
    intro: str = DRILLS_INTRO,
) -> None:
    """Store the drill's entry in `out`'s results and render `out`'s page from all of them."""
    results_path = out / RESULTS_NAME
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
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
    if shown is not None:
        results[drill]["timeline"] = {"image": image_name(drill), **shown}
    out.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (out / PAGE_NAME).write_text(render(results, intro))


def render(results: dict[str, dict], intro: str = DRILLS_INTRO) -> str:
    lines = [
        "# Resilience drills: measured results",
        "",
        "Written by the drills themselves (`make e2e`, tests/e2e/); do not edit by hand.",
        intro,
        f"The raw figures are in [{RESULTS_NAME}]({RESULTS_NAME}).",
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
        if "timeline" in r:
            t = r["timeline"]
            lines += [
                f"![Timeline of the drill: {t['requests']} requests, {t['failed']} failed]"
                f"({t['image']})",
                "",
                f"Requests per {t['bucket_ms']} ms by outcome (ok, failed) and in flight, and "
                "each request's latency, with the drill's moments marked: "
                + (", ".join(f"{k} at {v} s" for k, v in t["marks"].items()) or "none")
                + ".",
                "",
            ]
    return "\n".join(lines)


def image_name(drill: str) -> str:
    return f"{IMAGES_NAME}/{drill}.png"


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
    *,
    load: Load,
) -> None:
    """Write the drill's report into docs/ (`write`), then fail on any check that did not hold."""
    failed = write(drill, title, description, measurements, checks, load=load)
    assert not failed, f"{drill}: checks failed: {failed}\nmeasurements: {measurements}"


def write(
    drill: str,
    title: str,
    description: str,
    measurements: dict[str, object],
    checks: dict[str, bool],
    *,
    load: Load,
    out: Path = DOCS,
    intro: str = DRILLS_INTRO,
) -> list[str]:
    """Draw the drill's timeline from its load's requests and marks, record the measurements and
    which checks held (one of them: the image plots exactly the run's requests) into `out`;
    return the checks that did not hold."""
    path = out / image_name(drill)
    shown = timeline.draw(load.results, load.marks, title, path)
    read_back = timeline.embedded(path)
    checks = {
        **checks,
        "the timeline image plots every request of the run": read_back["requests"]
        == len(load.results)
        and read_back["failed"] == len(failures(load.results)),
    }
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
        shown=shown,
        out=out,
        intro=intro,
    )
    return failed
