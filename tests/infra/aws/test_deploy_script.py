"""deploy.sh and teardown.sh drive awscli correctly: stacks in the order of deploy/aws/stacks,
each through a change set with its own parameters, executed only when not a dry run; teardown
deletes them in reverse order, only when confirmed.

awscli is replaced by a recording fake on PATH (moto cannot serve this: its change sets lose the
stack's exports). What this cannot see: the real service's answers and timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import stacks

FAKE_AWS = r"""#!PYTHON
import json, os, sys
args = sys.argv[1:]
call = {"args": args}
if "--parameters" in args:
    call["parameters"] = json.load(open(args[args.index("--parameters") + 1].removeprefix("file://")))
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(call) + "\n")
command = " ".join(args[:2])
if command == "cloudformation describe-stacks":
    if os.environ.get("FAKE_EXISTING") == "all":
        print("UPDATE_COMPLETE")
        sys.exit(0)
    print("Stack with id x does not exist", file=sys.stderr)
    sys.exit(255)
if command == "resourcegroupstaggingapi get-resources":
    print(os.environ.get("FAKE_ALB_ARNS", ""))
    sys.exit(0)
if command in ("cloudformation create-change-set", "cloudformation wait",
               "cloudformation delete-stack", "cloudformation describe-change-set",
               "cloudformation execute-change-set"):
    sys.exit(0)
print("unexpected call: " + " ".join(args), file=sys.stderr)
sys.exit(1)
"""


def run_script(
    script: str, tmp_path: Path, env: str, **environment: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "aws"
    fake.write_text(FAKE_AWS.replace("PYTHON", sys.executable))
    fake.chmod(0o755)
    result = subprocess.run(
        [str(stacks.HERE / script), env],
        capture_output=True,
        text=True,
        check=False,
        env={
            **{k: v for k, v in os.environ.items() if k not in ("CONFIRM", "DRY_RUN")},
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PYTHON": sys.executable,
            "FAKE_AWS_LOG": str(log),
            **environment,
        },
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def option(call: dict[str, Any], name: str) -> str:
    return call["args"][call["args"].index(name) + 1]


def change_sets(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in calls if c["args"][:2] == ["cloudformation", "create-change-set"]]


@pytest.mark.parametrize("env", stacks.ENVIRONMENTS)
def test_first_deploy_creates_every_stack_in_order(env: str, tmp_path: Path) -> None:
    result, calls = run_script("deploy.sh", tmp_path, env)
    assert result.returncode == 0, result.stderr
    created = change_sets(calls)
    assert [option(c, "--stack-name") for c in created] == [
        stacks.stack_name(env, layer) for layer in stacks.layers()
    ]
    for call, layer in zip(created, stacks.layers(), strict=True):
        assert option(call, "--change-set-type") == "CREATE"
        assert option(call, "--template-body") == f"file://{stacks.template_path(layer)}"
        expected = stacks.parameters(
            env, layer, {"LoadBalancerFullName": ""} if layer == "observability" else {}
        )
        assert {p["ParameterKey"]: p["ParameterValue"] for p in call["parameters"]} == expected
        assert f"Key=environment,Value={env}" in call["args"]
    executed = [
        option(c, "--stack-name")
        for c in calls
        if c["args"][:2] == ["cloudformation", "execute-change-set"]
    ]
    assert executed == [stacks.stack_name(env, layer) for layer in stacks.layers()]
    waits = [c["args"][2] for c in calls if c["args"][:2] == ["cloudformation", "wait"]]
    assert waits.count("stack-create-complete") == len(stacks.layers())


def test_dry_run_of_a_new_environment_stops_after_the_first_new_stack(tmp_path: Path) -> None:
    result, calls = run_script("deploy.sh", tmp_path, "qa", DRY_RUN="1")
    assert result.returncode == 0, result.stderr
    assert [option(c, "--stack-name") for c in change_sets(calls)] == [
        stacks.stack_name("qa", stacks.layers()[0])
    ]
    assert not [c for c in calls if c["args"][1] == "execute-change-set"]


def test_dry_run_of_an_existing_environment_previews_every_stack(tmp_path: Path) -> None:
    result, calls = run_script("deploy.sh", tmp_path, "prod", DRY_RUN="1", FAKE_EXISTING="all")
    assert result.returncode == 0, result.stderr
    assert [option(c, "--change-set-type") for c in change_sets(calls)] == ["UPDATE"] * len(
        stacks.layers()
    )
    assert not [c for c in calls if c["args"][1] == "execute-change-set"]
    assert len([c for c in calls if c["args"][1] == "describe-change-set"]) == len(stacks.layers())


def test_the_albs_cloudwatch_name_reaches_the_alarms(tmp_path: Path) -> None:
    arn = (
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
        "loadbalancer/app/k8s-registro-abc/0123456789abcdef"
    )
    result, calls = run_script("deploy.sh", tmp_path, "qa", FAKE_ALB_ARNS=arn)
    assert result.returncode == 0, result.stderr
    (observability,) = [
        c for c in change_sets(calls) if option(c, "--stack-name").endswith("-observability")
    ]
    values = {p["ParameterKey"]: p["ParameterValue"] for p in observability["parameters"]}
    assert values["LoadBalancerFullName"] == "app/k8s-registro-abc/0123456789abcdef"


def test_teardown_deletes_in_reverse_order_once_confirmed(tmp_path: Path) -> None:
    result, calls = run_script("teardown.sh", tmp_path / "unconfirmed", "qa")
    assert result.returncode != 0 and calls == []
    result, calls = run_script("teardown.sh", tmp_path, "qa", CONFIRM="qa")
    assert result.returncode == 0, result.stderr
    deleted = [option(c, "--stack-name") for c in calls if c["args"][1] == "delete-stack"]
    assert deleted == [stacks.stack_name("qa", layer) for layer in reversed(stacks.layers())]
