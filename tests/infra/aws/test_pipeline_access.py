"""Who reaches the cluster's API server, and as whom (docs/decisions/pipeline-cluster-access.md)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from deploy.aws import stacks

# Amazon EKS service quotas, "Public endpoint access CIDR ranges per cluster" (default 40):
# https://docs.aws.amazon.com/eks/latest/userguide/service-quotas.html
EKS_PUBLIC_CIDR_LIMIT = 40
DECISION = stacks.HERE.parents[1] / "docs" / "decisions" / "pipeline-cluster-access.md"


def the(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (found,) = [r for r in template["Resources"].values() if r["Type"] == resource_type]
    return found


def test_public_endpoint_open_by_default_with_iam_authentication(
    templates: dict[str, Any],
) -> None:
    """GitHub-hosted runners' addresses cannot be allow-listed: GitHub publishes thousands of
    `actions` CIDRs through its meta API, changes them without notice and does "not recommend
    allowing by IP address" (GitHub Docs, "About GitHub's IP addresses"). So the public endpoint
    defaults to 0.0.0.0/0, and what keeps it closed is authentication: with AuthenticationMode
    API, EKS grants Kubernetes access only through access entries for IAM principals (Amazon EKS
    User Guide, "Grant IAM users and roles access to Kubernetes APIs"); the private endpoint
    stays on for the nodes."""
    cluster = templates["cluster"]
    assert cluster["Parameters"]["PublicEndpointCidrs"]["Default"] == "0.0.0.0/0"
    config = the(cluster, "AWS::EKS::Cluster")["Properties"]
    assert config["AccessConfig"]["AuthenticationMode"] == "API"
    assert config["ResourcesVpcConfig"]["EndpointPrivateAccess"] is True
    assert DECISION.is_file()
    text = DECISION.read_text()
    for option in ("IAM authentication", "CIDR allow-list", "Private endpoint only"):
        assert option in text, option


@pytest.mark.parametrize("env", stacks.ENVIRONMENTS)
def test_each_environments_endpoint_list_is_one_eks_accepts(env: str) -> None:
    """Empty (public endpoint off) or at most the EKS limit of canonical IPv4 blocks."""
    value = stacks.environment(env)["PublicEndpointCidrs"]
    blocks = [b for b in value.split(",") if b]
    assert len(blocks) <= EKS_PUBLIC_CIDR_LIMIT
    for block in blocks:
        assert str(ipaddress.IPv4Network(block, strict=True)) == block


def test_operators_are_administrators_through_one_declared_access_entry(
    templates: dict[str, Any],
) -> None:
    """AmazonEKSClusterAdminPolicy at cluster scope is what `make bootstrap-k8s` needs (it
    installs CRDs, cluster roles and controllers). It is granted to AdminRoleArn by an access entry
    in the template, and the creator's implicit entry is off: "An IAM principal can't be included
    in more than one access entry" (awsdocs/amazon-eks-user-guide
    latest/ug/manage-access/k8s-access/grant-k8s-access.adoc), so with
    BootstrapClusterCreatorAdminPermissions true an operator deploying as AdminRoleArn would make
    the entry's creation fail, and any other creator would be an administrator no file shows."""
    cluster = templates["cluster"]
    config = the(cluster, "AWS::EKS::Cluster")["Properties"]["AccessConfig"]
    assert config["BootstrapClusterCreatorAdminPermissions"] is False
    entry = the(cluster, "AWS::EKS::AccessEntry")["Properties"]
    assert entry["PrincipalArn"] == {"Ref": "AdminRoleArn"}
    (policy,) = entry["AccessPolicies"]
    assert policy["PolicyArn"]["Fn::Sub"].endswith("/AmazonEKSClusterAdminPolicy")
    assert policy["AccessScope"] == {"Type": "cluster"}
