"""Write the facts of deploy/facts/facts.yaml into every file that states them, or check them.

Each place is a file and a template: the file's own text around the fact, with `{name}` where
the fact's value stands. The file stays hand-written and valid for its own tools; only the values
in those spots are rewritten. A template found nowhere is an error (the file changed shape: fix
the place here), so a fact never silently stops being kept.

Usage: python -m deploy.facts.generate [--root DIR] [--spec FILE]   write the files under DIR
       python -m deploy.facts.generate --check    exit 1, naming the files, when one differs
       (either: exit 2 when the spec breaks a rule or a place is not found)
       python -m deploy.facts.generate --list     the files that state a fact
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy import generated

REPO = Path(__file__).resolve().parents[2]
SPEC = Path("deploy/facts/facts.yaml")


class FactsError(Exception):
    """The spec breaks a rule, or a place is not found in its file."""


@dataclass(frozen=True)
class Place:
    path: str
    template: str  # the file's text, `{fact}` where the value stands


def load_facts(path: Path) -> dict[str, int | str]:
    """The spec's values, flattened (`shutdown.drain_seconds` -> `drain_seconds`), with the values
    derived from them; raises FactsError when a rule does not hold."""
    raw: dict[str, dict[str, Any]] = yaml.safe_load(path.read_text())
    facts: dict[str, int | str] = {}
    for section in raw.values():
        for name, value in section.items():
            if name in facts or not isinstance(value, int | str) or isinstance(value, bool):
                raise FactsError(f"{name}: a fact is one int or string, named once")
            facts[name] = value
    shutdown = raw["shutdown"]
    if not all(isinstance(v, int) and v >= 0 for v in shutdown.values()):
        raise FactsError("shutdown: every value is a whole number of seconds, at least 0")
    facts.update(derived(shutdown))
    facts["ruff_target"] = "py" + str(facts["oldest_python"]).replace(".", "")
    return facts


def fact(name: str) -> int | str:
    """One fact's value as the spec states (or derives) it, for code that needs it at run time
    rather than a copy rendered into a file (the drills, tests/e2e)."""
    return load_facts(REPO / SPEC)[name]


def derived(s: dict[str, int]) -> dict[str, int]:
    """The shutdown timings that follow from the others (docs/delivery.md's timeline).

    A pod told to go: preStop sleeps while the ALB deregisters it, then the service drains and
    finishes its requests in flight. The ALB keeps connections open through all of that (its
    deregistration delay), or it cuts a request the pod would have finished; the kubelet waits a
    margin longer before SIGKILL. Compose has no load balancer to wait for: drain, in-flight, a
    margin. (ELB's deregistration delay: https://docs.aws.amazon.com/elasticloadbalancing/latest/
    application/load-balancer-target-groups.html#deregistration-delay; the preStop sleep before
    it takes effect: https://aws.github.io/aws-eks-best-practices/networking/loadbalancing/
    loadbalancing/.)"""
    if s["pre_stop_seconds"] < s["deregistration_propagation_seconds"]:
        raise FactsError(
            "shutdown: pre_stop_seconds must be at least deregistration_propagation_seconds,"
            " or the ALB still sends new requests to a pod that has stopped accepting them"
        )
    pod_work = s["pre_stop_seconds"] + s["drain_seconds"] + s["in_flight_seconds"]
    return {
        "alb_deregistration_delay_seconds": pod_work,
        "pod_grace_seconds": pod_work + s["kubelet_margin_seconds"],
        "compose_stop_grace_seconds": (
            s["drain_seconds"] + s["in_flight_seconds"] + s["compose_margin_seconds"]
        ),
    }


def places() -> list[Place]:
    def at(path: str, *templates: str) -> list[Place]:
        return [Place(path, t) for t in templates]

    prometheus = "deploy/docker/prometheus"
    rollout = "deploy/k8s/base/rollout.yaml"
    return [
        # the service itself (it never imports deploy/: these lines are its copy)
        *at(
            "src/registro/settings.py",
            "DEFAULT_PORT = {port}\n",
            "DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = {in_flight_seconds}  #",
            "drain_seconds: float = Field(default={drain_seconds}.0,",
        ),
        *at(
            ".env.example",
            "# REGISTRO_PORT={port}\n",
            "# REGISTRO_DRAIN_SECONDS={drain_seconds}\n",
            "# REGISTRO_SHUTDOWN_TIMEOUT_SECONDS={in_flight_seconds}\n",
        ),
        *at("deploy/docker/registro/Dockerfile", "REGISTRO_PORT={port}\n", "EXPOSE {port}\n"),
        *at(
            "Makefile",
            "## run the service on 127.0.0.1:{port} ",
            "IMAGE_MAX_MB := {max_megabytes}\n",
            "K8S_VERSION := {minor}\n",
            "HELM_VERSION := {helm}\n",
        ),
        *at("docs/local-stack.md", "fails above {max_megabytes} MB"),
        *at(
            "docs/configuration.md",
            "| `REGISTRO_PORT` | `{port}` |",
            "`REGISTRO_PORT={port}`",
            "docker run --rm -p 127.0.0.1:{port}:{port} ",
        ),
        # the oldest Python, where it is stated as a requirement
        *at(
            "pyproject.toml",
            'requires-python = ">={oldest_python}"\n',
            'target-version = "{ruff_target}"\n',
            'python_version = "{oldest_python}"\n',
        ),
        *at(
            "Makefile",
            "# Any CPython from {oldest_python} on ",
            "every Python from {oldest_python} on.",
            "LOCK_OLDEST_PYTHON := {oldest_python}\n",
        ),
        *at("tools/tools.txt", "| {oldest_python} | python3-venv |"),
        *at(".github/workflows/ci.yml", 'python: ["{oldest_python}", '),
        *(
            Place(f".github/workflows/{name}.yml", 'python-version: "{oldest_python}"\n')
            for name in ("ci", "deploy", "infrastructure", "rollback")
        ),
        *at("docs/architecture.md", "every platform and Python from {oldest_python} on"),
        *at("README.md", "You need Python {oldest_python} or newer"),
        *at("docs/aws.md", "| Python | {oldest_python} or newer |"),
        *at("docs/operator-toolchain.md", "| Python | {oldest_python} or newer |"),
        # the local stack
        *at(
            "compose.yaml",
            "u.urlopen('http://127.0.0.1:{port}/readyz'",
            "(deploy/facts/facts.yaml).\n  stop_grace_period: {compose_stop_grace_seconds}s\n",
        ),
        *at(
            "deploy/docker/haproxy/haproxy.cfg",
            "server app1 app1:{port}\n",
            "server app2 app2:{port}\n",
            "server app3 app3:{port}\n",
            "server canary app-canary:{port} ",
        ),
        *at(
            f"{prometheus}/prometheus.yml",
            "scrape_interval: {scrape_interval_seconds}s\n",
            "targets: [app1:{port}, app2:{port}, app3:{port}]",
            "names: [app-canary]\n        type: A\n        port: {port}\n",
        ),
        *at(
            f"{prometheus}/alerts.test.yml",
            'instance="app1:{port}"',
            'instance="app2:{port}"',
            'instance: "app2:{port}"',
            "target app2:{port} is down",
        ),
        *at(
            f"{prometheus}/slo.test.yml",
            'instance="app1:{port}"',
            'instance="app2:{port}"',
            'instance="10.0.1.5:{port}"',
        ),
        # traces: where they are received, and the share sampled
        *at(
            "compose.yaml",
            "OTEL_EXPORTER_OTLP_ENDPOINT: http://traces:{otlp_port}\n",
            'OTEL_TRACES_SAMPLER_ARG: "{sample_ratio}"\n',
            "otlp_receiver.py:ro]\n    ports: [127.0.0.1:{otlp_port}:{otlp_port}]",
            "u.urlopen('http://127.0.0.1:{otlp_port}/healthz'",
        ),
        *at(
            "deploy/docker/otlp_receiver.py",
            "otlp_receiver.py [--port {otlp_port}]",
            'parser.add_argument("--port", type=int, default={otlp_port})',
        ),
        *at(
            "deploy/k8s/base/config.env",
            "OTEL_EXPORTER_OTLP_ENDPOINT=http://cloudwatch-agent.amazon-cloudwatch:{otlp_port}\n",
            "OTEL_TRACES_SAMPLER_ARG={sample_ratio}\n",
        ),
        *at(
            "deploy/k8s/base/network-policy.yaml",
            "component: amazon-cloudwatch-agent\n      ports:\n        - protocol: TCP\n"
            "          port: {otlp_port}\n",
        ),
        *at("deploy/aws/templates/cluster.yaml", '{"http_endpoint": "0.0.0.0:{otlp_port}"}'),
        *at("benchmarks/tracing.py", 'PRODUCTION_RATIO = "{sample_ratio}"'),
        # the clusters
        *at(
            "deploy/k8s/base/config.env",
            "REGISTRO_PORT={port}\n",
            "REGISTRO_DRAIN_SECONDS={drain_seconds}\n",
        ),
        *at(
            rollout,
            "containerPort: {port}\n",
            "terminationGracePeriodSeconds: {pod_grace_seconds}\n",
            "preStop:\n              sleep:\n                seconds: {pre_stop_seconds}\n",
            "GRACEFUL_SHUTDOWN_SECONDS, {in_flight_seconds})",
        ),
        *at(
            "deploy/k8s/base/ingress.yaml",
            "deregistration_delay.timeout_seconds={alb_deregistration_delay_seconds}\n",
        ),
        *at(
            "deploy/k8s/platform/values/prometheus.yaml",
            "scrape_interval: {scrape_interval_seconds}s\n",
        ),
        *at(
            "deploy/k8s/base/namespace.yaml",
            "kind: Namespace\nmetadata:\n  name: {namespace}\n",
            "enforce-version: v{minor} ",
        ),
        *at("deploy/k8s/base/kustomization.yaml", "kind: Kustomization\nnamespace: {namespace}\n"),
        *at(
            "deploy/k8s/platform/manifests/deployer-rbac.yaml",
            "# in namespace {namespace}, and nothing",
            "name: registro-deployer\n  namespace: {namespace}\n",
        ),
        *at("deploy/k8s/release.sh", "\nnamespace={namespace}\n"),
        *at(
            "deploy/aws/teardown.sh",
            "$kubectl -n {namespace} delete ingress ",
            "$kubectl -n {namespace} wait --for=delete ingress ",
        ),
        *at(
            "deploy/k8s/platform/manifests/cluster-autoscaler.yaml",
            "autoscaling/cluster-autoscaler:v{minor}.",
        ),
        *at(
            "deploy/aws/environments/qa.json",
            '"KubernetesVersion": "{minor}"',
            '"ServiceNamespace": "{namespace}"',
        ),
        *at(
            "deploy/aws/environments/prod.json",
            '"KubernetesVersion": "{minor}"',
            '"ServiceNamespace": "{namespace}"',
        ),
        *at(
            "tools/pins.txt",
            "helm {helm}, all four",
            "helm     linux   amd64  {helm}  ",
            "helm     linux   arm64  {helm}  ",
            "helm     darwin  amd64  {helm}  ",
            "helm     darwin  arm64  {helm}  ",
            "get.helm.sh/helm-v{helm}-",
            "kubectl {kubectl} linux/amd64:",
            "kubectl  linux   amd64  {kubectl}  ",
            "dl.k8s.io/release/v{kubectl}/bin/linux/amd64/kubectl",
        ),
        *at("docs/operator-toolchain.md", "x86_64 kubectl {kubectl} from"),
        *at("docs/aws.md", "| helm | {helm} |", "cluster's Kubernetes {minor} ("),
        *at("docs/operator-toolchain.md", "clusters' Kubernetes {minor} ("),
    ]


HOLE = re.compile(r"\{(\w+)\}")
# What a value may look like in a file, by the kind of the fact's own value: a whole number, a
# version, a name (Kubernetes's DNS label).
KINDS = {"number": r"\d+", "version": r"\d+(?:\.\d+)+", "name": r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"}


def pattern(template: str, facts: dict[str, int | str]) -> re.Pattern[str]:
    """The template as a regex: its text literal, each `{fact}` a group matching any value of
    the fact's kind (KINDS)."""
    parts: list[str] = []
    last = 0
    for hole in HOLE.finditer(template):
        name = hole.group(1)
        if name not in facts:
            raise FactsError(f"no fact {name!r} (template {template!r})")
        kind = next(k for k in KINDS.values() if re.fullmatch(k, str(facts[name])))
        parts += [re.escape(template[last : hole.start()]), f"({kind})"]
        last = hole.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))


def render(text: str, template: str, facts: dict[str, int | str], where: str) -> str:
    """`text` with the values at every match of `template` set from `facts`."""
    names = HOLE.findall(template)
    regex = pattern(template, facts)

    def put(match: re.Match[str]) -> str:
        out, last = [], match.start()
        for i, name in enumerate(names, start=1):
            out += [text[last : match.start(i)], str(facts[name])]
            last = match.end(i)
        return "".join([*out, text[last : match.end()]])

    rendered, found = regex.subn(put, text)
    if not found:
        raise FactsError(f"{where}: {template!r} not found (the file changed: update the place)")
    return rendered


def outputs(root: Path, facts: dict[str, int | str]) -> tuple[dict[str, str], dict[str, str]]:
    """Each file that states a fact: as it should read, and as it reads now (read once)."""
    current: dict[str, str] = {}
    files: dict[str, str] = {}
    for place in places():
        if place.path not in current:
            if not (root / place.path).is_file():
                raise FactsError(f"{place.path}: no such file (it moved: update the place)")
            current[place.path] = (root / place.path).read_text()
        text = files.get(place.path, current[place.path])
        files[place.path] = render(text, place.template, facts, place.path)
    return files, current


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO)
    parser.add_argument("--spec", type=Path)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(sorted({p.path for p in places()})))
        return 0
    try:
        files, current = outputs(args.root, load_facts(args.spec or args.root / SPEC))
    except FactsError as error:
        print(f"facts: {error}", file=sys.stderr)
        return 2
    return generated.write_or_check("facts", str(SPEC), args.root, files, args.check, current)


if __name__ == "__main__":
    sys.exit(main())
