"""`make bench-image`: the service image on two base images, side by side, in one run.

For each image (built from the same commit; the Makefile builds them on debian:bookworm-slim and
debian:trixie-slim): its size (`docker image inspect`), its start time (`docker run` until the
first 200 from /livez, several runs, median) and the requests per second of a short wrk load on
`GET /data/1`, with SQLite in the container's tmpfs. Every container gets the same CPU limit, and
the images take turns (A, B, A, B, ...) so that both see the same machine. Traffic goes only to
ports published on 127.0.0.1; every wait is bounded. The table is printed and written to
.work/bench/image-base.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from registro.settings import DEFAULT_PORT

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / ".work" / "bench" / "image-base.md"
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
CPUS = "1"
CONNECTIONS = 16
START_TIMEOUT_S = 60.0
DEFAULT_ROUNDS, DEFAULT_STARTS, DEFAULT_SECONDS = 5, 3, 10
WARM_UP_SECONDS = 2
# A SQLite database in the container's tmpfs: the load measures the image, not a disk.
TMPFS = "/tmp"  # noqa: S108 (inside the container, a tmpfs of its own)
CONTAINER_ENV = {"DATABASE_URL": f"sqlite:///{TMPFS}/registro.db"}


@dataclass
class Figures:
    image: str
    size_bytes: int
    python: str
    debian: str
    revision: str
    starts_ms: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_us_per_request: list[float] = field(default_factory=list)
    memory_mib: list[float] = field(default_factory=list)
    errors: int = 0


@dataclass(frozen=True)
class Load:
    rps: float
    p99_ms: float
    requests: int
    errors: int


def step(message: str) -> None:
    print(f"bench-image {datetime.datetime.now():%H:%M:%S}: {message}", flush=True)


def docker(*args: str, timeout: float = 120) -> str:
    return subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, check=True, timeout=timeout
    ).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(url: str, body: dict[str, str] | None = None) -> int:
    """The response's status, 0 when nothing answers (yet)."""
    try:
        if body is None:
            return httpx.get(url, timeout=2, trust_env=False).status_code
        return httpx.post(url, json=body, timeout=2, trust_env=False).status_code
    except httpx.TransportError:
        return 0


def describe(image: str) -> Figures:
    size = int(docker("image", "inspect", "-f", "{{.Size}}", image))
    label = '{{index .Config.Labels "org.opencontainers.image.revision"}}'
    revision = docker("image", "inspect", "-f", label, image)
    python = docker("run", "--rm", "--entrypoint", "python3", image, "--version").split()[-1]
    debian = docker("run", "--rm", "--entrypoint", "cat", image, "/etc/debian_version")
    return Figures(image, size, python, debian, revision)


def start(image: str) -> tuple[str, int, float]:
    """Run the image; (container, port, ms from `docker run` to the first 200 from /livez)."""
    port = free_port()
    env = [arg for name, value in CONTAINER_ENV.items() for arg in ("-e", f"{name}={value}")]
    began = time.monotonic()
    container = docker(
        "run", "-d", "--rm", f"--cpus={CPUS}", "--tmpfs", TMPFS,
        "-p", f"127.0.0.1:{port}:{DEFAULT_PORT}", *env, image,
    )  # fmt: skip
    deadline = began + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if status(f"http://127.0.0.1:{port}/livez") == 200:
            return container, port, (time.monotonic() - began) * 1000
        time.sleep(0.01)
    logs = subprocess.run([DOCKER, "logs", container], capture_output=True, text=True).stderr
    stop(container)
    raise RuntimeError(f"{image}: no 200 from /livez within {START_TIMEOUT_S:.0f} s\n{logs}")


def stop(container: str) -> None:
    subprocess.run([DOCKER, "rm", "-f", container], capture_output=True, timeout=60)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(out: str) -> Load:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p99 and total):
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(g) for g in sockets.groups()) if sockets else 0
    return Load(float(rps.group(1)), _ms(*p99.groups()), int(total.group(1)), errors)


def wrk(url: str, seconds: int) -> Load:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    return parse_wrk(out)


# Where the engine keeps a container's CPU account: cgroup v1, then v2 (systemd, cgroupfs driver).
CPU_ACCOUNTS = (
    ("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage", 1e-9),
    ("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat", 1e-6),
    ("/sys/fs/cgroup/docker/{id}/cpu.stat", 1e-6),
)


def cpu_seconds(container: str) -> float | None:
    """CPU time the container has used so far (every process in it), None where unreadable."""
    for template, unit in CPU_ACCOUNTS:
        path = Path(template.format(id=container))
        if path.is_file():
            text = path.read_text()
            found = re.search(r"usage_usec (\d+)", text) if path.name == "cpu.stat" else None
            return int(found.group(1) if found else text.split()[0]) * unit
    return None


def memory_mib(container: str) -> float:
    usage = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", container).split("/")[0]
    found = re.fullmatch(r"([\d.]+)\s*(KiB|MiB|GiB)", usage.strip())
    if found is None:
        raise RuntimeError(f"unexpected docker stats memory: {usage!r}")
    return float(found.group(1)) * {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}[found.group(2)]


def load_run(figures: Figures, seconds: int) -> None:
    container, port, ms = start(figures.image)
    try:
        figures.starts_ms.append(ms)
        base = f"http://127.0.0.1:{port}"
        if status(f"{base}/data", {"name": "bench-image"}) not in (200, 201):
            raise RuntimeError(f"{figures.image}: POST /data did not create the record")
        if status(f"{base}/data/1") != 200:
            raise RuntimeError(f"{figures.image}: GET /data/1 is not 200")
        wrk(f"{base}/data/1", WARM_UP_SECONDS)
        cpu_before = cpu_seconds(container)
        load = wrk(f"{base}/data/1", seconds)
        cpu_after = cpu_seconds(container)
        if cpu_before is not None and cpu_after is not None and load.requests:
            figures.cpu_us_per_request.append((cpu_after - cpu_before) / load.requests * 1e6)
        figures.rps.append(load.rps)
        figures.p99_ms.append(load.p99_ms)
        figures.errors += load.errors
        figures.memory_mib.append(memory_mib(container))
    finally:
        stop(container)


def table(rows: list[Figures]) -> str:
    header = [
        "image", "Debian", "Python", "size (MB)", "start, median (ms)", "starts (ms)",
        "GET /data/1, median (req/s)", "per round (req/s)", "p99, median (ms)",
        "CPU per GET, median (µs)", "per round (µs)",
        "memory after load (MiB)", "errors",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for f in rows:
        cells = [
            f"`{f.image}`",
            f.debian,
            f.python,
            f"{f.size_bytes / 1e6:.0f}",
            f"{statistics.median(f.starts_ms):.0f}",
            ", ".join(f"{v:.0f}" for v in f.starts_ms),
            f"{statistics.median(f.rps):.0f}",
            ", ".join(f"{v:.0f}" for v in f.rps),
            f"{statistics.median(f.p99_ms):.1f}",
            f"{statistics.median(f.cpu_us_per_request):.0f}" if f.cpu_us_per_request else "n/a",
            ", ".join(f"{v:.0f}" for v in f.cpu_us_per_request),
            f"{statistics.median(f.memory_mib):.0f}",
            str(f.errors),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(rows: list[Figures], rounds: int, starts: int, seconds: int, load_before: float) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""# Service image by base image

{when}, commit `{rows[0].revision}`, `{" ".join(sys.argv)}`.

{rounds} rounds; in each, {starts} start-only runs of each image, alternating, then one load run of
each ({seconds} s of `wrk -t1 -c{CONNECTIONS}` after {WARM_UP_SECONDS} s of warm-up), whose start
is counted too. Every container has `--cpus={CPUS}`, one worker and SQLite in its tmpfs.
Machine: {os.cpu_count()} CPUs, 1-minute load average {load_before:.2f} at the start.

{table(rows)}

Size is `docker image inspect`'s (uncompressed). Start time runs from `docker run` to the first
200 from /livez (polled every 10 ms), so it includes creating the container and the migration of
the empty SQLite database. CPU per GET is the container's CPU time (its cgroup's account) during
the timed load divided by the requests served: it depends far less than requests per second on
what else the machine runs, so it is the figure to compare on a busy machine (the 1-minute load
average was {os.getloadavg()[0]:.2f} at the end).
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs=2, help="the two images, e.g. registro:TAG-bookworm ...")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--starts", type=int, default=DEFAULT_STARTS, help="start-only runs")
    parser.add_argument("--seconds", type=int, default=DEFAULT_SECONDS)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = [describe(image) for image in args.images]
    if rows[0].revision != rows[1].revision:
        print(f"bench-image: the images come from different commits: {rows}", file=sys.stderr)
        return 1
    for round_number in range(1, args.rounds + 1):
        step(f"round {round_number}/{args.rounds}: {args.starts} starts of each, alternating")
        for _ in range(args.starts):
            for figures in rows:
                container, _port, ms = start(figures.image)
                stop(container)
                figures.starts_ms.append(ms)
        for figures in rows:
            step(f"round {round_number}/{args.rounds}: load on {figures.image}")
            load_run(figures, args.seconds)
    text = report(rows, args.rounds, args.starts, args.seconds, load_before)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text)
    print(text)
    print(f"bench-image: report in {REPORT.relative_to(ROOT)}")
    return 1 if any(f.errors for f in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
