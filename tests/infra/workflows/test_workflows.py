"""The pipelines stay thin and safe: what zizmor and actionlint do not check.

Every `run:` step is one `make` target that the Makefile defines (so a person can run it
locally), every action is pinned by commit, each workflow starts with no permissions, releases
are serialised, and production sits behind its environment with a rollback job.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    # PyYAML reads the bare key `on` as the boolean True.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def steps(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, spec in doc["jobs"].items() for step in spec["steps"]]


def make_targets() -> set[str]:
    database = subprocess.run(
        ["make", "-pRrq", "-f", "Makefile", ":"], cwd=REPO, capture_output=True, text=True
    ).stdout
    return set(re.findall(r"^([a-zA-Z][\w-]*):", database, re.M))


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "deploy.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_is_one_make_target(path: Path) -> None:
    targets = make_targets()
    for job, step in steps(load(path)):
        if "run" not in step:
            continue
        words = shlex.split(step["run"])
        assert words[0] == "make" and "\n" not in step["run"].strip(), (job, step["run"])
        named = [w for w in words[1:] if "=" not in w]
        assert len(named) == 1, (job, step["run"])
        assert named[0] in targets, f"{path.name} {job}: `make {named[0]}` is not in the Makefile"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit(path: Path) -> None:
    for job, step in steps(load(path)):
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), (job, step["uses"])


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_permissions_unless_a_job_asks(path: Path) -> None:
    doc = load(path)
    assert doc["permissions"] == {}
    assert "concurrency" in doc
    for job, spec in doc["jobs"].items():
        permissions = spec.get("permissions", {})
        assert set(permissions.items()) <= {("contents", "read"), ("id-token", "write")}, job
        assert "timeout-minutes" in spec, job
    assert "AWS_ACCESS_KEY_ID" not in path.read_text()
    assert "aws-secret-access-key" not in path.read_text()


def test_deploy_goes_qa_then_approved_production_with_rollback() -> None:
    doc = load(REPO / ".github" / "workflows" / "deploy.yml")
    assert doc["on"] == {"push": {"branches": ["main"]}}
    assert doc["concurrency"]["cancel-in-progress"] is False
    jobs = doc["jobs"]
    assert jobs["qa"]["environment"]["name"] == "qa"
    assert jobs["production"]["needs"] == "qa"
    assert jobs["production"]["environment"]["name"] == "production"
    rollback = jobs["rollback-production"]
    assert rollback["needs"] == "production" and "failure()" in rollback["if"]
    runs = {job: [s.get("run", "") for s in spec["steps"]] for job, spec in jobs.items()}
    assert any("deploy-k8s ENV=qa" in r for r in runs["qa"])
    assert any("smoke" in r for r in runs["qa"])
    assert any("deploy-k8s ENV=prod" in r for r in runs["production"])
    assert any("rollback-k8s ENV=prod" in r for r in runs["rollback-production"])
    assert "id-token" not in jobs["build"]["permissions"], "the build needs no AWS access"
    for job in ("qa", "production", "rollback-production"):
        assert jobs[job]["permissions"]["id-token"] == "write", job
        assert jobs[job]["environment"]["name"] in {"qa", "production"}, job
    # one build; each environment publishes those bytes, then deploys them
    for job, env in (("qa", "qa"), ("production", "prod")):
        order = [r.split()[1] for r in runs[job] if r]
        assert order[:3] == ["image-load", "publish-image", "deploy-k8s"], order
        assert any(f"publish-image ENV={env} " in r for r in runs[job]), runs[job]


def test_ci_runs_on_pull_requests_and_main() -> None:
    doc = load(REPO / ".github" / "workflows" / "ci.yml")
    assert "pull_request" in doc["on"] and doc["on"]["push"] == {"branches": ["main"]}
    runs = " ".join(s.get("run", "") for _, s in steps(doc))
    for target in ("lint", "test", "verify-aws", "verify-k8s", "verify-workflows"):
        assert re.search(rf"make {target}\b", runs), target
    for target in ("image", "e2e", "sbom"):
        assert re.search(rf"make {target}\b", runs), target
