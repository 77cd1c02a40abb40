"""The drills' measurements against any deployment, in one command:

    make measure URL=https://registro.example.com API_KEY_FILE=key.txt PROMETHEUS_URL=http://127.0.0.1:9090

After a deploy, an operator runs here what the drills measure on the local stack (make e2e):
1. the smoke test, deploy/k8s/tools/smoke.py (with the key: a record created, read, deleted);
2. a short bounded load, every request recorded (tests/e2e/load.py); writes carry an
   Idempotency-Key and are retried with it, and the records they create are deleted afterwards;
3. while the load runs, the SLO's SLIs over a recent window: the expressions deploy/slo/generate.py
   generates from deploy/slo/slo.yaml, evaluated against that environment's Prometheus;
4. the canary check: the checks the AnalysisTemplate is rendered from (deploy/slo/generate.py,
   canary_checks), over the stable Service, measured once now and judged as Argo Rollouts would
   (deploy/docker/canary.py): would a canary pass or abort?
The report is the drills' (tests/e2e/report.py): resilience.json, resilience.md and the load's
timeline image, in a new folder under .work/measure/.

The key is read from a file, never from the command line, and never printed or written.
Exit status: 0 when every check held, 1 when one did not, 2 on bad arguments (nothing is sent).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import httpx
import yaml
from deploy.docker import canary as local_canary
from deploy.k8s.tools import smoke
from deploy.slo import generate

from tests.e2e import load as loadgen
from tests.e2e import report

ROOT = Path(__file__).resolve().parents[2]

DRILL = "measure"
OUT = ROOT / ".work" / "measure"
MAX_SECONDS = 600.0  # the load's bound, whatever is asked
MAX_RATE = 50.0
CONCURRENCY = 4
WRITE_ATTEMPTS = 3


class Usage(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(message)


def fail(message: str) -> NoReturn:
    print(f"measure: {message}", file=sys.stderr)
    raise SystemExit(2)


@dataclass(frozen=True)
class Target:
    url: str
    key: str
    prometheus: str
    ca: str | None
    http_url: str | None
    seconds: float
    rate: float
    out: Path
    service: str
    slo_window: str


def http_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"{what} must be an http:// or https:// URL with a host, not {value!r}")
    return value.rstrip("/")


def read_key(path: str) -> str:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        fail(f"cannot read the API key file {path!r}: {exc.strerror}")
    if len(lines) != 1 or not lines[0].strip():
        fail(f"the API key file {path!r} must hold the key on one line")
    return lines[0].strip()


def parse(argv: list[str]) -> Target:
    spec = generate.load_spec()
    parser = Usage(prog="measure", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the deployment's base URL")
    parser.add_argument("--api-key-file", required=True, help="a file holding a read,write key")
    parser.add_argument("--prometheus-url", required=True, help="its Prometheus's HTTP API")
    parser.add_argument("--ca-file", default="", help="the CA to trust (default: the system's)")
    parser.add_argument("--http-url", default="", help="plain HTTP (default: port 80 of --url)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load runs")
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
    parser.add_argument("--out", type=Path, default=OUT, help="reports go in a new folder here")
    parser.add_argument(
        "--service", default=stable_service(), help="the Service label the canary queries judge"
    )
    parser.add_argument(
        "--slo-window",
        default=generate.alert_windows(spec)[0],
        help="the SLIs' window (default: the shortest alert window)",
    )
    args = parser.parse_args(argv)
    if not args.url:
        fail("no URL: make measure URL=https://... (the deployment's base URL)")
    if not args.api_key_file:
        fail("no API key file: API_KEY_FILE=<a file holding a key from `registro keys create`>")
    if not args.prometheus_url:
        fail("no Prometheus: PROMETHEUS_URL=http://... (e.g. a kubectl port-forward)")
    if not 0 < args.seconds <= MAX_SECONDS:
        fail(f"--seconds must be above 0 and at most {MAX_SECONDS:.0f}, not {args.seconds}")
    if not 0 < args.rate <= MAX_RATE:
        fail(f"--rate must be above 0 and at most {MAX_RATE:.0f}, not {args.rate}")
    try:
        generate.seconds(args.slo_window)
    except SystemExit as exc:
        fail(f"--slo-window: {exc}")
    if args.ca_file:
        try:
            loadgen.trust(args.ca_file)
        except (OSError, ssl.SSLError) as exc:
            fail(f"cannot load the CA file {args.ca_file!r}: {exc}")
    return Target(
        url=http_url(args.url, "URL"),
        key=read_key(args.api_key_file),
        prometheus=http_url(args.prometheus_url, "PROMETHEUS_URL"),
        ca=args.ca_file or None,
        http_url=http_url(args.http_url, "HTTP_URL") if args.http_url else None,
        seconds=args.seconds,
        rate=args.rate,
        out=args.out,
        service=args.service,
        slo_window=args.slo_window,
    )


def stable_service() -> str:
    """The Service in front of the stable pods (the Rollout's stableService). Outside a canary,
    it and the canary Service select the same pods; locally only the stable one exists."""
    rollout = yaml.safe_load((ROOT / local_canary.ROLLOUT).read_text())
    return str(rollout["spec"]["strategy"]["canary"]["stableService"])


def query(target: Target, expression: str) -> float | None:
    """The single value of an instant query, or None without one (no traffic: NaN, empty; or
    Prometheus failed to answer, which the check on it reports)."""
    try:
        result = local_canary.prometheus_query(expression, target.prometheus)
    except (OSError, RuntimeError) as exc:
        print(f"measure: query failed: {exc}", file=sys.stderr)
        return None
    return result[0] if len(result) == 1 and not math.isnan(result[0]) else None


def slis(target: Target) -> dict[str, dict[str, object]]:
    """Each objective's SLI over the window: the share of good requests, against the target,
    and how fast that would spend the error budget (1: exactly over the SLO's window)."""
    spec = generate.load_spec()
    out: dict[str, dict[str, object]] = {}
    for o in spec.objectives:
        good = query(target, generate.good_ratio(spec, o, target.slo_window))
        out[o.name] = {
            f"good share over {target.slo_window}": round(good, 5) if good is not None else None,
            "target": float(o.target),
            "within target": good is not None and good >= o.target,
            "burn rate": round((1 - good) / float(o.budget), 2) if good is not None else None,
        }
    return out


def canary(target: Target) -> tuple[str, dict[str, str]]:
    """The AnalysisTemplate's Prometheus metrics, one measurement each now, and the verdict:
    `pass` when each is Successful, `abort` when one Failed, else `inconclusive` (Argo would
    pause)."""
    step = local_canary.first_canary_step(ROOT / local_canary.ROLLOUT)
    phases, shown = [], {}
    for check in local_canary.checks(step, target.service):
        try:
            result = local_canary.prometheus_query(check.query, target.prometheus)
            phase = local_canary.judge(check, result)
        except (OSError, RuntimeError) as exc:
            result, phase = [], f"Error ({exc})"
        phases.append(phase)
        values = ", ".join(f"{v:.5g}" for v in result) or "no data"
        conditions = (
            f"successCondition: {check.success_condition}; "
            f"failureCondition: {check.failure_condition}"
        )
        shown[check.name] = f"{values}: {phase} ({conditions})"
    return verdict(phases), shown


def verdict(phases: list[str]) -> str:
    if "Failed" in phases:
        return "abort"
    return "pass" if all(p == "Successful" for p in phases) else "inconclusive"


def delete_written(target: Target, results: list[loadgen.Result]) -> tuple[int, int]:
    """Delete the records the load created; return (created, deleted)."""
    ids = [r.id for r in results if r.op == "write" and r.ok and r.id is not None]
    auth = {"Authorization": f"Bearer {target.key}"}
    deleted = 0
    with httpx.Client(base_url=target.url, verify=loadgen.trust(target.ca), timeout=10) as api:
        for rid in ids:
            with contextlib.suppress(httpx.HTTPError):  # counted as not deleted
                deleted += api.delete(f"/data/{rid}", headers=auth).status_code == 200
    return len(ids), deleted


def run_smoke(target: Target) -> tuple[list[str], str | None]:
    """The smoke test's checks that held, and the first that did not (None: all held)."""
    held: list[str] = []
    try:
        held = smoke.run(
            target.url,
            key=target.key,
            verify=loadgen.trust(target.ca),
            http_url=target.http_url,
        )
    except SystemExit as exc:
        return held, str(exc)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return held, f"smoke: {type(exc).__name__}: {exc}"
    return held, None


def measure(target: Target) -> tuple[Path, list[str]]:
    """Run the four measurements and write the report; return its folder and the failed checks."""
    try:
        local_canary.prometheus_query("vector(1)", target.prometheus)
    except (OSError, RuntimeError) as exc:
        fail(f"Prometheus at {target.prometheus} does not answer a query: {exc}")
    out = target.out / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    print(f"measure: {target.url}, Prometheus {target.prometheus}, report in {out}")
    held, smoke_failed = run_smoke(target)
    with loadgen.Load(
        base_url=target.url,
        ca=target.ca,
        key=target.key,
        rate=target.rate,
        concurrency=CONCURRENCY,
        max_seconds=target.seconds + 60,  # the queries below run before it is stopped
        write_attempts=WRITE_ATTEMPTS,
        prefix=DRILL,
    ) as load:
        load.mark("load")
        load.wait(target.seconds)
        load.mark("SLI and canary queries")
        sli = slis(target)
        phase, analysis = canary(target)
        results = load.stop()
    created, deleted = delete_written(target, results)
    summary = loadgen.summary(results)
    checks = {
        "smoke test passed": smoke_failed is None,
        "no failed request in the load": summary["failed"] == 0,
        "every record the load created is deleted again": deleted == created,
        **{f"the {name} SLI query has data": v["burn rate"] is not None for name, v in sli.items()},
        "a canary judged now would pass its analysis": phase == "pass",
    }
    failed = report.write(
        DRILL,
        f"Measurements of {target.url}",
        f"`make measure` (tests/e2e/measure.py) against {target.url} and the Prometheus at "
        f"{target.prometheus}: the smoke test, then {target.seconds:.0f} s of load ({CONCURRENCY} "
        f"clients, {target.rate:.0f} requests/s of reads, writes and /version; writes retried "
        f"with their Idempotency-Key up to {WRITE_ATTEMPTS} attempts), and at its end the SLO's "
        f"SLIs over {target.slo_window} and one measurement of each canary analysis metric, "
        f"for the Service {target.service}.",
        {
            "smoke": f"{len(held)} checks held" + (f"; {smoke_failed}" if smoke_failed else ""),
            "load": summary,
            "writes": loadgen.retries([r for r in results if r.op == "write"]),
            "records created and deleted again": f"{deleted} of {created}",
            "SLIs": sli,
            "canary verdict": phase,
            "canary metrics (value: phase (conditions))": analysis,
        },
        checks,
        load=load,
        out=out,
        intro=f"`make measure` against {target.url}: the drills' measurements of a deployment.",
    )
    return out, failed


def main(argv: list[str] | None = None) -> int:
    target = parse(sys.argv[1:] if argv is None else argv)
    out, failed = measure(target)
    print(f"measure: report {out / report.PAGE_NAME}")
    if failed:
        print(f"measure: FAILED {', '.join(failed)}", file=sys.stderr)
        return 1
    print("measure: every check held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
