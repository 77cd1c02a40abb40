"""A first deployment rehearsed end to end, in the order a person follows docs/aws.md:
preflight-aws, deploy-aws, bootstrap-k8s, deploy-k8s, a failing canary, a manual abort, a
rollback, a point-in-time restore of the database (restore-aws), teardown-aws, each through its
Makefile target, against moto (CloudFormation, STS, Route 53, ECR, EC2, RDS...) and the
stand-ins of standins/ (what each cannot see: docs/aws.md).

The tests run in file order on one account; each names the behaviour it relies on and its source.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, ZONE, Rehearsal

ENV = "qa"
STACKS = [f"registro-{ENV}-{layer}" for layer in
          ("security", "network", "cluster", "data", "edge", "observability", "baseline",
           "ci")]  # fmt: skip
# Three releases, by the digest of what was pushed under each tag.
GOOD, BAD, SLOW = "a1b2c3d", "b2c3d4e", "c3d4e5f"
QUIET, NEXT = "d4e5f6a", "e5f6a7b"
UNSIGNED = "f6a7b8c"
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
    """What `docker push` does to ECR: put the manifest under the tag; returns its digest.

    ECR's digest is the manifest's sha256, one per content. moto hashes the manifest's layer
    digests, and for a manifest without layers picks one of 101 digests at random (moto
    ecr/models.py, Image._create_digest): two images then shared a digest about once a hundred
    runs, and a canary judged by digest took another image's verdict. So each image has a layer
    of its own content."""
    layer = "sha256:" + hashlib.sha256(f"{tag}/{build}".encode()).hexdigest()
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": MEDIA_TYPE, "layers": [{"digest": layer, "size": 1}]}
    )
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
    a NAT gateway needs an Elastic IP (quota ec2 L-0263D0A3); CreateAddon takes only a version
    DescribeAddonVersions lists for the cluster's version (here EKS offers another kube-proxy).
    All refused in one run, before any stack."""
    catalog = {"kube-proxy": {"v1.36.1-eksbuild.2": ["1.36"]}}
    rehearsal.scenario(delegations={}, quotas={"L-0263D0A3": 0}, addon_versions=catalog)
    result = rehearsal.make("preflight-aws", ENV=ENV)
    assert result.returncode != 0
    assert "is not delegated" in result.stderr
    assert "L-0263D0A3" in result.stderr
    assert re.search(
        r"add-on kube-proxy v\S+ is not offered for Kubernetes 1\.36"
        r" \(EKS offers: v1\.36\.1-eksbuild\.2\)",
        result.stderr,
    ), result.stderr
    assert stack_statuses(rehearsal) == {}


def test_preflight_passes_on_a_ready_account_with_read_only_calls(rehearsal: Rehearsal) -> None:
    rehearsal.scenario(delegations={ZONE: rehearsal.name_servers}, quotas={}, addon_versions=None)
    result = rehearsal.make("preflight-aws", ENV=ENV)
    assert result.returncode == 0, result.stderr
    verbs = {c["args"][1] for c in rehearsal.since_last() if c["tool"] == "aws"}
    assert verbs and all(v.startswith(READ_ONLY) or v == "get" for v in verbs), verbs
    called = {
        (a[0], option(a, "--quota-code"))
        for a in aws_calls(rehearsal.since_last(), "service-quotas")
    }
    assert ("service-quotas", "L-1194D53C") in called and ("service-quotas", "L-7B6409FD") in called
    addons = {
        (option(a, "--addon-name"), option(a, "--kubernetes-version"))
        for a in aws_calls(rehearsal.since_last(), "eks", "describe-addon-versions")
    }
    assert {name for name, _minor in addons} >= {"vpc-cni", "kube-proxy", "coredns"}
    assert {minor for _name, minor in addons} == {"1.36"}


def test_deploy_k8s_before_the_stacks_names_what_is_missing(rehearsal: Rehearsal) -> None:
    """release.sh reads the stacks' outputs; with none there, it must say itself which stack
    or output is missing (issue 8: "exits 1 with no message of its own")."""
    result = rehearsal.make("deploy-k8s", ENV=ENV, TAG=GOOD, identity="deployer")
    assert result.returncode != 0
    own = [line for line in result.stderr.splitlines() if line.startswith("release.sh:")]
    assert own and "registro-qa" in own[0], result.stderr


CLUSTER, DATA = f"registro-{ENV}-cluster", f"registro-{ENV}-data"
CONTROL_PLANE_LOGS = f"/aws/eks/registro-{ENV}/cluster"


def creation(calls: list[dict[str, Any]], stack: str) -> tuple[float, float]:
    """When a stack's creation ran: its change set executed, until its create waiter returned."""
    (executed,) = [c["t"] for c in calls if c["tool"] == "aws"
                   and c["args"][:2] == ["cloudformation", "execute-change-set"]
                   and option(c["args"], "--stack-name") == stack]  # fmt: skip
    (ended,) = [c["t"] for c in calls if c["tool"] == "aws-end"
                and c["args"][2] == "stack-create-complete"
                and option(c["args"], "--stack-name") == stack]  # fmt: skip
    return executed, ended


def test_a_cluster_failing_beside_the_database_fails_the_deploy_naming_it(
    rehearsal: Rehearsal,
) -> None:
    """The cluster and the database import nothing from each other (test_stack_order.py) and are
    created side by side. A failed cluster create (its control-plane log group already exists,
    as CloudFormation answers on AWS) fails the deploy, named, while the database is still
    waited for to the end and nothing after them is started. Their creations overlap: each
    takes minutes (the stand-in's create_seconds), and neither waits for the other."""
    rehearsal.client("logs").create_log_group(logGroupName=CONTROL_PLANE_LOGS)
    rehearsal.scenario(create_seconds={CLUSTER: 2, DATA: 2})

    result = rehearsal.make("deploy-aws", ENV=ENV)

    assert result.returncode != 0
    assert f"deploy.sh: {CLUSTER} failed; fix the causes above" in result.stderr, result.stderr
    assert f"{CLUSTER} did not reach CREATE_COMPLETE; it is ROLLBACK_COMPLETE" in result.stderr
    statuses = stack_statuses(rehearsal)
    assert (statuses[CLUSTER], statuses[DATA]) == ("ROLLBACK_COMPLETE", "CREATE_COMPLETE")
    assert not set(STACKS[4:]) & set(statuses)
    calls = rehearsal.since_last()
    cluster, data = creation(calls, CLUSTER), creation(calls, DATA)
    assert cluster[0] < data[1] and data[0] < cluster[1], (cluster, data)  # they overlap
    rehearsal.client("logs").delete_log_group(logGroupName=CONTROL_PLANE_LOGS)
    rehearsal.scenario(create_seconds={})


def test_deploy_recovers_from_throttling_and_a_stack_left_in_rollback_complete(
    rehearsal: Rehearsal,
) -> None:
    """A stack whose first create failed is ROLLBACK_COMPLETE and "can only be deleted"; a
    throttled DescribeStacks is retried (deploy.sh's header names the CloudFormation pages).
    The ci stack is left so by a create that failed on an existing log group, as on AWS, and
    the cluster by the test above."""
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
    # The database, created beside the failed cluster above, is updated (moto's change sets
    # always hold changes; CloudFormation's would be empty and leave it CREATE_COMPLETE).
    assert {s: stack_statuses(rehearsal)[s] for s in STACKS} == dict.fromkeys(
        STACKS, "CREATE_COMPLETE"
    ) | {DATA: "UPDATE_COMPLETE"}
    calls = rehearsal.since_last()
    first_deploy_call = next(
        i for i, c in enumerate(calls) if c["args"][:2] == ["cloudformation", "describe-stacks"]
    )
    assert all(c["tool"] in ("aws", "dig") for c in calls[:first_deploy_call])  # preflight first
    created = [
        option(a, "--stack-name") for a in aws_calls(calls, "cloudformation", "create-change-set")
    ]
    assert created[:2] + sorted(created[2:4]) + created[4:] == STACKS
    deleted = [
        option(a, "--stack-name") for a in aws_calls(calls, "cloudformation", "delete-stack")
    ]
    assert deleted == [CLUSTER, STACKS[-1]]


def test_the_security_baseline_sends_high_findings_to_the_alarm_topic(
    rehearsal: Rehearsal,
) -> None:
    """The rehearsal's qa has an account of its own (conftest.fill_values enables the baseline, as
    docs/aws.md says for that case): its three EventBridge rules exist on the default bus with the
    alarm topic as their only target. moto stands in for GuardDuty, ECR's registry scanning,
    Config and Security Hub (tests/infra/aws/test_moto_smoke.py: STAND_INS) and delivers no
    event; what the rules match is pinned in test_moto_smoke.py and test_security_baseline.py."""
    events = rehearsal.client("events")
    rules = events.list_rules(NamePrefix=f"registro-{ENV}-")["Rules"]
    assert sorted(r["Name"] for r in rules) == [
        f"registro-{ENV}-{name}"
        for name in ("guardduty-high", "inspector-high", "securityhub-high")
    ]
    outputs = rehearsal.client("cloudformation").describe_stacks(
        StackName=f"registro-{ENV}-observability"
    )["Stacks"][0]["Outputs"]
    topic = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "AlarmTopicArn")
    for rule in rules:
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert [t["Arn"] for t in targets] == [topic]


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
    # The image policies, once policy-controller's chart has installed their CRD.
    assert {"ClusterImagePolicy", "ValidatingAdmissionPolicy"} <= kinds
    policies = [o for o in kube["objects"].values() if o["kind"] == "ClusterImagePolicy"]
    assert all("registro-project/registro" in str(p["spec"]) for p in policies), policies
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
    # The image was verified, by digest, for this environment and commit, before any apply.
    calls = rehearsal.since_last()
    (verify,) = [i for i, c in enumerate(calls) if c["tool"] == "verify"]
    image = rollout["spec"]["template"]["spec"]["containers"][0]["image"]
    assert calls[verify]["args"][2:] == [image, "--env", ENV, "--commit", GOOD]
    applied = [
        i for i, c in enumerate(calls) if c["tool"] == "kubectl" and c["args"][:1] == ["apply"]
    ]
    assert verify < applied[0]


def test_an_image_the_verification_refuses_is_never_applied(rehearsal: Rehearsal) -> None:
    """make deploy-k8s runs deploy/image/verify.py on the pinned digest before it renders: a
    refusal (unsigned, another identity, another commit: tests/infra/supply) stops the release
    with the verification's reason, and nothing reaches the cluster."""
    digest = push(rehearsal, UNSIGNED)
    scenario = json.loads(rehearsal.scenario_path.read_text())
    rehearsal.scenario(unsigned=[digest], digests=scenario["digests"] | {UNSIGNED: digest})
    before = rehearsal.kube()["objects"]["Rollout/registro/registro"]["spec"]
    result = rehearsal.make("deploy-k8s", ENV=ENV, TAG=UNSIGNED, identity="deployer")
    assert result.returncode != 0
    assert "is not signed (stand-in)" in result.stderr, result.stderr[-2000:]
    assert "it is not what our release workflow signed and attested" in result.stderr
    kubectl = [c["args"] for c in rehearsal.since_last() if c["tool"] == "kubectl"]
    assert not [a for a in kubectl if a[:1] == ["apply"]], kubectl
    assert rehearsal.kube()["objects"]["Rollout/registro/registro"]["spec"] == before


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
    status.abort (kube/argo.py's docstring names the sources). Going back after an aborted release
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


def test_a_quiet_canary_stops_the_release_at_once_naming_the_inconclusive_analysis(
    rehearsal: Rehearsal,
) -> None:
    """R1: with no traffic the analysis has nothing to measure; Argo Rollouts then pauses the
    Rollout (argo-rollouts docs/features/analysis.md, "Inconclusive Runs"; message
    InconclusiveAnalysisRun). The release stops on it at once, saying why, instead of waiting out
    ROLLOUT_TIMEOUT (40 min) for the pipeline's rollback."""
    digest = push(rehearsal, QUIET)
    scenario = json.loads(rehearsal.scenario_path.read_text())
    rehearsal.scenario(digests=scenario["digests"] | {QUIET: digest})
    started = time.monotonic()
    quiet = rehearsal.make(
        "deploy-k8s", ENV=ENV, TAG=QUIET, identity="deployer", RELEASE_TRAFFIC_RATE="0"
    )
    assert quiet.returncode != 0
    assert "an analysis was inconclusive" in quiet.stderr, quiet.stdout[-2000:] + quiet.stderr
    assert time.monotonic() - started < 120
    status = rehearsal.kube()["objects"]["Rollout/registro/registro"]["status"]
    assert (status["phase"], status["message"]) == ("Paused", "InconclusiveAnalysisRun")

    back = rehearsal.make("rollback-k8s", ENV=ENV, identity="deployer")
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    image = rehearsal.kube()["objects"]["Rollout/registro/registro"]["spec"]["template"]
    assert image["spec"]["containers"][0]["image"].endswith(scenario["digests"][GOOD])


def test_synthetic_traffic_lets_the_analysis_judge_a_canary(rehearsal: Rehearsal) -> None:
    """R1: the release sends read-only requests through the public name while the canary is
    judged; with them the analysis reaches a verdict and the canary is promoted."""
    log = rehearsal.repo.parent / "traffic.log"
    before = len(log.read_text().splitlines()) if log.exists() else 0
    digest = push(rehearsal, NEXT)
    scenario = json.loads(rehearsal.scenario_path.read_text())
    rehearsal.scenario(digests=scenario["digests"] | {NEXT: digest})
    result = rehearsal.make("deploy-k8s", ENV=ENV, TAG=NEXT, identity="deployer")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rollout = rehearsal.kube()["objects"]["Rollout/registro/registro"]
    assert rollout["status"]["phase"] == "Healthy"
    assert rollout["spec"]["template"]["spec"]["containers"][0]["image"].endswith(digest)
    paths = log.read_text().splitlines()[before:]
    assert len(paths) >= 5 and set(paths) <= {"/data?limit=1", "/version"}, paths


def test_the_release_looks_up_the_alb_the_controller_named(rehearsal: Rehearsal) -> None:
    """R4: the canary's load-balancer-errors metric reads CloudWatch in dimension LoadBalancer =
    app/<name>/<id>, the end of the ALB's ARN (Elastic Load Balancing, "CloudWatch metrics for
    your Application Load Balancer"). Each release finds the ALB by the name the Ingress pins
    (elbv2 describe-load-balancers --names, https://docs.aws.amazon.com/cli/latest/reference/elbv2/describe-load-balancers.html),
    the name the controller gave it (kube/load_balancer.py alb_arn);
    tests/infra/k8s/test_release_script.py pins what it does with the answer (QA's canary has no
    analysis step to carry it)."""
    lookups = aws_calls(rehearsal.calls(), "elbv2", "describe-load-balancers")
    assert lookups and {option(c, "--names") for c in lookups} == {f"registro-{ENV}"}
    assert [a.split("/")[-2] for a in rehearsal.kube()["albs"]] == [f"registro-{ENV}"]


def edge_web_acl(rehearsal: Rehearsal) -> str:
    cloudformation = rehearsal.client("cloudformation")
    (stack,) = cloudformation.describe_stacks(StackName=f"registro-{ENV}-edge")["Stacks"]
    outputs = stack["Outputs"]
    return str(next(o["OutputValue"] for o in outputs if o["OutputKey"] == "WebAclArn"))


def test_a_release_stops_when_the_alb_serves_without_the_edge_stacks_web_acl(
    rehearsal: Rehearsal,
) -> None:
    """R12: the load balancer controller associates the web ACL the Ingress names
    (alb.ingress.kubernetes.io/wafv2-acl-arn, aws-load-balancer-controller v3.5.0
    docs/guide/ingress/annotations.md); when it cannot (AssociateWebACL denied), the ALB serves
    without WAF all the same. Each release asks WAF which web ACL the ALB has
    (GetWebACLForResource: a null WebACL when none, AWS WAFv2 API reference,
    https://docs.aws.amazon.com/waf/latest/APIReference/API_GetWebACLForResource.html) and stops,
    before the migration, on none or on another than the edge stack's WebAclArn; with that one
    it goes on. The releases above passed with it (kube/load_balancer.py associates it)."""
    (alb,) = rehearsal.kube()["albs"]
    expected = edge_web_acl(rehearsal)
    assert rehearsal.kube()["web_acls"] == {alb: expected}
    checks = aws_calls(rehearsal.calls(), "wafv2", "get-web-acl-for-resource")
    assert checks and {option(c, "--resource-arn") for c in checks} == {alb}
    before = rehearsal.kube()["objects"]["Rollout/registro/registro"]["spec"]
    other = f"arn:aws:wafv2:eu-west-1:{ACCOUNT}:regional/webacl/other/{'0' * 8}"
    assert other != expected
    rehearsal.scenario(set_web_acl_denied=True)
    try:
        for found, shown in ((None, "none"), (other, other)):
            state = rehearsal.kube()
            state["web_acls"] = {alb: found} if found else {}
            rehearsal.kube_path.write_text(json.dumps(state))
            result = rehearsal.make(
                "deploy-k8s", ENV=ENV, TAG=GOOD, identity="deployer", WAF_TIMEOUT="0"
            )
            assert result.returncode != 0
            assert f"serves with web ACL '{shown}', not the edge stack's WebAclArn {expected}" in (
                result.stderr
            ), result.stderr[-2000:]
            kubectl = [c["args"] for c in rehearsal.since_last() if c["tool"] == "kubectl"]
            assert not [a for a in kubectl if "app.kubernetes.io/component=migration" in a]
            assert rehearsal.kube()["objects"]["Rollout/registro/registro"]["spec"] == before
    finally:
        rehearsal.scenario(set_web_acl_denied=False)
    running = before["template"]["spec"]["containers"][0]["image"].rsplit("@", 1)[1]
    tag = next(t for t, d in json.loads(rehearsal.scenario_path.read_text())["digests"].items()
               if d == running)  # fmt: skip
    result = rehearsal.make("deploy-k8s", ENV=ENV, TAG=tag, identity="deployer")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"waf: ALB served behind {expected}" in result.stdout
    assert rehearsal.kube()["web_acls"] == {alb: expected}


def test_a_failed_migration_stops_the_release_at_once(rehearsal: Rehearsal) -> None:
    """R6: a failed Job has condition Failed, never Complete
    (https://kubernetes.io/docs/concepts/workloads/controllers/job/#terminal-job-conditions): the
    release stops on it, naming its reason, and the Rollout is untouched."""
    before = rehearsal.kube()["objects"]["Rollout/registro/registro"]["spec"]
    rehearsal.scenario(jobs={"registro-migrate": "Failed"})
    try:
        result = rehearsal.make("deploy-k8s", ENV=ENV, TAG=GOOD, identity="deployer")
    finally:
        rehearsal.scenario(jobs={})
    assert result.returncode != 0
    assert "migration Failed BackoffLimitExceeded" in result.stderr, result.stderr[-2000:]
    assert "timed out" not in result.stderr
    assert rehearsal.kube()["objects"]["Rollout/registro/registro"]["spec"] == before


def test_each_release_refreshes_both_database_secrets_first(rehearsal: Rehearsal) -> None:
    """R5: both ExternalSecrets were annotated force-sync before the migration Job was applied
    (external-secrets.io FAQ, "Can I manually trigger a secret refresh?")."""
    calls = [c["args"] for c in rehearsal.calls() if c["tool"] == "kubectl"]
    last_migration = max(
        i for i, a in enumerate(calls) if "app.kubernetes.io/component=migration" in a
    )
    annotated = {
        a[a.index("externalsecret") + 1]
        for a in calls[:last_migration][-40:]
        if "annotate" in a and "externalsecret" in a
    }
    assert annotated == {"registro-database", "registro-database-owner"}


RESTORE_API = "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreDBInstanceToPointInTime.html"
WRITES = ("restore-", "create-", "modify-", "delete-", "put-", "stop-", "start-", "reboot-")


def source_db(rehearsal: Rehearsal) -> dict[str, Any]:
    rds = rehearsal.client("rds")
    (db,) = rds.describe_db_instances(DBInstanceIdentifier=f"registro-{ENV}")["DBInstances"]
    return dict(db)


def restorable_time(rehearsal: Rehearsal, after_seconds: int = 0) -> str:
    """A whole second inside the source's window (moto: from its creation until now)."""
    created = source_db(rehearsal)["InstanceCreateTime"]
    moment = created.replace(microsecond=0) + timedelta(seconds=1 + after_seconds)
    while datetime.now(UTC) < moment:
        time.sleep(0.2)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def restored_name(moment: str) -> str:
    """restore.py's name for a restore to `moment` (2026-12-01T10:00:00Z: ...-20261201-100000)."""
    stamp = datetime.strptime(moment, "%Y-%m-%dT%H:%M:%SZ")
    return f"registro-{ENV}-restore-{stamp:%Y%m%d-%H%M%S}"


def restore_time_of(name: str) -> str:
    stamp = datetime.strptime(name.rsplit("-restore-", 1)[1], "%Y%m%d-%H%M%S")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def restore_instances(rehearsal: Rehearsal) -> list[str]:
    found = rehearsal.client("rds").describe_db_instances()["DBInstances"]
    return sorted(
        d["DBInstanceIdentifier"] for d in found if "-restore-" in d["DBInstanceIdentifier"]
    )


def aws_writes(calls: list[dict[str, Any]]) -> list[list[str]]:
    return [c["args"] for c in calls if c["tool"] == "aws" and c["args"][1].startswith(WRITES)]


def own_lines(stderr: str) -> list[str]:
    """stderr less make's own closing line."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("make")]


def check_logs(rehearsal: Rehearsal, moment: str, newest: str, outcome: str = "Complete") -> None:
    """What the check Job of a restore to `moment` prints (the stand-in runs no pod)."""
    job = restored_name(moment) + "-check"
    schema = (
        "schema is current (0004)" if outcome == "Complete" else "schema is at 0003, latest is 0004"
    )
    rehearsal.scenario(logs={job: f"{schema}\nnewest change: {newest}"}, jobs={job: outcome})


@pytest.mark.parametrize(
    ("env", "moment", "reason"),
    [
        ("staging", "2026-12-01T10:00:00Z", "unknown environment 'staging'"),
        (ENV, "2026-12-01 10:00", "is not ISO 8601 UTC"),  # the other forms: test_restore.py
        (ENV, "2020-01-01T00:00:00Z", "outside registro-qa's restorable window"),
    ],
)
def test_restore_refuses_a_bad_env_or_time_in_one_line_creating_nothing(
    rehearsal: Rehearsal, env: str, moment: str, reason: str
) -> None:
    """RestoreTime "must be a time in Universal Coordinated Time (UTC) format" and "before the
    latest restorable time" (RESTORE_API); the earliest is the automated backups' RestoreWindow
    (https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreWindow.html). Refused
    before any writing call."""
    result = rehearsal.make("restore-aws", ENV=env, TIME=moment)
    assert result.returncode != 0
    (line,) = own_lines(result.stderr)
    assert reason in line, result.stderr
    assert aws_writes(rehearsal.since_last()) == []
    assert restore_instances(rehearsal) == []


def test_restore_creates_one_instance_with_the_source_settings_and_checks_it(
    rehearsal: Rehearsal,
) -> None:
    """A restore gets "the default security group, the default subnet group, and the default DB
    parameter group" and is single-AZ unless told otherwise (RESTORE_API): the source's are
    passed; single-AZ is asked. Then the data check runs as a Job in the cluster, with the
    Rollout's image, and the restored address."""
    moment = restorable_time(rehearsal)
    check_logs(rehearsal, moment, newest=f"{moment[:-1]}+00:00")
    result = rehearsal.make("restore-aws", ENV=ENV, TIME=moment, RESTORE_POLL_SECONDS="0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    name = restored_name(moment)
    assert restore_instances(rehearsal) == [name]
    (restore,) = aws_calls(rehearsal.since_last(), "rds", "restore-db-instance-to-point-in-time")
    assert option(restore, "--restore-time") == moment
    assert aws_writes(rehearsal.since_last()) == [restore]
    source = source_db(rehearsal)
    (restored,) = rehearsal.client("rds").describe_db_instances(DBInstanceIdentifier=name)[
        "DBInstances"
    ]
    same = ("DBSubnetGroup", "VpcSecurityGroups", "DBParameterGroups", "KmsKeyId",
            "StorageEncrypted", "DBInstanceClass", "EngineVersion")  # fmt: skip
    for key in (*same, "DeletionProtection"):
        assert restored[key] == source[key], key
    assert source["MultiAZ"] and not restored["MultiAZ"]
    tags = {t["Key"]: t["Value"] for t in restored["TagList"]}
    assert tags["restored-from"] == f"registro-{ENV}" and tags["restore-time"] == moment

    job = rehearsal.kube()["objects"][f"Job/registro/{name}-check"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    rollout = rehearsal.kube()["objects"]["Rollout/registro/registro"]
    assert container["image"] == rollout["spec"]["template"]["spec"]["containers"][0]["image"]
    assert {"name": "RESTORED_ADDRESS", "value": restored["Endpoint"]["Address"]} in container[
        "env"
    ]
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "registro"
    assert restored["Endpoint"]["Address"] in result.stdout
    assert f"--new-db-instance-identifier registro-{ENV} " in result.stdout


def test_restore_run_again_finds_the_instance_instead_of_creating_another(
    rehearsal: Rehearsal,
) -> None:
    """Identifiers are unique per account and region (CreateDBInstance's DBInstanceAlreadyExists):
    the name made of the time is how a re-run finds its restore."""
    (name,) = restore_instances(rehearsal)
    check_logs(rehearsal, restore_time_of(name), newest="none")
    result = rehearsal.make(
        "restore-aws", ENV=ENV, TIME=restore_time_of(name), RESTORE_POLL_SECONDS="0"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{name} exists" in result.stdout
    assert aws_writes(rehearsal.since_last()) == []
    assert restore_instances(rehearsal) == [name]


def test_a_failed_check_job_fails_the_restore_loudly(rehearsal: Rehearsal) -> None:
    """`registro migrate --check` exits 1 on a schema behind the release (src/registro/cli.py);
    a Job whose pod fails ends with condition Failed
    (https://kubernetes.io/docs/concepts/workloads/controllers/job/#terminal-job-conditions).
    The verdict on the Job's log (an audit entry after TIME): test_restore.py."""
    (name,) = restore_instances(rehearsal)
    check_logs(rehearsal, restore_time_of(name), newest="none", outcome="Failed")
    result = rehearsal.make(
        "restore-aws", ENV=ENV, TIME=restore_time_of(name), RESTORE_POLL_SECONDS="0"
    )
    assert result.returncode != 0
    assert f"{name}: check Job {name}-check failed (its log above)" in result.stderr, result.stderr
    assert "schema is at 0003, latest is 0004" in result.stdout
    assert "restored and checked" not in result.stdout


def test_the_check_refuses_a_restore_that_differs_or_is_not_available(
    rehearsal: Rehearsal,
) -> None:
    """The db-instance-available waiter (botocore waiters-2.json) succeeds only on `available`;
    a restore must keep the source's encryption (an encrypted instance restores encrypted, with
    its key: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Overview.Encryption.html).
    Two instances stand in for bad restores under the names of two other times."""
    rds, source = rehearsal.client("rds"), source_db(rehearsal)
    bad = {restorable_time(rehearsal, 1): "unencrypted", restorable_time(rehearsal, 2): "stopped"}
    for moment, kind in bad.items():
        rds.create_db_instance(
            DBInstanceIdentifier=restored_name(moment), DBInstanceClass=source["DBInstanceClass"],
            Engine="postgres", EngineVersion=source["EngineVersion"], AllocatedStorage=20,
            DBSubnetGroupName=source["DBSubnetGroup"]["DBSubnetGroupName"],
            VpcSecurityGroupIds=[g["VpcSecurityGroupId"] for g in source["VpcSecurityGroups"]],
            StorageEncrypted=kind != "unencrypted", KmsKeyId=source["KmsKeyId"],
            Tags=[{"Key": "app", "Value": "registro"}, {"Key": "environment", "Value": ENV},
                  {"Key": "restored-from", "Value": f"registro-{ENV}"},
                  {"Key": "restore-time", "Value": moment}],
        )  # fmt: skip
        if kind == "stopped":
            rds.stop_db_instance(DBInstanceIdentifier=restored_name(moment))
    (unencrypted, stopped) = bad
    result = rehearsal.make("restore-aws", ENV=ENV, TIME=unencrypted)
    assert result.returncode != 0
    assert "encryption is (False, None), the source's is (True," in result.stderr, result.stderr
    result = rehearsal.make(
        "restore-aws", ENV=ENV, TIME=stopped, RESTORE_TIMEOUT="0", RESTORE_POLL_SECONDS="0"
    )
    assert result.returncode != 0
    assert "is still stopped, not available, after 0 s" in result.stderr, result.stderr
    assert aws_writes(rehearsal.since_last()) == []


def test_the_runbook_cleanup_deletes_the_restored_instances(rehearsal: Rehearsal) -> None:
    """docs/runbooks/restore-aws.md's cleanup, which teardown-aws also needs: a restored instance
    holds the data stack's subnet group and security group."""
    for name in restore_instances(rehearsal):
        result = subprocess.run(
            ["aws", "rds", "delete-db-instance", "--db-instance-identifier", name,
             "--skip-final-snapshot"], capture_output=True, text=True, check=False,
            env=rehearsal.env, cwd=rehearsal.repo,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert restore_instances(rehearsal) == []


# The EBS CSI driver tags each volume with its claim's namespace and name.
PVC_NAMESPACE = {"Name": "tag:kubernetes.io/created-for/pvc/namespace", "Values": ["monitoring"]}


def external_dns_records(rehearsal: Rehearsal) -> set[str]:
    """What ExternalDNS (policy sync, TXT registry) publishes for the service's name: an alias
    record and its ownership TXT records (external-dns docs/registry/txt.md); the rehearsal has no
    ExternalDNS, so they are created here as it would."""
    name = f"{ENV}.{ZONE}."
    owner = (
        '"heritage=external-dns,external-dns/owner=registro-qa,'
        'external-dns/resource=ingress/registro/registro"'
    )
    changes = [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": name, "Type": "A", "TTL": 60,
                                                   "ResourceRecords": [{"Value": "192.0.2.10"}]}},
        {"Action": "CREATE", "ResourceRecordSet": {"Name": name, "Type": "TXT", "TTL": 300,
                                                   "ResourceRecords": [{"Value": owner}]}},
        {"Action": "CREATE", "ResourceRecordSet": {"Name": f"a-{name}", "Type": "TXT", "TTL": 300,
                                                   "ResourceRecords": [{"Value": owner}]}},
    ]  # fmt: skip
    rehearsal.client("route53").change_resource_record_sets(
        HostedZoneId=rehearsal.zone_id, ChangeBatch={"Changes": changes}
    )
    return {name, f"a-{name}"}


def set_kubernetes_version(rehearsal: Rehearsal, version: str) -> None:
    path = rehearsal.repo / "deploy" / "aws" / "environments" / f"{ENV}.json"
    values = json.loads(path.read_text())
    path.write_text(json.dumps(values | {"KubernetesVersion": version}, indent=2) + "\n")


def add_the_next_minors_row(rehearsal: Rehearsal) -> dict[str, str]:
    """Runbook step 1 in the rehearsal's copy: a 1.37 row in AddonVersions, each of the 1.36
    row's add-ons at a newer build, and EKS offering those for 1.37; returns add-on -> pin."""
    template = rehearsal.repo / "deploy" / "aws" / "templates" / "cluster.yaml"
    text = template.read_text()
    row = re.search(r"\n    '1\.36':\n((?:      .*\n)+)", text)
    assert row, "no 1.36 row in AddonVersions"
    pins = dict(re.findall(r": (v\S+) +# (\S+)\n", row.group(1)))
    bumped = {version: f"{version.split('-')[0]}-eksbuild.99" for version in pins}
    new_row = row.group(1)
    for version, newer in bumped.items():
        new_row = new_row.replace(f": {version} ", f": {newer} ")
    template.write_text(text.replace(row.group(0), f"{row.group(0)}    '1.37':\n{new_row}"))
    rehearsal.scenario(addon_versions={n: {bumped[v]: ["1.37"]} for v, n in pins.items()})
    return {name: bumped[version] for version, name in pins.items()}


def test_the_upgrade_runbook_refuses_a_skipped_minor_and_a_minor_without_addon_pins(
    rehearsal: Rehearsal,
) -> None:
    """docs/runbooks/cluster-upgrade.md, step 1's preflight on the running qa cluster (1.36).
    EKS upgrades one minor at a time
    (https://docs.aws.amazon.com/eks/latest/userguide/update-cluster.html), so 1.38 is refused;
    1.37 without its row of add-on pins is refused; with the row, and EKS offering those pins
    for 1.37 (DescribeAddonVersions), preflight, which deploy-aws runs first, passes having asked
    EKS for each pin at 1.37. The update itself: the next test."""
    environment = rehearsal.repo / "deploy" / "aws" / "environments" / f"{ENV}.json"
    template = rehearsal.repo / "deploy" / "aws" / "templates" / "cluster.yaml"
    before = environment.read_text(), template.read_text()
    try:
        set_kubernetes_version(rehearsal, "1.38")
        result = rehearsal.make("preflight-aws", ENV=ENV)
        assert result.returncode != 0
        assert "runs 1.36; EKS upgrades one minor at a time: set 1.37 first" in result.stderr

        set_kubernetes_version(rehearsal, "1.37")
        result = rehearsal.make("preflight-aws", ENV=ENV)
        assert result.returncode != 0
        assert result.stderr.count("no version pinned for Kubernetes 1.37") >= 6, result.stderr

        pins = add_the_next_minors_row(rehearsal)
        result = rehearsal.make("preflight-aws", ENV=ENV)
        assert result.returncode == 0, result.stderr
        asked = {
            (option(a, "--addon-name"), option(a, "--kubernetes-version"))
            for a in aws_calls(rehearsal.since_last(), "eks", "describe-addon-versions")
        }
        assert asked == {(name, "1.37") for name in pins}
    finally:
        environment.write_text(before[0])
        template.write_text(before[1])
        rehearsal.scenario(addon_versions=None)


def test_the_upgrade_runbook_moves_the_control_plane_then_the_addons_and_nodes_in_order(
    rehearsal: Rehearsal,
) -> None:
    """docs/runbooks/cluster-upgrade.md walked on qa at 1.36 with its commands: the 1.37 row and
    KubernetesVersion 1.37 (step 1), then `make deploy-aws` (preflight, then deploy.sh's change
    sets). The cluster stack's update, read from its events as DescribeStackEvents shows them,
    goes in the order the template's references and DependsOn give CloudFormation
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-dependson.html)
    and the runbook states: the control plane first (the EKS user guide, "Update existing
    cluster to new Kubernetes version": control plane first, one minor at a time, nodes after it,
    never newer: https://docs.aws.amazon.com/eks/latest/userguide/update-cluster.html), then
    vpc-cni and kube-proxy, which reference only the cluster, vpc-cni before the node groups
    (DependsOn), the node groups at 1.37, and the add-ons that run on nodes after them; each
    add-on at the new row's pin. `aws eks describe-cluster` then answers 1.37."""
    set_kubernetes_version(rehearsal, "1.37")
    pins = add_the_next_minors_row(rehearsal)

    result = rehearsal.make("deploy-aws", ENV=ENV)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    calls = rehearsal.since_last()
    first_change_set = next(
        i for i, c in enumerate(calls) if c["args"][:2] == ["cloudformation", "create-change-set"]
    )
    asked = [
        option(a, "--kubernetes-version")
        for a in aws_calls(calls[:first_change_set], "eks", "describe-addon-versions")
    ]
    assert asked == ["1.37"] * len(pins)  # preflight checked the new row before any change
    assert stack_statuses(rehearsal)[CLUSTER] == "UPDATE_COMPLETE"
    events = rehearsal.client("cloudformation").describe_stack_events(StackName=CLUSTER)
    events = events["StackEvents"]  # newest first
    started = next(
        i for i, e in enumerate(events)
        if e["LogicalResourceId"] == CLUSTER and e["ResourceStatus"] == "UPDATE_IN_PROGRESS"
    )  # fmt: skip
    updated = [
        (e["LogicalResourceId"], json.loads(e["ResourceProperties"]))
        for e in reversed(events[:started])
        if e["ResourceStatus"] == "UPDATE_COMPLETE" and e["LogicalResourceId"] != CLUSTER
    ]
    order = [name for name, _ in updated]
    properties = dict(updated)
    assert order[0] == "Cluster" and properties["Cluster"]["Version"] == "1.37", order
    addons = {p["AddonName"]: p["AddonVersion"] for p in properties.values() if "AddonName" in p}
    assert addons == pins
    node_groups = [name for name in order if name.startswith("NodeGroup")]
    assert len(node_groups) == 3
    assert {properties[name]["Version"] for name in node_groups} == {"1.37"}
    position = {name: i for i, name in enumerate(order)}
    nodes = [position[name] for name in node_groups]
    assert position["VpcCniAddon"] < min(nodes), order
    assert position["Cluster"] < position["KubeProxyAddon"], order
    on_nodes = ("CoreDnsAddon", "MetricsServerAddon", "EbsCsiDriverAddon",
                "CloudWatchObservabilityAddon")  # fmt: skip
    assert max(nodes) < min(position[name] for name in on_nodes), order
    version = subprocess.run(
        ["aws", "eks", "describe-cluster", "--name", f"registro-{ENV}", "--query",
         "cluster.version", "--output", "text"],
        capture_output=True, text=True, check=True, env=rehearsal.env,
    )  # fmt: skip
    assert version.stdout.strip() == "1.37"


def test_teardown_removes_the_controllers_resources_before_the_stacks(rehearsal: Rehearsal) -> None:
    """The ALB, created by the load balancer controller, holds interfaces in the VPC: it must be
    gone (Ingress deleted, finalizer done) before the network stack can be deleted
    (https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/ingress/annotations/)."""
    assert rehearsal.kube()["albs"], "the release created no ALB to tear down"
    ec2 = rehearsal.client("ec2")
    volumes = ec2.describe_volumes(Filters=[PVC_NAMESPACE])["Volumes"]
    assert len(volumes) == 2, "bootstrap made no Prometheus and Alertmanager volumes"
    published = external_dns_records(rehearsal)
    rehearsal.scenario(externaldns_race=True)
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
    # R9: no EBS volume of the platform outlives the cluster (they bill by the GB-month).
    assert ec2.describe_volumes(Filters=[PVC_NAMESPACE])["Volumes"] == []
    # ExternalDNS raced the record deletion; what it left is gone all the same.
    zone = rehearsal.client("route53").list_resource_record_sets(HostedZoneId=rehearsal.zone_id)
    left = {r["Name"] for r in zone["ResourceRecordSets"]}
    assert not left & published, left
    assert ACCOUNT  # the rehearsal's account, not a documentation one
