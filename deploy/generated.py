"""Files generated from a spec, written or checked one way: deploy/slo/generate.py (make slo,
make slo-check) and deploy/facts/generate.py (make facts, make facts-check)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def write_or_check(
    name: str,
    spec: str,
    root: Path,
    files: Mapping[str, str],
    check: bool,
    current: Mapping[str, str] | None = None,
) -> int:
    """Each of `files` (its path under `root` -> the text it should have) that differs: written,
    or with `check` named; the exit status (1: a file differs from the spec). `current`: the
    files' texts as the generator already read them, so that none is read twice; otherwise each
    is read here (a missing one differs)."""
    if current is None:
        current = {p: (root / p).read_text() for p in files if (root / p).is_file()}
    stale = sorted(p for p, text in files.items() if current.get(p) != text)
    if check:
        if stale:
            print(f"{name}: differ from {spec} (run make {name}): {stale}")
            return 1
        print(f"{name}: {len(files)} files agree with {spec}")
        return 0
    for path in stale:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(files[path])
    print(f"{name}: {len(stale)} of {len(files)} files rewritten")
    return 0
