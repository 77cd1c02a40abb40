"""preflight.py's refusals, offline: what counts as a placeholder (each rule with the value it must
refuse and one it must let through), the account and quota arithmetic. The account-facing calls
are rehearsed against moto in test_rehearsal.py."""

from __future__ import annotations

from typing import Any

import pytest
from deploy.aws import preflight, stacks


@pytest.mark.parametrize("env", stacks.ENVIRONMENTS)
def test_the_committed_values_are_refused_key_by_key(env: str) -> None:
    """The committed files are placeholders on purpose (INTERFACES): none may reach AWS."""
    refusals = preflight.placeholder_refusals(env, stacks.environment(env))
    refused = {line.split()[1].split("=")[0] for line in refusals}
    assert {"DomainName", "HostedZoneId", "GitHubRepository", "AlarmEmail"} <= refused
    assert all(line.startswith(f"environments/{env}.json ") for line in refusals)


@pytest.mark.parametrize(
    ("key", "value", "refused"),
    [
        # RFC 5737: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 are for documentation.
        ("PublicEndpointCidrs", "203.0.113.0/24", True),
        ("PublicEndpointCidrs", "10.0.0.0/8,198.51.100.7/32", True),
        ("PublicEndpointCidrs", "0.0.0.0/0", False),
        ("PublicEndpointCidrs", "192.0.0.0/16", False),
        # RFC 3849: 2001:db8::/32.
        ("PublicEndpointCidrs", "2001:db8:1::/48", True),
        ("PublicEndpointCidrs", "2a05:d018::/36", False),
        # RFC 2606: example.com/.net/.org and the .example/.test/.invalid names.
        ("DomainName", "registro.example.com", True),
        ("DomainName", "api.example", True),
        ("DomainName", "registro.examples.com", False),
        ("AlarmEmail", "ops@example.org", True),
        ("AlarmEmail", "ops@registro.dev", False),
        ("HostedZoneId", "Z0000000000EXAMPLEQA", True),
        ("HostedZoneId", "Z04512345ABCDEFGHIJK", False),
        ("AdminRoleArn", "arn:aws:iam::000000000000:role/admin", True),
        ("AdminRoleArn", "arn:aws:iam::123456789012:role/admin", True),
        ("AdminRoleArn", "arn:aws:iam::210987654321:role/admin", False),
        ("GitHubRepository", "example-org/registro", True),
        ("GitHubRepository", "registro-project/registro", False),
        ("NodeMaxSizePerZone", "10", False),
        ("KubernetesVersion", "1.36", False),
    ],
)
def test_a_placeholder_is_recognised(key: str, value: str, refused: bool) -> None:
    assert (preflight.placeholder(key, value) is not None) is refused


def test_an_empty_required_value_is_refused_but_optional_ones_are_not() -> None:
    refusals = preflight.placeholder_refusals(
        "qa", {"AlarmEmail": "", "GitHubOidcProviderArn": "", "LoadBalancerFullName": ""}
    )
    assert refusals == ["environments/qa.json AlarmEmail is empty: set it (docs/aws.md)"]


def test_an_arn_of_another_account_is_refused() -> None:
    identity = {"Account": "210987654321", "Arn": "arn:aws:sts::210987654321:assumed-role/a/b"}
    values = {
        "AdminRoleArn": "arn:aws:iam::111122223333:role/admin",
        "GitHubOidcProviderArn": (
            "arn:aws:iam::210987654321:oidc-provider/token.actions.githubusercontent.com"
        ),
    }
    (refusal,) = preflight.account_refusals(values, identity)
    assert refusal.startswith("AdminRoleArn names account 111122223333")


@pytest.mark.parametrize(
    ("configured", "existing", "refusal"),
    [
        ("arn:aws:iam::111122223333:role/admin", "arn:aws:iam::111122223333:role/admin", None),
        (
            "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123abcd",
            "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/"
            "AWSReservedSSO_Admin_0123abcd",
            "is not the role's ARN: set it to arn:aws:iam::111122223333:role/aws-reserved/",
        ),
        ("arn:aws:iam::111122223333:role/gone", None, "no such role"),
    ],
)
def test_the_admin_role_must_exist_under_that_exact_arn(
    configured: str, existing: str | None, refusal: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An access entry's principal ARN includes the role's path (Amazon EKS User Guide, "Create
    access entries": "If the ARN is for an IAM role, it can include a path"); IAM Identity Center
    creates its roles under /aws-reserved/sso.amazonaws.com/ (IAM Identity Center User Guide,
    "Service-linked roles" and "Referencing permission sets in resource policies"), which
    sts get-caller-identity's assumed-role ARN leaves out. iam get-role answers the real ARN."""

    def answer(*args: str) -> Any:
        assert args[:2] == ("iam", "get-role")
        if existing is None:
            raise preflight.AwsError("An error occurred (NoSuchEntity) when calling GetRole")
        return {"Role": {"Arn": existing, "RoleName": existing.rsplit("/", 1)[-1]}}

    monkeypatch.setattr(preflight, "aws", answer)
    refusals = preflight.admin_role_refusals({"AdminRoleArn": configured})
    if refusal is None:
        assert refusals == []
    else:
        (only,) = refusals
        assert refusal in only


def test_the_read_only_guard_refuses_a_writing_call() -> None:
    """The preflight must create nothing billable: only get-/describe-/list- calls go out."""
    with pytest.raises(ValueError, match="read-only"):
        preflight.aws("cloudformation", "create-stack", "--stack-name", "x")


@pytest.mark.parametrize(("limit", "used", "refused"), [(5, 4, False), (5, 5, True), (0, 0, True)])
def test_a_quota_is_refused_when_use_plus_need_exceeds_it(
    limit: float, used: int, refused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Elastic IPs: one per NAT gateway (https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-basics.html)."""
    (eips,) = [q for q in preflight.QUOTAS if q.code == "L-0263D0A3"]

    def answer(*args: str) -> Any:
        if args[:2] == ("service-quotas", "get-service-quota"):
            return {"Quota": {"Value": limit}}
        return {"Addresses": [{}] * used}

    monkeypatch.setattr(preflight, "aws", answer)
    refusal = preflight.quota_refusal(eips, {"NatGateways": "1"})
    assert (refusal is not None) is refused
    if refusal:
        assert "L-0263D0A3" in refusal and eips.source in refusal


def describe_addon_versions(offered: dict[str, list[str]]) -> Any:
    """A fake `aws eks describe-addon-versions --addon-name N --kubernetes-version V`, answering
    in the AWS CLI's shape (AWS CLI Command Reference, eks describe-addon-versions; Amazon EKS API
    Reference, DescribeAddonVersions: addons[].addonName, addons[].addonVersions[].addonVersion,
    addonVersions[].compatibilities[].clusterVersion)."""

    def answer(*args: str) -> Any:
        assert args[:2] == ("eks", "describe-addon-versions")
        name = args[args.index("--addon-name") + 1]
        minor = args[args.index("--kubernetes-version") + 1]
        versions = [
            {"addonVersion": v, "compatibilities": [{"clusterVersion": minor}]}
            for v in offered.get(name, [])
        ]
        return {"addons": [{"addonName": name, "addonVersions": versions}]}

    return answer


def test_every_addon_pin_offered_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    pins = dict(stacks.addon_pins("1.36"))
    assert len(pins) >= 6 and all(pins.values())
    offered = {name: ["v9.9.9-eksbuild.1", str(pin)] for name, pin in pins.items()}
    monkeypatch.setattr(preflight, "aws", describe_addon_versions(offered))
    assert preflight.addon_refusals({"KubernetesVersion": "1.36"}) == []


def test_an_addon_pin_not_offered_for_the_version_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CreateAddon refuses a version DescribeAddonVersions does not list for the cluster's
    version (Amazon EKS API Reference, CreateAddon addonVersion): refused before any stack, naming
    the add-on, the pin and what EKS offers."""
    pins = dict(stacks.addon_pins("1.36"))
    offered = {name: [str(pin)] for name, pin in pins.items()}
    offered["kube-proxy"] = ["v1.36.9-eksbuild.1", "v1.36.8-eksbuild.2"]
    monkeypatch.setattr(preflight, "aws", describe_addon_versions(offered))
    (refusal,) = preflight.addon_refusals({"KubernetesVersion": "1.36"})
    assert refusal.startswith(f"add-on kube-proxy {pins['kube-proxy']} is not offered for ")
    assert "Kubernetes 1.36 (EKS offers: v1.36.9-eksbuild.1, v1.36.8-eksbuild.2)" in refusal
    assert "templates/cluster.yaml" in refusal


def test_a_kubernetes_version_without_addon_pins_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/runbooks/cluster-upgrade.md: the new minor's add-on row comes with the version bump;
    without it every add-on is refused, and EKS is not asked."""

    def asked(*args: str) -> Any:
        pytest.fail(f"asked EKS: {args}")

    monkeypatch.setattr(preflight, "aws", asked)
    refusals = preflight.addon_refusals({"KubernetesVersion": "1.99"})
    assert len(refusals) == len(stacks.addon_pins("1.99")) >= 6
    assert all("no version pinned for Kubernetes 1.99" in r for r in refusals)


@pytest.mark.parametrize(
    ("running", "wanted", "refusal"),
    [
        (None, "1.36", None),
        ("1.36", "1.36", None),
        ("1.36", "1.37", None),
        ("1.36", "1.38", "runs 1.36; EKS upgrades one minor at a time: set 1.37 first"),
        ("1.36", "1.35", "runs 1.36, and a control plane cannot be downgraded"),
    ],
)
def test_an_existing_cluster_moves_one_minor_at_a_time_and_never_back(
    running: str | None, wanted: str, refusal: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Amazon EKS User Guide, "Update existing cluster to new Kubernetes version": a cluster is
    updated one minor version at a time, and cannot be downgraded
    (https://docs.aws.amazon.com/eks/latest/userguide/update-cluster.html); DescribeCluster
    answers cluster.version, or ResourceNotFoundException before the first deploy (Amazon EKS
    API Reference, DescribeCluster)."""

    def answer(*args: str) -> Any:
        assert args == ("eks", "describe-cluster", "--name", "registro-qa")
        if running is None:
            raise preflight.AwsError(
                "An error occurred (ResourceNotFoundException) when calling the DescribeCluster"
                " operation: No cluster found for name: registro-qa."
            )
        return {"cluster": {"name": "registro-qa", "version": running}}

    monkeypatch.setattr(preflight, "aws", answer)
    refusals = preflight.version_skew_refusals(
        "qa", {"App": "registro", "KubernetesVersion": wanted}
    )
    if refusal is None:
        assert refusals == []
    else:
        (only,) = refusals
        assert refusal in only and "docs/runbooks/cluster-upgrade.md" in only
