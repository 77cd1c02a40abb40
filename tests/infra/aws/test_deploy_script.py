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
from deploy.aws import stacks

FAKE_AWS = r"""#!PYTHON
import json, os, sys
args = sys.argv[1:]
call = {"args": args}
if "--parameters" in args:
    call["parameters"] = json.load(open(args[args.index("--parameters") + 1].removeprefix("file://")))
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(call) + "\n")
scenario_path = os.environ.get("FAKE_SCENARIO")
scenario = json.load(open(scenario_path)) if scenario_path else {}
def save():
    json.dump(scenario, open(scenario_path, "w"))
command = " ".join(args[:2])
if command == "configure get":
    sys.exit(1)
if command == "cloudformation describe-stacks":
    if scenario.get("throttle", 0) > 0:
        scenario["throttle"] -= 1
        save()
        print("An error occurred (Throttling) when calling the DescribeStacks operation: "
              "Rate exceeded", file=sys.stderr)
        sys.exit(255)
    if "error" in scenario:
        print(scenario["error"], file=sys.stderr)
        sys.exit(255)
    stack = args[args.index("--stack-name") + 1]
    statuses = scenario.get("status", {}).get(stack)
    if statuses:
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        save()
    else:
        status = "UPDATE_COMPLETE" if os.environ.get("FAKE_EXISTING") == "all" else "NONE"
    if status == "NONE":
        print("An error occurred (ValidationError) when calling the DescribeStacks operation: "
              f"Stack with id {stack} does not exist", file=sys.stderr)
        sys.exit(255)
    if args[args.index("--output") + 1] == "json":
        outputs = scenario.get("outputs", {}).get(stack, {})
        print(json.dumps({"Stacks": [{"StackName": stack, "StackStatus": status, "Outputs": [
            {"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]}]}))
    else:
        print(status)
    sys.exit(0)
if command == "rds describe-db-instances":
    print(scenario.get("deletion_protection", "False"))
    sys.exit(0)
if command == "resourcegroupstaggingapi get-resources":
    print(os.environ.get("FAKE_ALB_ARNS", ""))
    sys.exit(0)
if command == "route53 list-resource-record-sets":
    print(json.dumps({"ResourceRecordSets": []}))
    sys.exit(0)
if command == "cloudformation describe-stack-resource":
    print("AWS::S3::Bucket kept-" + args[args.index("--logical-resource-id") + 1])
    sys.exit(0)
if command == "cloudformation wait" and (
    args[2] in scenario.get("failing_waits", [])
    or f"{args[2]} {args[args.index('--stack-name') + 1]}" in scenario.get("failing_waits", [])
):
    sys.exit(255)
if command in ("cloudformation create-change-set", "cloudformation wait",
               "cloudformation delete-stack", "cloudformation describe-change-set",
               "cloudformation execute-change-set", "cloudformation describe-stack-events"):
    sys.exit(0)
print("unexpected call: " + " ".join(args), file=sys.stderr)
sys.exit(1)
"""


UNSET = ("CONFIRM", "DRY_RUN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")


def run_script(
    script: str,
    tmp_path: Path,
    env: str,
    scenario: dict[str, Any] | None = None,
    **environment: str,
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir(parents=True)
    if scenario is not None:
        (tmp_path / "scenario.json").write_text(json.dumps(scenario))
        environment["FAKE_SCENARIO"] = str(tmp_path / "scenario.json")
    fake = bin_dir / "aws"
    fake.write_text(FAKE_AWS.replace("PYTHON", sys.executable))
    fake.chmod(0o755)
    result = subprocess.run(
        [str(stacks.HERE / script), env],
        capture_output=True,
        text=True,
        check=False,
        env={
            **{k: v for k, v in os.environ.items() if k not in UNSET},
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "AWS_REGION": "eu-west-1",
            "DEPLOY_POLL_SECONDS": "0",
            "DEPLOY_BACKOFF_SECONDS": "0",
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


def in_step_order(names: list[str]) -> list[set[str]]:
    """The stack names grouped as deploy/aws/stacks groups them: the stacks of one step are
    deployed side by side, in no fixed order among themselves."""
    groups, rest = [], list(names)
    for step in stacks.steps():
        groups.append(set(rest[: len(step)]))
        rest = rest[len(step) :]
    return [*groups, set(rest)] if rest else groups


def steps_of(env: str) -> list[set[str]]:
    return [{stacks.stack_name(env, layer) for layer in step} for step in stacks.steps()]


@pytest.mark.parametrize("env", stacks.ENVIRONMENTS)
def test_first_deploy_creates_every_stack_in_order(env: str, tmp_path: Path) -> None:
    result, calls = run_script("deploy.sh", tmp_path, env)
    assert result.returncode == 0, result.stderr
    created = change_sets(calls)
    assert in_step_order([option(c, "--stack-name") for c in created]) == steps_of(env)
    for call in created:
        layer = option(call, "--stack-name").removeprefix(f"registro-{env}-")
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
    assert in_step_order(executed) == steps_of(env)
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
        "loadbalancer/app/registro-qa/0123456789abcdef"
    )
    result, calls = run_script("deploy.sh", tmp_path, "qa", FAKE_ALB_ARNS=arn)
    assert result.returncode == 0, result.stderr
    (observability,) = [
        c for c in change_sets(calls) if option(c, "--stack-name").endswith("-observability")
    ]
    values = {p["ParameterKey"]: p["ParameterValue"] for p in observability["parameters"]}
    assert values["LoadBalancerFullName"] == "app/registro-qa/0123456789abcdef"


STATUS_CODES = (
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/"
    "view-stack-events.html#cfn-console-view-stack-data-resources-status-codes"
)


def stack(layer: str, env: str = "qa") -> str:
    return stacks.stack_name(env, layer)


def calls_of(calls: list[dict[str, Any]], *command: str) -> list[dict[str, Any]]:
    return [c for c in calls if tuple(c["args"][: len(command)]) == command]


def test_no_region_stops_with_one_line_before_any_call(tmp_path: Path) -> None:
    """Without a region every AWS call fails on its own; the script says so once, first."""
    result, calls = run_script("deploy.sh", tmp_path, "qa", AWS_REGION="")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "no AWS region" in result.stderr
    assert "change set" not in result.stdout + result.stderr
    assert [c["args"][:2] for c in calls] == [["configure", "get"]]


def test_teardown_without_a_region_stops_with_the_same_line(tmp_path: Path) -> None:
    """deploy.sh and teardown.sh ask deploy.aws.awscli for the region: one rule, one message."""
    result, calls = run_script("teardown.sh", tmp_path, "qa", AWS_REGION="", CONFIRM="qa")
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("teardown.sh: no AWS region: set AWS_REGION (e.g. AWS_REGION=eu-west-1)")
    assert [c["args"][:2] for c in calls] == [["configure", "get"]]


def test_a_describe_failure_other_than_missing_is_an_error(tmp_path: Path) -> None:
    """DescribeStacks answers ValidationError "Stack with id X does not exist" for a missing
    stack (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html);
    expired credentials are something else and must not be taken for "create it"."""
    expired = "An error occurred (ExpiredToken) when calling the DescribeStacks operation: expired"
    result, calls = run_script("deploy.sh", tmp_path, "qa", {"error": expired})
    assert result.returncode != 0
    assert "ExpiredToken" in result.stderr
    assert change_sets(calls) == []


def test_throttling_is_retried_with_back_off(tmp_path: Path) -> None:
    """Throttling ("Rate exceeded") is retryable with exponential back-off
    (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html)."""
    result, calls = run_script("deploy.sh", tmp_path, "qa", {"throttle": 3})
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("throttled") == 3
    assert len(change_sets(calls)) == len(stacks.layers())


def test_a_failed_first_create_is_deleted_and_created_again(tmp_path: Path) -> None:
    """A stack in ROLLBACK_COMPLETE (its creation failed and was rolled back) "can only be
    deleted": no update is accepted (STATUS_CODES, and "Troubleshooting CloudFormation":
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/troubleshooting.html)."""
    failed = stack("observability")
    scenario = {"status": {failed: ["ROLLBACK_COMPLETE", "NONE", "CREATE_COMPLETE"]}}
    result, calls = run_script("deploy.sh", tmp_path, "qa", scenario)
    assert result.returncode == 0, result.stderr
    verbs = [
        (c["args"][1], c["args"][2] if c["args"][1] == "wait" else option(c, "--stack-name"))
        for c in calls
        if c["args"][0] == "cloudformation"
        and failed in c["args"]
        and c["args"][1] in ("delete-stack", "wait", "create-change-set")
    ]
    assert verbs[:3] == [
        ("delete-stack", failed),
        ("wait", "stack-delete-complete"),
        ("create-change-set", failed),
    ]
    (created,) = [c for c in change_sets(calls) if option(c, "--stack-name") == failed]
    assert option(created, "--change-set-type") == "CREATE"


def test_a_dry_run_deletes_nothing(tmp_path: Path) -> None:
    scenario = {"status": {stack("security"): ["ROLLBACK_COMPLETE"]}}
    result, calls = run_script("deploy.sh", tmp_path, "qa", scenario, DRY_RUN="1")
    assert result.returncode != 0 and "would be deleted" in result.stderr
    assert calls_of(calls, "cloudformation", "delete-stack") == []


def test_a_busy_stack_is_waited_for_then_updated(tmp_path: Path) -> None:
    """*_IN_PROGRESS: an operation is running; a change set cannot be executed until it ends."""
    busy = stack("network")
    scenario = {"status": {busy: ["UPDATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]}}
    result, calls = run_script("deploy.sh", tmp_path, "qa", scenario)
    assert result.returncode == 0, result.stderr
    (network,) = [c for c in change_sets(calls) if option(c, "--stack-name") == busy]
    assert option(network, "--change-set-type") == "UPDATE"
    assert result.stderr.count(f"{busy} is UPDATE_IN_PROGRESS") == 2


@pytest.mark.parametrize(
    ("status", "repair"),
    [
        ("UPDATE_ROLLBACK_FAILED", "continue-update-rollback"),
        ("UPDATE_FAILED", "rollback-stack"),
        ("DELETE_FAILED", "teardown-aws"),
    ],
)
def test_a_stack_needing_repair_is_refused_with_the_repair(
    status: str, repair: str, tmp_path: Path
) -> None:
    """These states accept no change set; STATUS_CODES names the operation that repairs each."""
    scenario = {"status": {stack("cluster"): [status]}}
    result, calls = run_script("deploy.sh", tmp_path, "qa", scenario)
    assert result.returncode != 0
    assert repair in result.stderr
    assert stack("cluster") not in [option(c, "--stack-name") for c in change_sets(calls)]


def test_a_failed_stack_stops_the_deploy_with_its_reasons(tmp_path: Path) -> None:
    scenario = {"failing_waits": ["stack-create-complete"]}
    result, calls = run_script("deploy.sh", tmp_path, "qa", scenario)
    assert result.returncode != 0
    assert "make deploy-aws ENV=qa again" in result.stderr
    assert len(change_sets(calls)) == 1
    assert calls_of(calls, "cloudformation", "describe-stack-events")


@pytest.mark.parametrize("failing", [("cluster",), ("data",), ("cluster", "data")])
def test_a_failure_beside_another_stack_fails_the_deploy_naming_it(
    failing: tuple[str, ...], tmp_path: Path
) -> None:
    """The cluster and the database are deployed side by side: a failure of either (or both) is
    the deploy's exit status and names each failed stack; the other is still waited for, and
    no later stack is started."""
    scenario = {"failing_waits": [f"stack-create-complete {stack(layer)}" for layer in failing]}
    result, calls = run_script("deploy.sh", tmp_path, "qa", scenario)
    assert result.returncode != 0
    (summary,) = [line for line in result.stderr.splitlines() if " failed; fix the causes" in line]
    named = summary.removeprefix("deploy.sh: ").split(" failed;")[0].split()
    assert named == [stack(layer) for layer in failing]
    waited = {
        option(c, "--stack-name")
        for c in calls_of(calls, "cloudformation", "wait", "stack-create-complete")
    }
    assert {stack("cluster"), stack("data")} <= waited
    assert stack("edge") not in [option(c, "--stack-name") for c in change_sets(calls)]
    for layer in {"cluster", "data"} - set(failing):
        assert f"{stack(layer)}: CREATE_COMPLETE" in result.stdout


def test_teardown_deletes_in_reverse_order_once_confirmed(tmp_path: Path) -> None:
    result, calls = run_script("teardown.sh", tmp_path / "unconfirmed", "qa")
    assert result.returncode != 0 and calls == []
    result, calls = run_script("teardown.sh", tmp_path, "qa", CONFIRM="qa", FAKE_EXISTING="all")
    assert result.returncode == 0, result.stderr
    deleted = [option(c, "--stack-name") for c in calls if c["args"][1] == "delete-stack"]
    assert deleted == [stacks.stack_name("qa", layer) for layer in reversed(stacks.layers())]


def test_teardown_lists_what_the_stacks_keep(tmp_path: Path) -> None:
    """DeletionPolicy Retain/Snapshot resources outlive their stack
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html):
    the person tearing down is told which, by name."""
    result, _ = run_script("teardown.sh", tmp_path, "qa", CONFIRM="qa", FAKE_EXISTING="all")
    assert result.returncode == 0, result.stderr
    kept = result.stdout.split("Kept on purpose", 1)[1]
    assert "kept-TrailBucket" in kept and "Retain" in kept
    assert "final snapshot" in kept


def deleted_stacks(calls: list[dict[str, Any]]) -> list[str]:
    return [option(c, "--stack-name") for c in calls_of(calls, "cloudformation", "delete-stack")]


def test_teardown_stops_when_a_stack_cannot_be_read(tmp_path: Path) -> None:
    """Only ValidationError "Stack with id X does not exist" (DescribeStacks' answer for a stack
    it does not know: https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/
    API_DescribeStacks.html) means "no stack"; expired credentials are not a teardown that has
    nothing left to delete."""
    expired = "An error occurred (ExpiredToken) when calling the DescribeStacks operation: expired"
    result, calls = run_script("teardown.sh", tmp_path, "qa", {"error": expired}, CONFIRM="qa")
    assert result.returncode != 0
    assert f"cannot read stack {stack('data')}: {expired}" in result.stderr
    assert "teardown.sh: stopped before deleting anything more" in result.stderr
    assert deleted_stacks(calls) == [] and "deleted" not in result.stdout


def test_teardown_skips_the_stacks_that_do_not_exist(tmp_path: Path) -> None:
    """A teardown that stopped half-way can be run again: the stacks already gone are skipped."""
    left = [stack("network"), stack("security")]  # deploy/aws/stacks, reversed
    scenario = {"status": {name: ["UPDATE_COMPLETE"] for name in left}}
    result, calls = run_script("teardown.sh", tmp_path, "qa", scenario, CONFIRM="qa")
    assert result.returncode == 0, result.stderr
    assert deleted_stacks(calls) == left
    assert f"== {stack('cluster')}: not there" in result.stdout


def test_teardown_reads_the_outputs_it_acts_on(tmp_path: Path) -> None:
    """The database's identifier is the data stack's output: with deletion protection on, the
    teardown refuses before deleting anything."""
    scenario = {"outputs": {stack("data"): {"DbInstanceId": "registro-qa-db"}},
                "deletion_protection": "True"}  # fmt: skip
    result, calls = run_script(
        "teardown.sh", tmp_path, "qa", scenario, CONFIRM="qa", FAKE_EXISTING="all"
    )
    assert result.returncode != 0
    assert "database registro-qa-db has deletion protection" in result.stderr
    assert deleted_stacks(calls) == []


def test_teardown_retries_a_throttled_read(tmp_path: Path) -> None:
    """Throttling is retried with back-off (deploy/aws/awscli.py), not taken for "no stack"."""
    result, calls = run_script(
        "teardown.sh", tmp_path, "qa", {"throttle": 1}, CONFIRM="qa", FAKE_EXISTING="all"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("throttled") == 1
    assert deleted_stacks(calls) == [stack(layer) for layer in reversed(stacks.layers())]


def test_a_cloudformation_role_given_runs_every_change_set_as_it(tmp_path: Path) -> None:
    """The infrastructure workflow's role may create change sets only with the bootstrap stack's
    CloudFormation role (its condition on cloudformation:RoleArn): `--role-arn` on each
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html).
    Without the variable, the caller's own permissions are used, as before."""
    role = "arn:aws:iam::123456789012:role/registro-qa-cloudformation"
    result, calls = run_script("deploy.sh", tmp_path / "role", "qa", CLOUDFORMATION_ROLE_ARN=role)
    assert result.returncode == 0, result.stderr
    assert [option(c, "--role-arn") for c in change_sets(calls)] == [role] * len(stacks.layers())
    result, calls = run_script("deploy.sh", tmp_path / "caller", "qa")
    assert result.returncode == 0, result.stderr
    assert not [c for c in change_sets(calls) if "--role-arn" in c["args"]]
