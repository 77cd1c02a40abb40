"""A first deployment rehearsed end to end, in the order a person follows docs/aws.md:
preflight-aws, deploy-aws, bootstrap-k8s, deploy-k8s, a failing canary, a manual abort, a
rollback, teardown-aws, each through its Makefile target, against moto (CloudFormation, STS,
Route 53, ECR, EC2, RDS...) and the stand-ins of standins/ (what each cannot see: docs/aws.md).

The tests run in file order on one account; each names the behaviour it relies on and its source.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, ZONE, Rehearsal

ENV = "qa"
STACKS = [f"registro-{ENV}-{layer}" for layer in
          ("security", "network", "cluster", "data", "edge", "observability", "ci")]  # fmt: skip
# Three releases, by the digest of what was pushed under each tag.
GOOD, BAD, SLOW = "a1b2c3d", "b2c3d4e", "c3d4e5f"
READ_ONLY = ("get-", "describe-", "list-")


def aws_calls(calls: list[dict[str, Any]], *command: str) -> list[list[str]]:
    return [
        c["args"]
        for c in calls
        if c["tool"] == "aws" and tuple(c["args"][: len(command)]) == command
    ]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def subresource(args: list[str]) -> str:
    """The value of kubectl's --subresource, in either of its spellings."""
    for i, arg in enumerate(args):
        if arg.startswith("--subresource="):
            return arg.split("=", 1)[1]
        if arg == "--subresource":
            return args[i + 1]
    return ""


def vpc_leftovers(rehearsal: Rehearsal) -> str:
    """What still holds a VPC (for a failure's message)."""
    ec2 = rehearsal.client("ec2")
    found = {
        "groups": [(g["GroupId"], g["GroupName"], g.get("VpcId")) for g in
                   ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"],
        "subnets": [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]],
        "interfaces": [i["NetworkInterfaceId"] for i in
                       ec2.describe_network_interfaces()["NetworkInterfaces"]],
        "route tables": [t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]],
        "gateways": [g["InternetGatewayId"] for g in
                     ec2.describe_internet_gateways()["InternetGateways"]],
    }  # fmt: skip
    return "\nleft in EC2: " + json.dumps(found)


def stack_statuses(rehearsal: Rehearsal) -> dict[str, str]:
    stacks = rehearsal.client("cloudformation").describe_stacks()["Stacks"]
    return {s["StackName"]: s["StackStatus"] for s in stacks}


MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def push(rehearsal: Rehearsal, tag: str, build: str = "first") -> str:
    """What `docker push` does to ECR: put the manifest under the tag; returns its digest."""
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_TYPE, "tag": tag, "build": build})
    image = rehearsal.client("ecr").put_image(
        repositoryName=f"registro-{ENV}", imageManifest=manifest, imageTag=tag,
        imageManifestMediaType=MEDIA_TYPE,
    )  # fmt: skip
    return str(image["image"]["imageId"]["imageDigest"])


def test_preflight_refuses_an_undelegated_zone_and_a_short_quota_creating_nothing(
    rehearsal: Rehearsal,
) -> None:
    """Route 53 serves a zone only once the parent delegates to its name servers
    (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/migrate-dns-domain-in-use.html);
    a NAT gateway needs an Elastic IP (quota ec2 L-0263D0A3). Both refused before any stack."""
    rehearsal.scenario(delegations={}, quotas={"L-0263D0A3": 0})
    result = rehearsal.make("preflight-aws", ENV=ENV)
    assert result.returncode != 0
    assert "is not delegated" in result.stderr
    assert "L-0263D0A3" in result.stderr
    assert stack_statuses(rehearsal) == {}


def test_preflight_passes_on_a_ready_account_with_read_only_calls(rehearsal: Rehearsal) -> None:
    rehearsal.scenario(delegations={ZONE: rehearsal.name_servers}, quotas={})
    result = rehearsal.make("preflight-aws", ENV=ENV)
    assert result.returncode == 0, result.stderr
    verbs = {c["args"][1] for c in rehearsal.since_last() if c["tool"] == "aws"}
    assert verbs and all(v.startswith(READ_ONLY) or v == "get" for v in verbs), verbs
    called = {
        (a[0], option(a, "--quota-code"))
        for a in aws_calls(rehearsal.since_last(), "service-quotas")
    }
    assert ("service-quotas", "L-1194D53C") in called and ("service-quotas", "L-7B6409FD") in called


def test_deploy_k8s_before_the_stacks_names_what_is_missing(rehearsal: Rehearsal) -> None:
    """release.sh reads the stacks' outputs; with none there, it must say itself which stack
    or output is missing (issue 8: "exits 1 with no message of its own")."""
    result = rehearsal.make("deploy-k8s", ENV=ENV, TAG=GOOD, identity="deployer")
    assert result.returncode != 0
    own = [line for line in result.stderr.splitlines() if line.startswith("release.sh:")]
    assert own and "registro-qa" in own[0], result.stderr


def test_deploy_recovers_from_throttling_and_a_stack_left_in_rollback_complete(
    rehearsal: Rehearsal,
) -> None:
    """A stack whose first create failed is ROLLBACK_COMPLETE and "can only be deleted"; a
    throttled DescribeStacks is retried (deploy.sh's header names the CloudFormation pages).
    The ci stack is left so by a create that failed on an existing log group, as on AWS."""
    logs = rehearsal.client("logs")
    logs.create_log_group(logGroupName="/rehearsal/taken")
    cloudformation = rehearsal.client("cloudformation")
    cloudformation.create_change_set(
        StackName=STACKS[-1], ChangeSetName="failed-before", ChangeSetType="CREATE",
        TemplateBody=json.dumps({"Resources": {"Taken": {"Type": "AWS::Logs::LogGroup",
                                "Properties": {"LogGroupName": "/rehearsal/taken"}}}}),
    )  # fmt: skip
    cloudformation.execute_change_set(StackName=STACKS[-1], ChangeSetName="failed-before")
    assert stack_statuses(rehearsal)[STACKS[-1]] == "ROLLBACK_COMPLETE"
    rehearsal.scenario(throttle_describe_stacks=3)

    result = rehearsal.make("deploy-aws", ENV=ENV)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr.count("throttled") == 3
    assert {s: stack_statuses(rehearsal)[s] for s in STACKS} == dict.fromkeys(
        STACKS, "CREATE_COMPLETE"
    )
    calls = rehearsal.since_last()
    first_deploy_call = next(
        i for i, c in enumerate(calls) if c["args"][:2] == ["cloudformation", "describe-stacks"]
    )
    assert all(c["tool"] in ("aws", "dig") for c in calls[:first_deploy_call])  # preflight first
    created = [
        option(a, "--stack-name") for a in aws_calls(calls, "cloudformation", "create-change-set")
    ]
    assert created == STACKS
    deleted = [
        option(a, "--stack-name") for a in aws_calls(calls, "cloudformation", "delete-stack")
    ]
    assert deleted == [STACKS[-1]]


def test_an_immutable_tag_cannot_be_pushed_twice(rehearsal: Rehearsal) -> None:
    """ECR refuses a second image under an IMMUTABLE tag (ImageTagAlreadyExistsException,
    https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html; moto names
    it ImageAlreadyExistsException): a re-run of a publish job must find the tag there rather
    than push again, and the tag keeps the bytes first pushed."""
    first = push(rehearsal, GOOD)
    rehearsal.scenario(digests={GOOD: first})
    with pytest.raises(ClientError, match=r"Image(Tag)?AlreadyExistsException"):
        push(rehearsal, GOOD, build="rebuilt")
    images = rehearsal.client("ecr").describe_images(
        repositoryName=f"registro-{ENV}", imageIds=[{"imageTag": GOOD}]
    )
    assert images["imageDetails"][0]["imageDigest"] == first


def test_bootstrap_installs_the_platform_as_the_cluster_admin(rehearsal: Rehearsal) -> None:
    """The manifests' kinds exist only once their charts' CRDs are installed; the deployer's
    namespaced Role is applied here, by the admin (INTERFACES: bootstrap-k8s)."""
    result = rehearsal.make("bootstrap-k8s", ENV=ENV, identity="admin")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    kube = rehearsal.kube()
    assert {"Rollout", "AnalysisTemplate", "ExternalSecret"} <= set(kube["crds"])
    kinds = {o["kind"] for o in kube["objects"].values()}
    assert {"Role", "RoleBinding"} <= kinds
    cluster = [a for a in aws_calls(rehearsal.since_last(), "eks", "update-kubeconfig")]
    assert cluster and option(cluster[0], "--name") == f"registro-{ENV}"


def test_the_deployer_releases_a_good_canary(rehearsal: Rehearsal) -> None:
    """As the deploy role (group registro-deployer, no cluster-wide policy): every kind the
    release applies must be granted by the namespace Role, or the API server refuses it."""
    result = rehearsal.make("deploy-k8s", ENV=ENV, TAG=GOOD, identity="deployer")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rollout = rehearsal.kube()["objects"]["Rollout/registro/registro"]
    assert rollout["status"]["phase"] == "Healthy"
    assert rollout["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        json.loads(rehearsal.scenario_path.read_text())["digests"][GOOD]
    )
    applies = [
        c["args"]
        for c in rehearsal.since_last()
        if c["tool"] == "kubectl" and c["args"][:1] == ["apply"]
    ]
    assert [a[a.index("--selector") + 1] for a in applies if "--selector" in a][-2:] == [
        "app.kubernetes.io/component=migration", "app.kubernetes.io/component=server",
    ]  # fmt: skip


def test_a_failing_canary_is_aborted_and_the_release_fails(rehearsal: Rehearsal) -> None:
    """Argo Rollouts aborts a canary whose analysis fails: phase Degraded, stable untouched."""
    digest = push(rehearsal, BAD)
    scenario = json.loads(rehearsal.scenario_path.read_text())
    rehearsal.scenario(canary={digest: "fail"}, digests=scenario["digests"] | {BAD: digest})
    result = rehearsal.make("deploy-k8s", ENV=ENV, TAG=BAD, identity="deployer")
    assert result.returncode != 0
    assert "degraded" in result.stderr.lower()
    rollout = rehearsal.kube()["objects"]["Rollout/registro/registro"]
    assert rollout["status"]["phase"] == "Degraded"


def test_a_manual_abort_uses_the_status_subresource_and_rollback_returns_to_stable(
    rehearsal: Rehearsal,
) -> None:
    """A Rollout's status is a subresource: only `kubectl patch --subresource=status` sets
    status.abort (kube.py's docstring names the sources). Going back after an aborted release
    must return to status.stableRS, not to "the highest revision below current" (that is the
    aborted release itself)."""
    digest = push(rehearsal, SLOW)
    scenario = json.loads(rehearsal.scenario_path.read_text())
    rehearsal.scenario(
        canary=scenario["canary"] | {digest: "pause"}, digests=scenario["digests"] | {SLOW: digest}
    )
    paused = rehearsal.make(
        "deploy-k8s", ENV=ENV, TAG=SLOW, identity="deployer", ROLLOUT_TIMEOUT="1"
    )
    assert paused.returncode != 0
    assert rehearsal.kube()["objects"]["Rollout/registro/registro"]["status"]["phase"] == "Paused"

    result = rehearsal.make("rollback-k8s", ENV=ENV, identity="deployer")

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    patches = [
        c["args"] for c in rehearsal.since_last() if c["tool"] == "kubectl" and "patch" in c["args"]
    ]
    aborts = [p for p in patches if "abort" in " ".join(p)]
    assert aborts and all(subresource(p) == "status" for p in aborts), aborts
    rollout = rehearsal.kube()["objects"]["Rollout/registro/registro"]
    assert rollout["status"]["phase"] == "Healthy"
    image = rollout["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(scenario["digests"][GOOD]), image


def test_teardown_removes_the_controllers_resources_before_the_stacks(rehearsal: Rehearsal) -> None:
    """The ALB, created by the load balancer controller, holds interfaces in the VPC: it must be
    gone (Ingress deleted, finalizer done) before the network stack can be deleted
    (https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/ingress/annotations/)."""
    assert rehearsal.kube()["albs"], "the release created no ALB to tear down"
    result = rehearsal.make("teardown-aws", ENV=ENV, CONFIRM=ENV, identity="admin")
    assert result.returncode == 0, (
        result.stdout[-3000:] + result.stderr[-3000:] + vpc_leftovers(rehearsal)
    )
    calls = rehearsal.since_last()
    ingress_deleted = next(
        i for i, c in enumerate(calls) if c["tool"] == "kubectl" and "ingress" in c["args"]
    )
    first_stack_deleted = next(
        i for i, c in enumerate(calls) if c["args"][:2] == ["cloudformation", "delete-stack"]
    )
    assert ingress_deleted < first_stack_deleted
    assert rehearsal.kube()["albs"] == []
    deleted = [
        option(a, "--stack-name") for a in aws_calls(calls, "cloudformation", "delete-stack")
    ]
    assert deleted == STACKS[::-1]
    assert not [s for s in STACKS if s in stack_statuses(rehearsal)]
    assert "Kept on purpose" in result.stdout and "TrailBucket" in result.stdout
    assert ACCOUNT  # the rehearsal's account, not a documentation one
