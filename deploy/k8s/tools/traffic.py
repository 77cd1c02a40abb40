"""Synthetic, read-only traffic through the service's public name while a canary is judged.

    traffic.py URL [--rate PER_SECOND] [--seconds MAX]

A canary's analysis needs requests: with none, every measurement is inconclusive and Argo Rollouts
pauses the Rollout (argo-rollouts docs/features/analysis.md, "Inconclusive Runs"). deploy/k8s/
release.sh runs this in the background for the length of the canary and stops it at the end; the
ALB gives the canary its weight's share. Only GETs of client routes the analysis counts (not the
probes' /livez and /readyz, which it leaves out) and nothing that writes. Failed requests are
counted, never retried and never fatal: judging them is the analysis's job. Standard library only
(release.sh runs it with the workstation's python3). Stops at --seconds, on SIGTERM or SIGINT,
printing what it sent.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from types import FrameType

PATHS = ("/data?limit=1", "/version")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=2460.0)
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be above 0")
    base = args.url.rstrip("/")
    outcomes: Counter[str] = Counter()
    stop = time.monotonic() + args.seconds
    running = True

    def halt(signum: int, frame: FrameType | None) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, halt)
    signal.signal(signal.SIGINT, halt)
    print(f"traffic: {args.rate:g}/s to {base} ({', '.join(PATHS)}) while the canary is judged")
    sent = 0
    start = time.monotonic()
    while running and time.monotonic() < stop:
        path = PATHS[sent % len(PATHS)]
        try:
            with urllib.request.urlopen(base + path, timeout=5) as answer:  # noqa: S310 (http/https)
                outcomes[str(answer.status)] += 1
        except urllib.error.HTTPError as error:
            outcomes[str(error.code)] += 1
        except (urllib.error.URLError, OSError) as error:
            outcomes[type(getattr(error, "reason", error)).__name__] += 1
        sent += 1
        delay = start + sent / args.rate - time.monotonic()
        if delay > 0 and running:
            time.sleep(delay)
    print(f"traffic: sent {sent}: " + ", ".join(f"{k} x{v}" for k, v in sorted(outcomes.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
