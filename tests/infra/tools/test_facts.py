"""deploy/facts/generate.py: the facts several files state, written from one spec and checked.

`--check` (make facts-check, in make verify-local) fails when a file drifts from the spec; the
shutdown timings derived from the spec keep their rules: the ALB holds a leaving pod's
connections through its preStop, drain and in-flight requests (docs/delivery.md), the kubelet
waits longer than that before SIGKILL, and compose waits through the drain and in-flight
requests. The service's own constants are among the places written, so the rules hold against
the service as it runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy.facts import generate as generate_module

from registro.server import GRACEFUL_SHUTDOWN_SECONDS
from registro.settings import DEFAULT_PORT, Settings

ROOT = Path(__file__).parents[3]
SPEC = Path("deploy/facts/facts.yaml")
PORT, OTHER_PORT = DEFAULT_PORT, DEFAULT_PORT + 1


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.facts.generate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def copy_of_the_repository(tmp_path: Path) -> Path:
    """The spec and every file that states a fact, copied under `tmp_path`."""
    listed = generate("--list")
    assert listed.returncode == 0, listed.stderr
    for name in [str(SPEC), *listed.stdout.split()]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def shutdown_seconds(root: Path) -> dict[str, int]:
    """The shutdown timings as the rendered files under `root` state them."""
    pod = load(root / "deploy/k8s/base/rollout.yaml")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    annotations = load(root / "deploy/k8s/base/ingress.yaml")["metadata"]["annotations"]
    delay = re.fullmatch(
        r"deregistration_delay\.timeout_seconds=(\d+)",
        annotations["alb.ingress.kubernetes.io/target-group-attributes"],
    )
    assert delay
    drain = re.search(
        r"^REGISTRO_DRAIN_SECONDS=(\d+)$", (root / "deploy/k8s/base/config.env").read_text(), re.M
    )
    assert drain
    stop = {
        name: service.get("stop_grace_period", "10s")  # compose's default
        for name, service in load(root / "compose.yaml")["services"].items()
        if service["image"].startswith("registro:") and "command" not in service
    }
    assert {"app1", "app2", "app3", "app-canary"} <= set(stop), stop
    [compose] = set(stop.values())
    assert re.fullmatch(r"\d+s", compose), stop
    return {
        "pre_stop": container["lifecycle"]["preStop"]["sleep"]["seconds"],
        "drain": int(drain.group(1)),
        "grace": pod["terminationGracePeriodSeconds"],
        "deregistration": int(delay.group(1)),
        "compose": int(compose.removesuffix("s")),
    }


def test_check_passes_on_the_copy_and_fails_on_a_drifted_file(tmp_path: Path) -> None:
    root = copy_of_the_repository(tmp_path)
    assert generate("--check", "--root", str(root)).returncode == 0
    config = root / "deploy/k8s/base/config.env"
    edit(config, f"REGISTRO_PORT={PORT}", f"REGISTRO_PORT={OTHER_PORT}")
    drifted = generate("--check", "--root", str(root))
    assert drifted.returncode == 1
    assert "deploy/k8s/base/config.env" in drifted.stdout
    assert "rollout.yaml" not in drifted.stdout
    # make facts puts it back
    assert generate("--root", str(root)).returncode == 0
    assert f"REGISTRO_PORT={PORT}\n" in config.read_text()
    assert generate("--check", "--root", str(root)).returncode == 0


def test_check_reads_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--check compares the text it rendered from with what it rendered: no second read."""
    root = copy_of_the_repository(tmp_path)
    reads: Counter[str] = Counter()
    read_text = Path.read_text

    def counted(path: Path, *args: Any, **kwargs: Any) -> str:
        reads[str(path.relative_to(root))] += 1
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    assert generate_module.main(["--check", "--root", str(root)]) == 0
    assert reads and set(reads.values()) == {1}, reads


def test_a_changed_fact_reaches_every_file_that_states_it(tmp_path: Path) -> None:
    root = copy_of_the_repository(tmp_path)
    edit(root / SPEC, f"port: {PORT}", f"port: {OTHER_PORT}")
    assert generate("--root", str(root)).returncode == 0
    haproxy = (root / "deploy/docker/haproxy/haproxy.cfg").read_text()
    assert f"app1:{OTHER_PORT}" in haproxy and f":{PORT}" not in haproxy
    assert f"DEFAULT_PORT = {OTHER_PORT}\n" in (root / "src/registro/settings.py").read_text()
    rollout = load(root / "deploy/k8s/base/rollout.yaml")["spec"]["template"]["spec"]
    assert rollout["containers"][0]["ports"] == [{"name": "http", "containerPort": OTHER_PORT}]


def test_a_changed_version_reaches_every_file_that_states_it(tmp_path: Path) -> None:
    """The oldest Python (and ruff's target derived from it) and the linux/amd64 kubectl pin."""
    root = copy_of_the_repository(tmp_path)
    edit(root / SPEC, 'oldest_python: "3.11"', 'oldest_python: "3.12"')
    edit(root / SPEC, 'kubectl: "1.36.3"', 'kubectl: "1.36.4"')
    assert generate("--root", str(root)).returncode == 0
    pyproject = (root / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.12"' in pyproject and 'target-version = "py312"' in pyproject
    assert "LOCK_OLDEST_PYTHON := 3.12\n" in (root / "Makefile").read_text()
    ci = load(root / ".github/workflows/ci.yml")
    assert ci["jobs"]["test"]["strategy"]["matrix"]["python"][0] == "3.12"
    assert '"3.11"' not in (root / ".github/workflows/deploy.yml").read_text()
    pins = (root / "tools/pins.txt").read_text().splitlines()
    [row] = [r for r in pins if r.startswith("kubectl  linux   amd64  ")]
    assert row.split()[3] == "1.36.4" and row.endswith("/v1.36.4/bin/linux/amd64/kubectl")


def test_a_place_missing_from_its_file_is_an_error(tmp_path: Path) -> None:
    root = copy_of_the_repository(tmp_path)
    edit(root / "deploy/docker/registro/Dockerfile", f"EXPOSE {PORT}\n", "")
    missing = generate("--check", "--root", str(root))
    assert missing.returncode == 2
    assert "deploy/docker/registro/Dockerfile: 'EXPOSE {port}\\n' not found" in missing.stderr
    edit(root / "deploy/docker/registro/Dockerfile", "USER", f"EXPOSE {PORT}\nUSER")
    (root / "deploy/k8s/release.sh").unlink()
    moved = generate("--check", "--root", str(root))
    assert moved.returncode == 2
    assert "deploy/k8s/release.sh: no such file" in moved.stderr


def test_the_shutdown_timings_keep_their_rules_as_the_drain_grows(tmp_path: Path) -> None:
    root = copy_of_the_repository(tmp_path)
    edit(root / SPEC, "drain_seconds: 5", "drain_seconds: 20")
    assert generate("--root", str(root)).returncode == 0
    t = shutdown_seconds(root)
    assert t["drain"] == 20
    assert t["pre_stop"] + t["drain"] + GRACEFUL_SHUTDOWN_SECONDS == t["deregistration"] == 65
    assert t["deregistration"] < t["grace"]
    assert t["compose"] >= t["drain"] + GRACEFUL_SHUTDOWN_SECONDS


def test_the_committed_timings_cover_the_service_as_it_runs() -> None:
    """The rules against the service's own defaults: no request is cut when a pod or a compose
    replica stops (what tests/infra/k8s/test_shutdown_timing.py used to check by hand)."""
    t = shutdown_seconds(ROOT)
    assert t["drain"] == Settings.model_fields["drain_seconds"].default
    in_flight = GRACEFUL_SHUTDOWN_SECONDS
    assert t["pre_stop"] + t["drain"] + in_flight <= t["deregistration"] <= t["grace"], t
    assert t["compose"] >= t["drain"] + in_flight, t


def test_a_pre_stop_shorter_than_the_albs_propagation_is_refused(tmp_path: Path) -> None:
    """The ALB keeps sending new requests for a few seconds after deregistration starts; EKS's
    best practices (https://aws.github.io/aws-eks-best-practices/networking/loadbalancing/
    loadbalancing/, "graceful shutdown") have a preStop sleep cover it: a pod that stopped
    accepting by then would refuse them."""
    root = copy_of_the_repository(tmp_path)
    edit(root / SPEC, "pre_stop_seconds: 15", "pre_stop_seconds: 5")
    refused = generate("--root", str(root))
    assert refused.returncode == 2
    assert "pre_stop_seconds must be at least deregistration_propagation_seconds" in refused.stderr
