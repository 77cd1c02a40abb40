"""What the local operations report as they go, and how they wait.

A line for the person on stderr (`log`); the same step as one JSON line on stdout (`event`), which
the drills (tests/e2e) read back and place on their timelines; `wait_for` polls a condition.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def event(kind: str, **fields: Any) -> None:
    print(json.dumps({"event": kind, "t": time.time(), **fields}), flush=True)


def wait_for(
    what: str, predicate: Callable[[], object], timeout: float, interval: float = 0.2
) -> float:
    """Poll until predicate() is true; return the seconds it took, or raise TimeoutError."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def seen_within(predicate: Callable[[], object], timeout: float) -> bool:
    """Whether predicate() turns true within `timeout` seconds (no error when it does not)."""
    try:
        wait_for("condition", predicate, timeout)
    except TimeoutError:
        return False
    return True
