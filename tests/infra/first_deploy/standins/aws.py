"""`aws` for the rehearsal: the real awscli against the moto server, except where moto lacks the
service or where the rehearsal injects a documented failure. Every call is recorded.

Answered here (moto has no such API, or nothing behind it):
- `eks update-kubeconfig --name N`: a context for cluster N if the cluster stack exports that
  name (EKS answers ResourceNotFoundException otherwise), kept in the Kubernetes stand-in's state.
- `service-quotas get-service-quota` / `get-aws-default-service-quota` for codes other than moto's
  VPC ones: the documented defaults (QUOTA_DEFAULTS), overridable by the scenario.
- `resourcegroupstaggingapi get-resources` for load balancers: the ALBs the load balancer
  controller stand-in (kube/load_balancer.py) holds, tagged `elbv2.k8s.aws/cluster` as the
  controller tags them
  (https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/deploy/configurations/).
- `ec2 describe-security-groups` with the controller's tag: the ALB's security groups, likewise.
- `elbv2 describe-load-balancers --names N`: those ALBs by name; none of that name is the error
  ELBv2 answers, `LoadBalancerNotFound`
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_DescribeLoadBalancers.html).
  With `--query 'LoadBalancers[0].LoadBalancerArn' --output text`, the ARN alone.
- `wafv2 get-web-acl-for-resource --resource-arn A`: the web ACL the load balancer controller
  stand-in associated with ALB A (kube/load_balancer.py, state "web_acls"), or a null WebACL
  when it has none
  (https://docs.aws.amazon.com/waf/latest/APIReference/API_GetWebACLForResource.html: "If there
  is no associated resource, WAF returns a null web ACL"; the CLI's --output text prints None);
  an ALB that does not exist is WAFNonexistentItemException. With `--query 'WebACL.ARN' --output
  text`, the ARN alone.
- `rds describe-db-instance-automated-backups`: moto's answer lacks RestoreWindow, the only place
  RDS gives a DB instance's earliest restorable time (DescribeDBInstances has only
  LatestRestorableTime; https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreWindow.html).
  Answered from moto's instance: EarliestTime its creation, LatestTime its LatestRestorableTime
  (moto: now; RDS: typically 5 minutes ago), or the scenario's "restore_window".
- `eks describe-addon-versions --addon-name N --kubernetes-version V`: moto has no EKS add-on
  catalog. Answered from ADDON_VERSIONS (or the scenario's "addon_versions", same shape) in
  DescribeAddonVersions' shape, newest first: {"addons": [{"addonName", "addonVersions":
  [{"addonVersion", "compatibilities": [{"clusterVersion", "defaultVersion"}]}]}]}
  (https://docs.aws.amazon.com/eks/latest/APIReference/API_DescribeAddonVersions.html); only
  the versions compatible with V, as the filter does.
- `eks describe-cluster --name N`: the cluster stack that exports that ClusterName, its version
  the stack's KubernetesVersion (cluster.version); none is EKS's ResourceNotFoundException
  (https://docs.aws.amazon.com/eks/latest/APIReference/API_DescribeCluster.html). With
  `--query cluster.version --output text` (the upgrade runbook's check), the version alone.
Injected (scenario "externaldns_race": true): the first `route53 change-resource-record-sets`
finds ExternalDNS (policy sync, its Ingress deleted) has just deleted the same records: they are
deleted here first and the batch fails whole, as Route 53 answers a DELETE of a record that is
gone: `InvalidChangeBatch: Tried to delete resource record set [name=..., type=...] but it was not
found` (boto/boto#2887 quotes the answer; a batch is all or nothing:
https://docs.aws.amazon.com/Route53/latest/APIReference/API_ChangeResourceRecordSets.html).
Injected (scenario "throttle_describe_stacks": N): the first N DescribeStacks calls fail with
`Throttling: Rate exceeded`, as CloudFormation answers bursts
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/troubleshooting.html).
Timed (scenario "create_seconds": {stack: S}): `cloudformation wait stack-create-complete` for that
stack returns S seconds later at the earliest, as a stack takes minutes to create (moto creates
it within ExecuteChangeSet); every call is logged with its start time "t", and each wait again
when it ends, as tool "aws-end".
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# Service Quotas defaults, from each service's quota page (preflight.py names them).
QUOTA_DEFAULTS = {
    ("ec2", "L-0263D0A3"): 5.0,  # EC2-VPC Elastic IPs
    ("ec2", "L-1216C47A"): 32.0,  # Running On-Demand Standard instances, vCPUs
    ("eks", "L-1194D53C"): 100.0,  # Clusters
    ("rds", "L-7B6409FD"): 40.0,  # DB instances
}

# What EKS offered, add-on -> version -> the Kubernetes minors it is compatible with (newest
# first): the versions a 1.31 -> 1.36 upgrade of September 2026 recorded per minor (the EKS user
# guide's per-version tables, e.g. managing-kube-proxy.html, stop at 1.34 in our copy).
ADDON_VERSIONS: dict[str, dict[str, list[str]]] = {
    "vpc-cni": {"v1.22.4-eksbuild.3": ["1.36", "1.35", "1.34"]},
    "kube-proxy": {"v1.36.0-eksbuild.25": ["1.36"], "v1.35.3-eksbuild.29": ["1.35"],
                   "v1.34.6-eksbuild.29": ["1.34"]},
    "coredns": {"v1.14.3-eksbuild.23": ["1.36"], "v1.13.2-eksbuild.31": ["1.35"],
                "v1.12.4-eksbuild.38": ["1.34"]},
    "amazon-cloudwatch-observability": {"v6.7.0-eksbuild.1": ["1.36", "1.35", "1.34"]},
    "metrics-server": {"v0.9.0-eksbuild.11": ["1.36", "1.35", "1.34"]},
    "aws-ebs-csi-driver": {"v1.66.0-eksbuild.1": ["1.36", "1.35", "1.34"]},
}  # fmt: skip


def addon_versions(catalog: dict[str, dict[str, list[str]]], name: str, minor: str) -> Any:
    versions = [
        {"addonVersion": version, "architecture": ["amd64", "arm64"],
         "compatibilities": [{"clusterVersion": minor, "platformVersions": ["*"],
                              "defaultVersion": i == 0}]}
        for i, version in enumerate(v for v, minors in catalog.get(name, {}).items()
                                    if minor in minors)
    ]  # fmt: skip
    addons = [{"addonName": name, "type": "networking", "addonVersions": versions}]
    return {"addons": addons if name in catalog else []}


def load(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text()) if Path(path).exists() else {}


def save(path: str, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=1))


def record(args: list[str], tool: str = "aws") -> None:
    with open(os.environ["STANDIN_LOG"], "a") as log:
        log.write(json.dumps({"tool": tool, "args": args, "t": time.time()}) + "\n")


def option(args: list[str], name: str, default: str = "") -> str:
    return args[args.index(name) + 1] if name in args else default


def real(args: list[str]) -> None:
    """The pinned awscli itself, in this process (one interpreter start, not two)."""
    from awscli.clidriver import main as awscli

    sys.argv = ["aws", *args]
    sys.exit(awscli())


def fail(message: str, code: int = 255) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def main(args: list[str]) -> None:
    record(args)
    scenario_path, kube_path = os.environ["STANDIN_SCENARIO"], os.environ["STANDIN_KUBE"]
    scenario = load(scenario_path)
    command = tuple(args[:2])
    if command == ("cloudformation", "describe-stacks") and scenario.get(
        "throttle_describe_stacks", 0
    ):
        scenario["throttle_describe_stacks"] -= 1
        save(scenario_path, scenario)
        fail("An error occurred (Throttling) when calling the DescribeStacks operation: "
             "Rate exceeded")  # fmt: skip
    if command == ("route53", "change-resource-record-sets") and scenario.get("externaldns_race"):
        scenario["externaldns_race"] = False
        save(scenario_path, scenario)
        import boto3

        batch = json.loads(Path(option(args, "--change-batch").removeprefix("file://")).read_text())
        boto3.client("route53").change_resource_record_sets(
            HostedZoneId=option(args, "--hosted-zone-id"), ChangeBatch=batch
        )
        first = batch["Changes"][0]["ResourceRecordSet"]
        fail(
            "An error occurred (InvalidChangeBatch) when calling the ChangeResourceRecordSets "
            f"operation: [Tried to delete resource record set [name='{first['Name']}', "
            f"type='{first['Type']}'] but it was not found]"
        )
    if command == ("eks", "describe-cluster"):
        name = option(args, "--name")
        import boto3

        for stack in boto3.client("cloudformation").describe_stacks()["Stacks"]:
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
            if outputs.get("ClusterName") == name:
                values = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
                cluster = {"name": name, "version": values["KubernetesVersion"], "status": "ACTIVE"}
                query = option(args, "--query") == "cluster.version"
                print(cluster["version"] if query else json.dumps({"cluster": cluster}))
                return
        fail(
            "An error occurred (ResourceNotFoundException) when calling the DescribeCluster "
            f"operation: No cluster found for name: {name}."
        )
    if command == ("eks", "update-kubeconfig"):
        name = option(args, "--name")
        import boto3

        exports = boto3.client("cloudformation").list_exports()["Exports"]
        if not any(e["Name"].endswith("-ClusterName") and e["Value"] == name for e in exports):
            fail(
                "An error occurred (ResourceNotFoundException) when calling the DescribeCluster "
                f"operation: No cluster found for name: {name}."
            )
        kube = load(kube_path)
        kube["context"] = name
        save(kube_path, kube)
        print(f"Added new context arn:aws:eks:{os.environ['AWS_REGION']}:0:cluster/{name}")
        return
    if command == ("eks", "describe-addon-versions"):
        catalog = scenario.get("addon_versions") or ADDON_VERSIONS
        found = addon_versions(catalog, option(args, "--addon-name"),
                               option(args, "--kubernetes-version"))  # fmt: skip
        print(json.dumps(found))
        return
    if command == ("rds", "describe-db-instance-automated-backups"):
        import boto3

        identifier = option(args, "--db-instance-identifier")
        found = boto3.client("rds").describe_db_instances(DBInstanceIdentifier=identifier)
        db = found["DBInstances"][0]
        window = scenario.get("restore_window") or {
            "EarliestTime": db["InstanceCreateTime"].isoformat(),
            "LatestTime": db["LatestRestorableTime"].isoformat(),
        }
        backup = {"DBInstanceIdentifier": identifier, "Status": "active", "RestoreWindow": window}
        print(json.dumps({"DBInstanceAutomatedBackups": [backup]}))
        return
    if command[0] == "service-quotas" and option(args, "--service-code") != "vpc":
        key = (option(args, "--service-code"), option(args, "--quota-code"))
        value = scenario.get("quotas", {}).get(key[1], QUOTA_DEFAULTS.get(key))
        if value is None:
            fail("An error occurred (NoSuchResourceException): quota not found")
        print(json.dumps({"Quota": {"ServiceCode": key[0], "QuotaCode": key[1], "Value": value}}))
        return
    if command == (
        "resourcegroupstaggingapi",
        "get-resources",
    ) and "elasticloadbalancing" in " ".join(args):
        albs = load(kube_path).get("albs", [])
        print("\t".join(albs))
        return
    if command == ("ec2", "describe-security-groups") and "elbv2.k8s.aws/cluster" in " ".join(args):
        print("\t".join(f"sg-alb{i}" for i, _ in enumerate(load(kube_path).get("albs", []))))
        return
    if command == ("wafv2", "get-web-acl-for-resource"):
        kube, resource = load(kube_path), option(args, "--resource-arn")
        if resource not in kube.get("albs", []):
            fail("An error occurred (WAFNonexistentItemException) when calling the "
                 "GetWebACLForResource operation: AWS WAF couldn't perform the operation "
                 "because your resource doesn't exist.")  # fmt: skip
        web_acl = kube.get("web_acls", {}).get(resource)
        if option(args, "--query") == "WebACL.ARN":
            print(web_acl or "None")
        else:
            name, acl_id = web_acl.split("/")[-2:] if web_acl else ("", "")
            found = {"ARN": web_acl, "Name": name, "Id": acl_id}
            print(json.dumps({"WebACL": found} if web_acl else {}))
        return
    if command == ("elbv2", "describe-load-balancers"):
        names = option(args, "--names").split(",")
        found = [a for a in load(kube_path).get("albs", []) if a.split("/")[-2] in names]
        if len(found) < len(names):
            fail("An error occurred (LoadBalancerNotFound) when calling the DescribeLoadBalancers "
                 "operation: One or more load balancers not found", 254)  # fmt: skip
        if option(args, "--query") == "LoadBalancers[0].LoadBalancerArn":
            print(found[0])
        else:
            balancers = [
                {"LoadBalancerArn": a, "LoadBalancerName": a.split("/")[-2]} for a in found
            ]
            print(json.dumps({"LoadBalancers": balancers}))
        return
    if command == ("cloudformation", "wait"):
        time.sleep(scenario.get("create_seconds", {}).get(option(args, "--stack-name"), 0))
        try:
            real(args)
        finally:
            record(args, tool="aws-end")
    real(args)


if __name__ == "__main__":
    main(sys.argv[1:])
