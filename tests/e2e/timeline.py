"""A drill's timeline as a PNG: request outcomes per 100 ms and latency, with the fault's moments.

Made from the drill's own recorded requests (load.Result) and the moments it marked as they
happened (Load.mark). The counts the image plots are written into the PNG itself (a text chunk),
so a check can read back what an image shows and compare it with the run's numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg: no display needed
from matplotlib.figure import Figure
from PIL import Image

from tests.e2e.load import Result

BUCKET_S = 0.1
LATENCY_WINDOW_S = 1.0  # the p50/p99 lines: one point per second of request starts
METADATA_KEY = "Description"  # the PNG text chunk holding the plotted counts


@dataclass(frozen=True)
class Series:
    """Per bucket: requests that ended in it (ok, failed) and those in flight at its end."""

    start: float  # time.time() of the first bucket's start: the first request's start
    bucket_s: float
    ok: list[int]
    failed: list[int]
    in_flight: list[int]

    def counts(self) -> dict[str, int]:
        return {
            "requests": sum(self.ok) + sum(self.failed),
            "ok": sum(self.ok),
            "failed": sum(self.failed),
            "buckets": len(self.ok),
            "bucket_ms": round(self.bucket_s * 1000),
            "most_in_flight": max(self.in_flight, default=0),
        }


def series(results: Sequence[Result], bucket_s: float = BUCKET_S) -> Series:
    if not results:
        return Series(0.0, bucket_s, [], [], [])
    starts = np.array([r.start for r in results])
    ends = np.array([r.end for r in results])
    ok = np.array([r.ok for r in results])
    t0 = float(starts.min())
    n = int((ends.max() - t0) // bucket_s) + 1
    index = ((ends - t0) // bucket_s).astype(int)
    boundaries = t0 + bucket_s * np.arange(1, n + 1)
    in_flight = np.searchsorted(np.sort(starts), boundaries, side="right") - np.searchsorted(
        np.sort(ends), boundaries, side="right"
    )
    return Series(
        start=t0,
        bucket_s=bucket_s,
        ok=np.bincount(index[ok], minlength=n).tolist(),
        failed=np.bincount(index[~ok], minlength=n).tolist(),
        in_flight=in_flight.tolist(),
    )


def draw(
    results: Sequence[Result], marks: Sequence[tuple[str, float]], title: str, path: Path
) -> dict[str, object]:
    """Write the PNG; return what it plots (the counts, and each mark's second from the start)."""
    s = series(results)
    shown = s.counts() | {
        "marks": {label: round(at - s.start, 2) + 0.0 for label, at in marks},  # no "-0.0"
    }
    figure = Figure(figsize=(12, 6.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    outcomes, latency = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    edges = np.arange(len(s.ok) + 1) * s.bucket_s
    ok, failed = np.array(s.ok), np.array(s.failed)
    outcomes.stairs(ok, edges, fill=True, color="tab:green", alpha=0.6, label="ok")
    outcomes.stairs(ok + failed, edges, baseline=ok, fill=True, color="tab:red", label="failed")
    outcomes.stairs(np.array(s.in_flight), edges, color="black", lw=0.8, label="in flight")
    outcomes.set_ylabel(f"requests per {shown['bucket_ms']} ms")
    outcomes.set_title(
        f"{title}\n{shown['requests']} requests, {shown['failed']} failed", fontsize=10, pad=24
    )

    offsets = np.array([r.start - s.start for r in results])
    millis = np.array([(r.end - r.start) * 1000 for r in results])
    good = np.array([r.ok for r in results], dtype=bool)
    latency.scatter(offsets[good], millis[good], s=3, color="tab:green", alpha=0.4, label="ok")
    latency.scatter(offsets[~good], millis[~good], s=12, c="tab:red", marker="x", label="failed")
    for q, style in ((50, "-"), (99, "--")):
        x, y = _percentile_line(offsets[good], millis[good], q)
        label = f"p{q} (per {LATENCY_WINDOW_S:g} s)"
        latency.plot(x, y, style, color="tab:blue", lw=1, label=label)
    latency.set_yscale("log")
    latency.set_ylabel("latency (ms)")
    latency.set_xlabel("seconds since the first request")
    latency.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)

    # Numbered lines, named in a legend beside the plot: close moments stay legible.
    moments = []
    marked: dict[str, float] = shown["marks"]  # type: ignore[assignment]
    span = max(float(edges[-1]), 0.1)
    level, previous = 0, None
    for number, (label, at) in enumerate(marked.items(), start=1):
        # A number close to the previous one goes a line higher, so "1" and "2" never read "12".
        level = level + 1 if previous is not None and at - previous < span / 50 else 0
        previous = at
        for ax in (outcomes, latency):
            line = ax.axvline(at, color="tab:purple", lw=1, ls=":")
        moments.append((line, f"{number}: {label} ({at} s)"))
        outcomes.annotate(
            str(number),
            (at, 1),
            xycoords=("data", "axes fraction"),
            xytext=(0, 1 + 9 * level),
            textcoords="offset points",
            va="bottom",
            ha="center",
            fontsize=8,
            color="tab:purple",
        )
    handles, labels = outcomes.get_legend_handles_labels()
    outcomes.legend(
        handles + [m[0] for m in moments],
        labels + [m[1] for m in moments],
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize=8,
    )
    outcomes.set_xlim(0, span)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={METADATA_KEY: json.dumps(shown, sort_keys=True)})
    return shown


def _percentile_line(
    offsets: np.ndarray, millis: np.ndarray, q: float
) -> tuple[np.ndarray, np.ndarray]:
    if not len(offsets):
        return np.array([]), np.array([])
    window = (offsets // LATENCY_WINDOW_S).astype(int)
    present = np.unique(window)
    values = [np.percentile(millis[window == w], q) for w in present]
    return (present + 0.5) * LATENCY_WINDOW_S, np.array(values)


def embedded(path: Path) -> dict[str, object]:
    """What a timeline image says it plots, read back from the PNG."""
    with Image.open(path) as image:
        if image.format != "PNG":
            raise ValueError(f"{path} is not a PNG")
        text = image.info.get(METADATA_KEY)
    if text is None:
        raise ValueError(f"{path} carries no plotted counts")
    return dict(json.loads(text))
