"""The rehearsal's world: a copy of this repository with an environment's values filled in as a
person would, the moto server, and the stand-ins first on PATH (standins/: aws, kubectl, helm,
dig). Each `Rehearsal.make(...)` runs a Makefile target there, as the person would type it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[3]
STANDINS = Path(__file__).resolve().parent / "standins"
REGION = "eu-west-1"
ACCOUNT = "210987654321"
ZONE = "registro.dev"
# Targets whose tools are installed already (the venvs are shared with the real checkout).
INSTALLED = (".venvs/aws/.installed", ".venvs/k8s/.installed")


@dataclass
class Rehearsal:
    repo: Path
    env: dict[str, str]
    log: Path
    scenario_path: Path
    kube_path: Path
    zone_id: str
    name_servers: list[str]
    marks: list[int] = field(default_factory=list)

    def make(
        self, *target: str, identity: str = "admin", **variables: str
    ) -> subprocess.CompletedProcess[str]:
        """`make TARGET VAR=...` in the copy; STANDIN_IDENTITY says who is calling the cluster."""
        self.marks.append(len(self.calls()))
        command = ["make", "--no-print-directory", *[f"-o{t}" for t in INSTALLED], *target]
        command += [f"{k}={v}" for k, v in variables.items()]
        # The AWS targets put awscli's directory first on PATH; bootstrap-k8s runs $(HELM).
        command += [f"AWS_CLI_PATH={self.env['STANDIN_BIN']}", "HELM=../bin/helm"]
        return subprocess.run(
            command, cwd=self.repo, capture_output=True, text=True, check=False,
            env={**self.env, "STANDIN_IDENTITY": identity}, timeout=600,
        )  # fmt: skip

    def calls(self) -> list[dict[str, Any]]:
        return (
            [json.loads(line) for line in self.log.read_text().splitlines()]
            if self.log.exists()
            else []
        )

    def since_last(self) -> list[dict[str, Any]]:
        """The stand-in calls the last make() made, less make's own tool check asking each tool
        its version before any recipe runs (tools/need.sh): those change nothing anywhere."""
        return [c for c in self.calls()[self.marks[-1] :] if not _version_probe(c["args"])]

    def scenario(self, **changes: Any) -> None:
        current = json.loads(self.scenario_path.read_text())
        self.scenario_path.write_text(json.dumps(current | changes))

    def kube(self) -> dict[str, Any]:
        return json.loads(self.kube_path.read_text()) if self.kube_path.exists() else {}

    def client(self, service: str) -> Any:
        return client(service, self.env["AWS_ENDPOINT_URL"])


# moto accepts any key; these are the ones its documentation uses.
MOTO_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def client(service: str, endpoint: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint, **MOTO_KEYS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def copy_repository(destination: Path) -> None:
    """What a clone holds (tracked and new files); times kept, so make rebuilds nothing."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    (destination / ".venvs").symlink_to(ROOT / ".venvs")
    shared = (ROOT / ".." / "shared").resolve()
    if shared.exists():
        (destination.parent / "shared").symlink_to(shared)


def stand_in_bin(directory: Path) -> None:
    directory.mkdir()
    tools = (
        ("aws", "aws.py"), ("kubectl", "kube"), ("helm", "kube"), ("dig", "dig.py"),
        ("supply-python", "verify.py"),
    )  # fmt: skip
    for tool, path in tools:
        script = directory / tool
        # runpy gives the stand-in its own path as argv[0]: the tool's name travels apart. A
        # folder (kube/) runs as `python FOLDER` does: its __main__.py, beside its modules.
        script.write_text(
            f"#!{sys.executable}\nimport os, runpy\nos.environ['STANDIN_TOOL'] = {tool!r}\n"
            f"runpy.run_path({str(STANDINS / path)!r}, run_name='__main__')\n"
        )
        script.chmod(0o755)


def fill_values(repo: Path, zone_id: str) -> None:
    """What docs/aws.md tells a person to set, with values of this rehearsal's account."""
    for env in ("qa", "prod"):
        path = repo / "deploy" / "aws" / "environments" / f"{env}.json"
        values = json.loads(path.read_text())
        values |= {
            "DomainName": f"{env}.{ZONE}",
            "HostedZoneId": zone_id,
            "AlarmEmail": f"oncall@{ZONE}",
            "GitHubRepository": "registro-project/registro",
            "PublicEndpointCidrs": "0.0.0.0/0",
        }
        # Each environment in an account of its own, as the rehearsal's one account stands for:
        # the security baseline is rehearsed in qa (docs/aws.md, "The security baseline").
        values["EnableSecurityBaseline"] = "true" if env == "qa" else "false"
        if "AdminRoleArn" in values:
            values["AdminRoleArn"] = f"arn:aws:iam::{ACCOUNT}:role/platform-admin"
        path.write_text(json.dumps(values, indent=2) + "\n")


def public_endpoint(log: Path) -> ThreadingHTTPServer:
    """The service's public name as release.sh's synthetic traffic reaches it: every request is
    logged (the stand-in's Argo Rollouts counts them as the canary's traffic) and answered 200."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with log.open("a") as lines:
                lines.write(self.path + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    base = tmp_path_factory.mktemp("first-deploy")
    repo = base / "registro"
    copy_repository(repo)
    port = free_port()
    moto_log = (base / "moto.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.infra.first_deploy.standins.moto_server", str(port)],
        env={**os.environ, "MOTO_ACCOUNT_ID": ACCOUNT}, stdout=subprocess.DEVNULL, stderr=moto_log,
        cwd=ROOT,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)  # noqa: S310 (http://127.0.0.1)
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(
                    f"moto did not start: {(base / 'moto.log').read_text()}"
                ) from None
            time.sleep(0.3)
    bin_dir = base / "bin"
    stand_in_bin(bin_dir)
    public = public_endpoint(base / "traffic.log")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAKE", "MFLAGS"))},
        "PATH": f"{bin_dir}:{ROOT / '.venvs' / 'aws' / 'bin'}:{os.environ['PATH']}",
        "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": MOTO_KEYS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": MOTO_KEYS["aws_secret_access_key"],
        "AWS_CONFIG_FILE": str(base / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(base / "aws-credentials"),
        "STANDIN_BIN": str(bin_dir), "STANDIN_LOG": str(base / "calls.jsonl"),
        "STANDIN_SCENARIO": str(base / "scenario.json"), "STANDIN_KUBE": str(base / "kube.json"),
        "STANDIN_REAL_AWS": str(ROOT / ".venvs" / "aws" / "bin" / "aws"),
        "STANDIN_REAL_KUBECTL": shutil.which("kubectl") or "/usr/bin/kubectl",
        "DEPLOY_POLL_SECONDS": "0", "DEPLOY_BACKOFF_SECONDS": "0", "TEARDOWN_POLL_SECONDS": "0",
        "RELEASE_WORK": str(base / "release"), "KUBECTL": "kubectl",
        # The signatures' verification (deploy/image/verify.py) reads a registry's API, which
        # moto's ECR does not serve: a stand-in answers as the scenario says (make
        # verify-signing runs the real one against a real registry).
        "SUPPLY_PYTHON": str(bin_dir / "supply-python"),
        # The public name, served on 127.0.0.1 (release.sh's synthetic traffic goes there).
        "RELEASE_TRAFFIC_URL": f"http://127.0.0.1:{public.server_address[1]}",
        "RELEASE_TRAFFIC_RATE": "20", "STANDIN_TRAFFIC": str(base / "traffic.log"),
        "ROLLOUT_POLL_SECONDS": "0.5",
    }  # fmt: skip
    zone = client("route53", endpoint).create_hosted_zone(Name=ZONE, CallerReference="rehearsal")
    zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    name_servers = zone["DelegationSet"]["NameServers"]
    (base / "scenario.json").write_text(json.dumps({"delegations": {ZONE: name_servers}}))
    fill_values(repo, zone_id)
    # The operators' role AdminRoleArn names: preflight refuses a role that does not exist.
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}  # fmt: skip
    client("iam", endpoint).create_role(
        RoleName="platform-admin", AssumeRolePolicyDocument=json.dumps(trust)
    )
    try:
        yield Rehearsal(repo, env, base / "calls.jsonl", base / "scenario.json",
                        base / "kube.json", zone_id, name_servers)  # fmt: skip
    finally:
        public.shutdown()
        server.terminate()
        server.wait(timeout=10)
        moto_log.close()


def _version_probe(args: list[str]) -> bool:
    return args[:1] in (["version"], ["--version"])
