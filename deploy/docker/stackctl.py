"""Release operations on the local stack: rolling update and canary, driven like production.

    python -m deploy.docker.stackctl rollout TAG
    python -m deploy.docker.stackctl canary TAG [--fault-error-rate 0.2]

Run from the repository root (the Makefile's rollout-local / canary-local do). Progress goes to
stderr; each step is also one JSON line on stdout so that the drills can check what happened.

The canary follows the first step of the Kubernetes Rollout (deploy/k8s/base/rollout.yaml):
its setWeight (HAProxy weights), its pause, then its analysis: the AnalysisTemplate Kubernetes uses
(deploy/k8s/base/analysis-template.yaml), whose queries, with the step's args substituted, are
evaluated against the local Prometheus; their success/failure conditions decide, with Argo
Rollouts' counting rules (count, failureLimit, inconclusiveLimit, consecutiveErrorLimit).
Locally there is one step: a successful analysis promotes (rolling update of the stable
replicas), anything else aborts. (Argo pauses on Inconclusive for a person; here that aborts.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STACK = ["deploy/docker/stack.sh"]
PROJECT = "registro"
STATE_ENV = Path(".work/stack/stack.env")
ANALYSIS_TEMPLATE = Path("deploy/k8s/base/analysis-template.yaml")
ROLLOUT = Path("deploy/k8s/base/rollout.yaml")
PROMETHEUS = "http://127.0.0.1:9090"
BACKEND = "registro"
STABLE = ("app1", "app2", "app3")
CANARY_SERVICE, CANARY_SERVER = "app-canary", "canary"

# HAProxy `show servers state`: operational state 2 is UP; admin state bits 0x01/0x20 are
# maintenance, 0x08 drain.
SRV_RUNNING = 2


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def event(kind: str, **fields: Any) -> None:
    print(json.dumps({"event": kind, "t": time.time(), **fields}), flush=True)


def wait_for(what: str, predicate: Any, timeout: float, interval: float = 0.2) -> float:
    """Poll until predicate() is true; return the seconds it took, or raise TimeoutError."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


# --- the stack: compose, containers, HAProxy's runtime API -----------------------------------


def compose(*args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    result = subprocess.run(
        [*STACK, "compose", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"docker-compose {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def container(service: str) -> str | None:
    """The service's newest container (running or not), by compose's labels."""
    ids = docker(
        "ps",
        "-aq",
        "--filter",
        f"label=com.docker.compose.project={PROJECT}",
        "--filter",
        f"label=com.docker.compose.service={service}",
    ).split()
    return ids[0] if ids else None


def docker(*args: str, check: bool = True, timeout: float = 60) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def run_in(service: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`docker exec` of a command in the service's container; the caller judges the result."""
    cid = container(service)
    if cid is None:
        raise RuntimeError(f"{service} is not running")
    return subprocess.run(
        ["docker", "exec", cid, *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def container_state(service: str) -> str:
    cid = container(service)
    if cid is None:
        return "missing"
    return (
        docker(
            "inspect",
            "-f",
            "{{if .State.Running}}{{if .State.Health}}{{.State.Health.Status}}"
            "{{else}}running{{end}}{{else}}exited{{end}}",
            cid,
            check=False,
        ).strip()
        or "missing"
    )


def haproxy(command: str) -> str:
    cid = container("haproxy")
    if cid is None:
        raise RuntimeError("the haproxy container is not running")
    result = subprocess.run(
        ["docker", "exec", "-i", cid, "socat", "stdio", "unix-connect:/tmp/haproxy-admin.sock"],
        input=command + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return result.stdout


@dataclass
class Server:
    name: str
    op_state: int
    admin_state: int
    weight: int

    @property
    def up(self) -> bool:
        return self.op_state == SRV_RUNNING

    @property
    def in_pool(self) -> bool:
        """Receives new requests: up and neither in maintenance nor draining."""
        return self.up and self.admin_state == 0 and self.weight > 0


def servers() -> dict[str, Server]:
    rows = {}
    for line in haproxy(f"show servers state {BACKEND}").splitlines():
        parts = line.split()
        if len(parts) < 12 or parts[0].startswith("#") or parts[1] != BACKEND:
            continue
        rows[parts[3]] = Server(parts[3], int(parts[5]), int(parts[6]), int(parts[7]))
    return rows


def stat(server: str) -> dict[str, str]:
    """HAProxy's `show stat` row for one server (scur, check_status, check_code, ...)."""
    lines = haproxy("show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == BACKEND and row.get("svname") == server:
            return row
    raise RuntimeError(f"no server {server} in HAProxy's stats")


def sessions(server: str) -> int:
    """Requests HAProxy currently has open on this server."""
    return int(stat(server)["scur"] or 0)


def set_state(server: str, state: str) -> None:
    out = haproxy(f"set server {BACKEND}/{server} state {state}").strip()
    if out:
        raise RuntimeError(f"set server {server} state {state}: {out}")


def deployed_tag() -> str:
    for line in STATE_ENV.read_text().splitlines():
        if line.startswith("REGISTRO_TAG="):
            return line.split("=", 1)[1]
    raise RuntimeError(f"no REGISTRO_TAG in {STATE_ENV}: is the stack up (make stack-up)?")


def record_deployed_tag(tag: str) -> None:
    lines = [ln for ln in STATE_ENV.read_text().splitlines() if not ln.startswith("REGISTRO_TAG=")]
    STATE_ENV.write_text("\n".join([*lines, f"REGISTRO_TAG={tag}"]) + "\n")


def require_image(tag: str) -> None:
    if (
        subprocess.run(
            ["docker", "image", "inspect", f"registro:{tag}"], capture_output=True, check=False
        ).returncode
        != 0
    ):
        raise SystemExit(f"stackctl: no image registro:{tag} (make image TAG={tag})")


# --- replacing one replica --------------------------------------------------------------------


def drain_and_stop(service: str, server: str) -> None:
    """Take a replica out the way Kubernetes does, with the load balancer told first:
    out of HAProxy's pool (no new requests), in-flight requests finished, then SIGTERM; the
    service answers /readyz 503 while it drains and exits once its own requests are done."""
    set_state(server, "drain")
    event("drain", server=server)
    took = wait_for(f"{server}: in-flight requests to finish", lambda: sessions(server) == 0, 30)
    event("drained", server=server, seconds=round(took, 2))
    cid = container(service)
    if cid is None:
        return
    docker("kill", "--signal", "TERM", cid)
    event("sigterm", server=server)
    # The load balancer sees the draining replica's /readyz turn 503 (check status 503).
    saw_503 = _wait_quiet(lambda: stat(server)["check_code"] == "503", 15)
    event("readyz-503", server=server, seen=saw_503)
    wait_for(f"{service}: exit after SIGTERM", lambda: not _running(cid), 60)
    event(
        "stopped", server=server, exit_code=int(docker("inspect", "-f", "{{.State.ExitCode}}", cid))
    )


def _running(cid: str) -> bool:
    return docker("inspect", "-f", "{{.State.Running}}", cid, check=False).strip() == "true"


def _wait_quiet(predicate: Any, timeout: float) -> bool:
    try:
        wait_for("condition", predicate, timeout)
    except TimeoutError:
        return False
    return True


def start_and_enable(service: str, server: str, env: dict[str, str]) -> None:
    compose("up", "-d", "--no-deps", "--no-build", service, env=env)
    took = wait_for(f"{service}: healthy", lambda: container_state(service) == "healthy", 120, 1)
    set_state(server, "ready")
    took += wait_for(f"{server}: up in HAProxy", lambda: servers()[server].in_pool, 30)
    event("ready", server=server, seconds=round(took, 2))


def migrate(tag: str) -> None:
    """The release's migrations, before any replica runs it, as the Kubernetes Job does: the
    replicas still on the previous release keep serving on the newer schema (expand, contract).
    A failure stops the release with nothing replaced."""
    log(f"migrate: registro migrate with registro:{tag}")
    out = compose("run", "--rm", "--no-deps", "-T", "migrate", env={"REGISTRO_TAG": tag})
    event("migrated", tag=tag, output=out.strip().splitlines()[-1:])


def rollout(tag: str) -> None:
    require_image(tag)
    log(f"rollout: registro:{tag} on {', '.join(STABLE)}, one at a time")
    event("rollout-start", tag=tag, previous=deployed_tag())
    migrate(tag)
    for service in STABLE:
        others = [s for s in STABLE if s != service]
        if not all(servers()[s].in_pool for s in others):
            raise SystemExit(
                f"rollout: refusing to take {service} out while {others} are not all up"
            )
        log(f"rollout: {service}: drain, stop, replace")
        drain_and_stop(service, service)
        start_and_enable(service, service, {"REGISTRO_TAG": tag})
        log(f"rollout: {service} now runs registro:{tag}")
    record_deployed_tag(tag)
    event("rollout-done", tag=tag)


# --- the canary analysis: Argo Rollouts' AnalysisTemplate, evaluated locally ------------------


class ExprError(ValueError):
    """The condition uses something this evaluator does not implement: fail, never guess."""


_TOKEN = re.compile(
    r"\s*(?:(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|([A-Za-z_]\w*)|(\|\||&&|==|!=|<=|>=|[<>()\[\]]))"
)
_FUNCTIONS = {"len": len, "isNaN": lambda x: isinstance(x, float) and math.isnan(x)}
_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ExprError(f"unsupported syntax at {text[pos:]!r} in {text!r}")
        tokens.append(next(g for g in match.groups() if g is not None))
        pos = match.end()
    return tokens


def parse_condition(text: str) -> Any:
    """Parse the subset of expr-lang the template uses into a tree of tuples:
    ||, &&, comparisons, numbers, `result`, result[N], len(...), isNaN(...), parentheses."""
    tokens = _tokens(text)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(expected: str | None = None) -> str:
        nonlocal pos
        token = peek()
        if token is None or (expected is not None and token != expected):
            raise ExprError(f"expected {expected or 'more'} in {text!r}, got {token!r}")
        pos += 1
        return token

    def disjunction() -> Any:
        node = conjunction()
        while peek() == "||":
            take()
            node = ("or", node, conjunction())
        return node

    def conjunction() -> Any:
        node = comparison()
        while peek() == "&&":
            take()
            node = ("and", node, comparison())
        return node

    def comparison() -> Any:
        node = postfix()
        if peek() in _COMPARE:
            node = ("cmp", take(), node, postfix())
        return node

    def postfix() -> Any:
        node = primary()
        while peek() == "[":
            take("[")
            node = ("index", node, disjunction())
            take("]")
        return node

    def primary() -> Any:
        token = take()
        if token == "(":  # noqa: S105 (an expression token, not a password)
            node = disjunction()
            take(")")
            return node
        if re.fullmatch(r"\d.*", token):
            return ("num", float(token))
        if token == "result":  # noqa: S105
            return ("result",)
        if token in _FUNCTIONS and peek() == "(":
            take("(")
            arg = disjunction()
            take(")")
            return ("call", token, arg)
        raise ExprError(f"unsupported name {token!r} in {text!r} (only result, len, isNaN)")

    tree = disjunction()
    if peek() is not None:
        raise ExprError(f"unexpected {peek()!r} in {text!r}")
    return tree


def evaluate(tree: Any, result: list[float]) -> Any:
    kind = tree[0]
    if kind == "or":
        return bool(evaluate(tree[1], result)) or bool(evaluate(tree[2], result))
    if kind == "and":
        return bool(evaluate(tree[1], result)) and bool(evaluate(tree[2], result))
    if kind == "cmp":
        return _COMPARE[tree[1]](evaluate(tree[2], result), evaluate(tree[3], result))
    if kind == "num":
        return tree[1]
    if kind == "result":
        return result
    if kind == "index":
        return evaluate(tree[1], result)[int(evaluate(tree[2], result))]
    if kind == "call":
        return _FUNCTIONS[tree[1]](evaluate(tree[2], result))
    raise ExprError(f"unknown node {kind}")


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", str(text))
    if not match:
        raise ExprError(f"unsupported duration {text!r}")
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@dataclass
class Metric:
    name: str
    query: str
    success: Any
    failure: Any
    interval: float
    count: int
    failure_limit: int
    inconclusive_limit: int
    consecutive_error_limit: int
    conditions: dict[str, str]  # the template's successCondition / failureCondition, as written
    measurements: list[str] = field(default_factory=list)
    consecutive_errors: int = 0

    def tally(self, phase: str) -> int:
        return self.measurements.count(phase)

    @property
    def phase(self) -> str:
        if self.tally("Failed") > self.failure_limit:
            return "Failed"
        if self.tally("Inconclusive") > self.inconclusive_limit:
            return "Inconclusive"
        if self.consecutive_errors > self.consecutive_error_limit:
            return "Error"
        if len(self.measurements) >= self.count:
            return "Successful"
        return "Running"


SUPPORTED_METRIC_KEYS = {
    "name",
    "interval",
    "count",
    "failureLimit",
    "inconclusiveLimit",
    "consecutiveErrorLimit",
    "successCondition",
    "failureCondition",
    "provider",
}


def load_analysis(path: Path, name: str, args: dict[str, str]) -> list[Metric]:
    template = yaml.safe_load(path.read_text())
    if template.get("kind") != "AnalysisTemplate" or template["metadata"]["name"] != name:
        raise ExprError(f"{path}: not the AnalysisTemplate {name}")
    declared = {a["name"]: a.get("value") for a in template["spec"].get("args", [])}
    values = {**{k: v for k, v in declared.items() if v is not None}, **args}
    missing = [name for name in declared if name not in values]
    if missing:
        raise ExprError(f"{path}: no value for args {missing}")

    def substitute(text: str) -> str:
        out = re.sub(r"\{\{\s*args\.([\w-]+)\s*\}\}", lambda m: values[m.group(1)], text)
        if "{{" in out:
            raise ExprError(f"unsupported template expression in {text!r}")
        return out

    metrics = []
    for spec in template["spec"]["metrics"]:
        unknown = set(spec) - SUPPORTED_METRIC_KEYS
        if unknown:
            raise ExprError(f"metric {spec['name']}: unsupported fields {sorted(unknown)}")
        provider = spec["provider"]
        if set(provider) == {"cloudWatch"}:
            continue  # the ALB's own errors, in AWS CloudWatch: the local stack has no ALB
        if set(provider) != {"prometheus"}:
            raise ExprError(f"metric {spec['name']}: only the prometheus provider is supported")
        metrics.append(
            Metric(
                name=spec["name"],
                query=substitute(provider["prometheus"]["query"]),
                success=parse_condition(spec["successCondition"])
                if "successCondition" in spec
                else None,
                failure=parse_condition(spec["failureCondition"])
                if "failureCondition" in spec
                else None,
                interval=parse_duration(spec.get("interval", "0s")),
                count=int(spec.get("count", 1)),
                failure_limit=int(spec.get("failureLimit", 0)),
                inconclusive_limit=int(spec.get("inconclusiveLimit", 0)),
                consecutive_error_limit=int(spec.get("consecutiveErrorLimit", 4)),
                conditions={
                    k: spec[k] for k in ("successCondition", "failureCondition") if k in spec
                },
            )
        )
    return metrics


def prometheus_query(query: str, base: str = PROMETHEUS) -> list[float]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (local Prometheus)
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"prometheus: {body}")
    data = body["data"]
    if data["resultType"] == "vector":
        return [float(sample["value"][1]) for sample in data["result"]]
    if data["resultType"] == "scalar":
        return [float(data["result"][1])]
    raise ExprError(f"unsupported result type {data['resultType']}")


def judge(metric: Metric, result: list[float]) -> str:
    """A measurement's phase, decided as Argo Rollouts does: a true failureCondition fails it;
    with both conditions, neither true is inconclusive; a lone condition decides both ways.
    Raises IndexError or TypeError when a condition cannot be evaluated on `result`."""
    succeeded = bool(evaluate(metric.success, result)) if metric.success is not None else None
    failed = bool(evaluate(metric.failure, result)) if metric.failure is not None else None
    if succeeded is None and failed is None:
        succeeded, failed = True, False
    elif failed is None:
        failed = not succeeded
    elif succeeded is None:
        succeeded = not failed
    return "Failed" if failed else ("Successful" if succeeded else "Inconclusive")


def measure(metric: Metric) -> str:
    """One measurement against the local Prometheus, counted in the metric's tally."""
    try:
        result = prometheus_query(metric.query)
        phase = judge(metric, result)
    except (OSError, RuntimeError, IndexError, TypeError) as exc:
        metric.consecutive_errors += 1
        event("measurement", metric=metric.name, phase="Error", error=str(exc))
        log(f"analysis: {metric.name}: error {exc}")
        return "Error"
    metric.consecutive_errors = 0
    metric.measurements.append(phase)
    event("measurement", metric=metric.name, phase=phase, result=[str(v) for v in result])
    log(f"analysis: {metric.name} = {result} -> {phase}")
    return phase


def run_analysis(metrics: list[Metric]) -> str:
    """Measure each metric every interval until every one is done; the first metric that fails
    (or errors, or is inconclusive) ends the analysis with that phase."""
    due = {m.name: time.monotonic() for m in metrics}
    deadline = (
        time.monotonic() + max(m.interval * (m.count + m.failure_limit + 2) for m in metrics) + 60
    )
    while True:
        for metric in metrics:
            if metric.phase == "Running" and time.monotonic() >= due[metric.name]:
                measure(metric)
                due[metric.name] = time.monotonic() + metric.interval
        phases = {m.name: m.phase for m in metrics}
        for bad in ("Failed", "Error", "Inconclusive"):
            if bad in phases.values():
                return bad
        if all(p == "Successful" for p in phases.values()):
            return "Successful"
        if time.monotonic() > deadline:
            return "Error"
        time.sleep(0.5)


@dataclass
class CanaryStep:
    weight: int  # percent of traffic
    pause: float  # seconds before the analysis
    template: str
    args: dict[str, str]


def first_canary_step(path: Path = ROLLOUT) -> CanaryStep:
    """The Rollout's steps up to its first analysis: setWeight, pause(s), analysis."""
    rollout = yaml.safe_load(path.read_text())
    weight, pause = None, 0.0
    for step in rollout["spec"]["strategy"]["canary"]["steps"]:
        ((kind, value),) = step.items()
        if kind == "setWeight":
            weight = int(value)
        elif kind == "pause":
            if "duration" not in value:
                raise ExprError(f"{path}: an indefinite pause before the first analysis")
            pause += parse_duration(value["duration"])
        elif kind == "analysis":
            if weight is None or len(value["templates"]) != 1:
                raise ExprError(f"{path}: expected setWeight, then one analysis template")
            args = {a["name"]: a["value"] for a in value.get("args", [])}
            return CanaryStep(weight, pause, value["templates"][0]["templateName"], args)
        else:
            raise ExprError(f"{path}: unsupported step {kind!r}")
    raise ExprError(f"{path}: no analysis step")


def canary(tag: str, fault_error_rate: float) -> int:
    require_image(tag)
    stable = deployed_tag()
    step = first_canary_step()
    metrics = load_analysis(ANALYSIS_TEMPLATE, step.template, step.args)
    env = {"CANARY_TAG": tag, "CANARY_FAULT_ERROR_RATE": str(fault_error_rate)}
    log(
        f"canary: registro:{tag} beside stable registro:{stable}, "
        f"fault error rate {fault_error_rate}"
    )
    event("canary-start", tag=tag, stable=stable, fault_error_rate=fault_error_rate)
    migrate(tag)
    try:
        # setWeight: the canary's share beside the stable replicas, as HAProxy weighs them.
        pool = servers()
        stable_weight = sum(pool[s].weight for s in STABLE)
        weight = round(stable_weight * step.weight / (100 - step.weight))
        start_and_enable(CANARY_SERVICE, CANARY_SERVER, env)
        out = haproxy(f"set weight {BACKEND}/{CANARY_SERVER} {weight}").strip()
        if out:
            raise RuntimeError(f"set weight: {out}")
        weights = {name: s.weight for name, s in servers().items() if s.in_pool}
        share = weights.get(CANARY_SERVER, 0) / sum(weights.values())
        event("canary-weight", share=round(share, 3))
        log(
            f"canary: receiving {share:.0%} of requests (setWeight {step.weight}); "
            f"pause {step.pause:.0f} s, then analysis {[m.name for m in metrics]}"
        )
        time.sleep(step.pause)
        event("analysis-start")
        phase = run_analysis(metrics)
    except BaseException:
        _remove_canary(env, abort=True)
        raise
    event("analysis", phase=phase, measurements={m.name: m.measurements for m in metrics})
    if phase == "Successful":
        log("canary: analysis successful: promoting")
        rollout(tag)
        _remove_canary(env, abort=False)
        event("canary-promoted", tag=tag)
        log(f"canary: promoted, every replica runs registro:{tag}")
        return 0
    log(f"canary: analysis {phase}: aborting, traffic back to registro:{stable}")
    _remove_canary(env, abort=True)
    event("canary-aborted", tag=tag, phase=phase)
    return 1


def _remove_canary(env: dict[str, str], abort: bool) -> None:
    # Aborting takes the canary out at once (maintenance); after a promotion it drains first.
    set_state(CANARY_SERVER, "maint" if abort else "drain")
    if not abort:
        wait_for("canary: in-flight requests to finish", lambda: sessions(CANARY_SERVER) == 0, 30)
    compose("rm", "--stop", "--force", CANARY_SERVICE, env=env)
    event("canary-removed", abort=abort)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("rollout").add_argument("tag")
    canary_args = commands.add_parser("canary")
    canary_args.add_argument("tag")
    canary_args.add_argument("--fault-error-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.command == "rollout":
        rollout(args.tag)
        return 0
    return canary(args.tag, args.fault_error_rate)


if __name__ == "__main__":
    sys.exit(main())
