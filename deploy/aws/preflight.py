"""Refuse a deploy that cannot work, before anything billable exists (make preflight-aws ENV=...).

    python -m deploy.aws.preflight ENV   every refusal on a line of its own; exit 1 if any

1. The values in environments/<env>.json: no placeholder may be left (documentation domains,
   address ranges and account ids, EXAMPLE ids, example GitHub owners, empty required values).
2. The account, through awscli and read-only calls only (get-*, describe-*, list-*): a valid,
   enabled region; working credentials for the account the values name; a public hosted zone
   for the domain that the internet is delegated to; the administrator role (AdminRoleArn) exists
   under exactly that ARN; each EKS add-on's pinned version is offered for the environment's
   Kubernetes version, which is an existing cluster's or the next minor; the service quotas the
   stacks need.
All checks run; all refusals are listed at once.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from deploy.aws import awscli, stacks
from deploy.aws.awscli import NO_REGION, AwsError

# RFC 5737 (IPv4) and RFC 3849 (IPv6) reserve these for documentation: they route nowhere.
DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
# RFC 2606 and RFC 6761: names that can never be registered.
RESERVED_DOMAINS = ("example.com", "example.net", "example.org", "example", "test", "invalid")
# 000000000000 is never an account; 123456789012 is the account of AWS's own examples.
PLACEHOLDER_ACCOUNTS = ("000000000000", "123456789012")
# Values without which the stacks deploy but do not serve (no domain, alarms reaching no one).
REQUIRED = ("DomainName", "HostedZoneId", "AlarmEmail", "GitHubRepository")
READ_ONLY = re.compile(r"^(get|describe|list)-")


@dataclass(frozen=True)
class Quota:
    """A service quota (Service Quotas code) and how much of it one environment needs."""

    service: str
    code: str
    name: str
    source: str
    need: Callable[[dict[str, str]], int]
    usage: Callable[[], int]


def placeholder_refusals(env: str, values: dict[str, str]) -> list[str]:
    refusals = []
    for key, value in values.items():
        reason = placeholder(key, value)
        if reason:
            refusals.append(f"environments/{env}.json {key}={value!r}: {reason}")
    for key in REQUIRED:
        if key in values and not values[key].strip():
            refusals.append(f"environments/{env}.json {key} is empty: set it (docs/aws.md)")
    return refusals


def placeholder(key: str, value: str) -> str | None:
    """Why the value is a placeholder, or None."""
    if "EXAMPLE" in value:
        return "an EXAMPLE id from the documentation"
    for account in PLACEHOLDER_ACCOUNTS:
        if re.search(rf"(?<!\d){account}(?!\d)", value):
            return f"{account} is a documentation account id"
    if key == "GitHubRepository" and value.split("/")[0].lower().startswith("example"):
        return "an example GitHub owner: set owner/name of the repository that deploys"
    for token in re.split(r"[\s,]+", value.strip()):
        if not token:
            continue
        network = _network(token)
        if network is not None:
            if any(
                network.subnet_of(doc)  # type: ignore[arg-type]
                for doc in DOCUMENTATION_NETWORKS
                if doc.version == network.version
            ):
                return f"{token} is a documentation address range (RFC 5737 / RFC 3849)"
            continue
        domain = token.rsplit("@", 1)[-1].lower().rstrip(".")
        if any(domain == d or domain.endswith("." + d) for d in RESERVED_DOMAINS):
            kind = "e-mail address" if "@" in token else "domain"
            return f"a placeholder {kind}: {domain} is reserved for documentation (RFC 2606)"
    return None


def _network(token: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(token, strict=False)
    except ValueError:
        return None


def aws(*args: str) -> Any:
    """awscli's JSON answer. Only reading calls: the preflight creates nothing."""
    verb = args[1] if len(args) > 1 else ""
    if not READ_ONLY.match(verb):
        raise ValueError(f"preflight makes read-only calls only, not {' '.join(args[:2])}")
    return awscli.call(*args)


def region_refusals(region: str) -> list[str]:
    from botocore.session import Session  # awscli's own list of regions, offline

    known = set()
    session = Session()
    for partition in session.get_available_partitions():
        known |= set(session.get_available_regions("cloudformation", partition))
    if region not in known:
        return [f"region {region!r} is not an AWS region (expected e.g. eu-west-1)"]
    try:
        answer = aws("ec2", "describe-regions", "--all-regions", "--region-names", region)
    except AwsError as error:
        return [f"region {region}: {error}"]
    statuses = [r.get("OptInStatus", "") for r in answer.get("Regions", [])]
    if statuses and statuses[0] == "not-opted-in":
        return [f"region {region} is not enabled for this account (opt in first)"]
    return []


def account_refusals(values: dict[str, str], identity: dict[str, str]) -> list[str]:
    """Every account id the values name (ARNs, AccountId) must be the caller's account."""
    account = identity["Account"]
    refusals = []
    for key, value in values.items():
        named = re.findall(r"arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:(\d{12}):", value)
        if key in ("AccountId", "AwsAccountId") and value:
            named.append(value)
        for other in sorted(set(named) - {account}):
            refusals.append(
                f"{key} names account {other}, but the credentials are for account {account}"
                f" ({identity['Arn']})"
            )
    return refusals


def admin_role_refusals(values: dict[str, str]) -> list[str]:
    """AdminRoleArn must be an existing role's exact ARN, path included: EKS keeps the access entry
    of an ARN that names no role, and nobody can then administer the cluster. IAM Identity Center
    (SSO) roles live under /aws-reserved/sso.amazonaws.com/ (or .../<region>/), a path that
    `aws sts get-caller-identity`'s assumed-role ARN does not show."""
    arn = values.get("AdminRoleArn", "")
    if not arn:
        return []
    name = arn.rsplit("/", 1)[-1]
    try:
        role = aws("iam", "get-role", "--role-name", name)["Role"]
    except AwsError as error:
        return [f"AdminRoleArn {arn}: no such role ({error}); see docs/aws.md, AdminRoleArn"]
    if role["Arn"] != arn:
        return [f"AdminRoleArn {arn} is not the role's ARN: set it to {role['Arn']}"]
    return []


def offered_addon_versions(name: str, kubernetes_version: str) -> list[str]:
    """The versions of an EKS add-on that EKS offers for a Kubernetes version, newest first
    (DescribeAddonVersions: addons[].addonVersions[].addonVersion, each compatible with the
    compatibilities[].clusterVersion it lists)."""
    answer = aws(
        "eks", "describe-addon-versions", "--addon-name", name,
        "--kubernetes-version", kubernetes_version,
    )  # fmt: skip
    return [
        version["addonVersion"]
        for addon in answer.get("addons", [])
        if addon.get("addonName") == name
        for version in addon.get("addonVersions", [])
        if any(
            c.get("clusterVersion") == kubernetes_version
            for c in version.get("compatibilities", [])
        )
    ]


def addon_refusals(values: dict[str, str]) -> list[str]:
    """Each add-on's pin (templates/cluster.yaml, Mappings AddonVersions) must be a version EKS
    offers for the environment's KubernetesVersion: CreateAddon/UpdateAddon would otherwise fail
    in the middle of the cluster stack."""
    kubernetes_version = values.get("KubernetesVersion", "")
    refusals = []
    for name, pin in stacks.addon_pins(kubernetes_version):
        where = "templates/cluster.yaml (Mappings AddonVersions; docs/runbooks/cluster-upgrade.md)"
        if pin is None:
            refusals.append(f"add-on {name}: no version pinned for Kubernetes {kubernetes_version}"
                            f" in {where}")  # fmt: skip
            continue
        try:
            offered = offered_addon_versions(name, kubernetes_version)
        except AwsError as error:
            refusals.append(f"add-on {name}: cannot list its versions: {error}")
            continue
        if pin not in offered:
            refusals.append(
                f"add-on {name} {pin} is not offered for Kubernetes {kubernetes_version}"
                f" (EKS offers: {', '.join(offered) or 'none'}); set it in {where}"
            )
    return refusals


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def version_skew_refusals(env: str, values: dict[str, str]) -> list[str]:
    """An existing cluster moves one minor at a time and never back (Amazon EKS User Guide,
    "Update existing cluster to new Kubernetes version": one minor version per update; a
    control plane cannot be downgraded; docs/runbooks/cluster-upgrade.md). No cluster: none."""
    wanted = values.get("KubernetesVersion", "")
    name = f"{values.get('App', 'registro')}-{env}"
    try:
        running = aws("eks", "describe-cluster", "--name", name)["cluster"]["version"]
    except AwsError as error:
        if "ResourceNotFoundException" in str(error):
            return []
        return [f"cluster {name}: cannot read its version: {error}"]
    if not re.fullmatch(r"\d+\.\d+", wanted) or wanted == running:
        return []
    (major, minor), (to_major, to_minor) = _minor(running), _minor(wanted)
    runbook = "docs/runbooks/cluster-upgrade.md"
    if (to_major, to_minor) < (major, minor):
        return [
            f"KubernetesVersion {wanted}: cluster {name} runs {running}, and a control plane"
            f" cannot be downgraded ({runbook})"
        ]
    if (to_major, to_minor) != (major, minor + 1):
        return [
            f"KubernetesVersion {wanted}: cluster {name} runs {running}; EKS upgrades one minor"
            f" at a time: set {major}.{minor + 1} first ({runbook})"
        ]
    return []


def _names(records: Iterable[str]) -> set[str]:
    return {r.strip().lower().rstrip(".") for r in records if r.strip()}


def hosted_zone_refusals(values: dict[str, str]) -> list[str]:
    zone_id, domain = values.get("HostedZoneId", ""), values.get("DomainName", "").lower()
    if not zone_id or not domain:
        return []
    try:
        answer = aws("route53", "get-hosted-zone", "--id", zone_id)
    except AwsError as error:
        return [f"hosted zone {zone_id}: {error}"]
    zone = answer["HostedZone"]["Name"].lower().rstrip(".")
    if answer["HostedZone"].get("Config", {}).get("PrivateZone"):
        return [f"hosted zone {zone_id} ({zone}) is private: the certificate needs a public zone"]
    if domain != zone and not domain.endswith("." + zone):
        return [f"DomainName {domain} is not in hosted zone {zone_id} ({zone})"]
    served = _names(answer.get("DelegationSet", {}).get("NameServers", []))
    dig = shutil.which("dig")
    if dig is None:
        return [
            "dig not found (apt: dnsutils): cannot check that the zone is delegated to Route 53"
        ]
    done = subprocess.run(
        [dig, "+short", "NS", zone + "."], capture_output=True, text=True, check=False
    )
    delegated = _names(done.stdout.splitlines())
    if not delegated:
        return [
            f"hosted zone {zone_id} ({zone}) is not delegated: the internet finds no name servers"
            f" for {zone}; set {', '.join(sorted(served))} as its NS records at the registrar"
        ]
    if delegated != served:
        return [
            f"hosted zone {zone_id} ({zone}) does not serve {zone}: the internet asks"
            f" {', '.join(sorted(delegated))}, the zone is on {', '.join(sorted(served))}"
            " (another hosted zone of that name?)"
        ]
    return []


def _count(answer: Any, key: str) -> int:
    return len(answer.get(key, []))


def _vcpus(instance_type: str) -> int:
    answer = aws("ec2", "describe-instance-types", "--instance-types", instance_type)
    return int(answer["InstanceTypes"][0]["VCpuInfo"]["DefaultVCpus"])


def _running_standard_vcpus() -> int:
    answer = aws(
        "ec2", "describe-instances", "--filters", "Name=instance-state-name,Values=running"
    )
    total = 0
    for reservation in answer.get("Reservations", []):
        for instance in reservation.get("Instances", []):
            if instance.get("InstanceType", "")[:1] in "acdhimrtz":
                cpu = instance.get("CpuOptions", {})
                total += int(cpu.get("CoreCount", 1)) * int(cpu.get("ThreadsPerCore", 1))
    return total


VPC_QUOTAS = "https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html"
QUOTAS = (
    Quota("vpc", "L-F678F1CE", "VPCs per Region", VPC_QUOTAS, lambda v: 1,
          lambda: _count(aws("ec2", "describe-vpcs"), "Vpcs")),
    Quota("vpc", "L-A4707A72", "Internet gateways per Region", VPC_QUOTAS, lambda v: 1,
          lambda: _count(aws("ec2", "describe-internet-gateways"), "InternetGateways")),
    # Per zone; the region's total is the usage counted (an upper bound of any one zone's).
    Quota("vpc", "L-FE5A380F", "NAT gateways per Availability Zone", VPC_QUOTAS, lambda v: 1,
          lambda: _count(aws("ec2", "describe-nat-gateways", "--filter",
                             "Name=state,Values=pending,available"), "NatGateways")),
    Quota("ec2", "L-0263D0A3", "EC2-VPC Elastic IPs",
          "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/elastic-ip-addresses-eip.html",
          lambda v: int(v.get("NatGateways", "1")),
          lambda: _count(aws("ec2", "describe-addresses"), "Addresses")),
    Quota("ec2", "L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
          "https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html",
          lambda v: stacks.ZONES * int(v.get("NodeMaxSizePerZone", "0"))
          * _vcpus(v["NodeInstanceType"]),
          _running_standard_vcpus),
    Quota("eks", "L-1194D53C", "Clusters",
          "https://docs.aws.amazon.com/eks/latest/userguide/service-quotas.html", lambda v: 1,
          lambda: _count(aws("eks", "list-clusters"), "clusters")),
    Quota("rds", "L-7B6409FD", "DB instances",
          "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_Limits.html", lambda v: 1,
          lambda: _count(aws("rds", "describe-db-instances"), "DBInstances")),
)  # fmt: skip


def quota_value(quota: Quota) -> float:
    """The account's applied value, or AWS's default where none is applied."""
    codes = ("--service-code", quota.service, "--quota-code", quota.code)
    try:
        return float(aws("service-quotas", "get-service-quota", *codes)["Quota"]["Value"])
    except AwsError as error:
        if "NoSuchResource" not in str(error):
            raise
    return float(aws("service-quotas", "get-aws-default-service-quota", *codes)["Quota"]["Value"])


def quota_refusal(quota: Quota, values: dict[str, str]) -> str | None:
    try:
        limit, used, needed = quota_value(quota), quota.usage(), quota.need(values)
    except AwsError as error:
        return f"quota {quota.service} {quota.code} ({quota.name}): cannot read it: {error}"
    if used + needed > limit:
        return (
            f"quota {quota.service} {quota.code} ({quota.name}) is {limit:g}, {used} in use,"
            f" {needed} needed: request an increase in Service Quotas ({quota.source})"
        )
    return None


def account_checks(values: dict[str, str], env: str) -> list[str]:
    region = awscli.export_region()
    if not region:
        return [NO_REGION]
    try:
        identity = aws("sts", "get-caller-identity")
    except AwsError as error:
        return [f"no working AWS credentials: {error}"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        region_check = pool.submit(region_refusals, region)
        zone_check = pool.submit(hosted_zone_refusals, values)
        admin_check = pool.submit(admin_role_refusals, values)
        addon_check = pool.submit(addon_refusals, values)
        skew_check = pool.submit(version_skew_refusals, env, values)
        quota_checks = [pool.submit(quota_refusal, q, values) for q in QUOTAS]
        refusals = region_check.result() + account_refusals(values, identity)
        refusals += zone_check.result() + admin_check.result() + addon_check.result()
        refusals += skew_check.result()
        refusals += [r for r in (c.result() for c in quota_checks) if r]
    return refusals


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    env = argv[0]
    values = stacks.environment(env)
    refusals = placeholder_refusals(env, values) + account_checks(values, env)
    for refusal in refusals:
        print(f"preflight: {refusal}", file=sys.stderr)
    if refusals:
        print(f"preflight {env}: {len(refusals)} refused; nothing was created", file=sys.stderr)
        return 1
    print(
        f"preflight {env}: values, region, credentials, hosted zone, add-ons and quotas are ready"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
