"""The cfn-guard rules fail on the faults they exist for: each case breaks one non-negotiable in a
copy of a real template (or of an environment's values) and expects its rule to report it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from deploy.aws import stacks

GUARD = Path(
    os.environ.get(
        "CFN_GUARD",
        stacks.HERE / "node_modules/@cdklabs/cdk-validator-cfnguard/bin/ubuntu/x86_64/cfn-guard",
    )
)
RULES = stacks.HERE / "guard"


def guard(
    template: str, env: str, tmp_path: Path, **values: str
) -> subprocess.CompletedProcess[str]:
    assert GUARD.is_file(), f"cfn-guard not installed at {GUARD}: run make aws-tools"
    data, params = tmp_path / "template.yaml", tmp_path / "params.json"
    data.write_text(template)
    params.write_text(
        json.dumps(
            {"EnvironmentParameters": dict(stacks.environment(env), Environment=env, **values)}
        )
    )
    return subprocess.run(
        [
            str(GUARD),
            "validate",
            "--rules",
            str(RULES),
            "--data",
            str(data),
            "--input-params",
            str(params),
            "--show-summary",
            "fail",
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def broken(layer: str, old: str, new: str) -> str:
    source = stacks.template_path(layer).read_text()
    assert old in source, f"{layer}.yaml no longer contains {old!r}: update this case"
    return source.replace(old, new, 1)


CASES = {
    "single-AZ database": (
        "data",
        "MultiAZ: true",
        "MultiAZ: false",
        "database_highly_available_and_encrypted",
    ),
    "unencrypted database": (
        "data",
        "StorageEncrypted: true",
        "StorageEncrypted: false",
        "database_highly_available_and_encrypted",
    ),
    "public database": (
        "data",
        "PubliclyAccessible: false",
        "PubliclyAccessible: true",
        "database_highly_available_and_encrypted",
    ),
    "TLS not forced": ("data", "rds.force_ssl: '1'", "rds.force_ssl: '0'", "database_requires_tls"),
    "database ingress from a range": (
        "cluster",
        "SourceSecurityGroupId:",
        "CidrIp: 0.0.0.0/0\n      SourceSecurityGroupId:",
        "standalone_ingress_only_from_security_groups",
    ),
    "database accepts TLS 1.0": (
        "data",
        "ssl_min_protocol_version: TLSv1.2",
        "ssl_min_protocol_version: TLSv1",
        "database_tls_12_or_newer",
    ),
    "topic accepts plain HTTP": (
        "observability",
        "Bool: {aws:SecureTransport: 'false'}",
        "Bool: {aws:SecureTransport: 'true'}",
        "topics_refuse_plain_http",
    ),
    "trail without validation": (
        "security",
        "EnableLogFileValidation: true",
        "EnableLogFileValidation: false",
        "trail_settings",
    ),
    "single-region trail": (
        "security",
        "IsMultiRegionTrail: true",
        "IsMultiRegionTrail: false",
        "trail_settings",
    ),
    "bucket open to public ACLs": (
        "security",
        "BlockPublicAcls: true",
        "BlockPublicAcls: false",
        "buckets_private_encrypted_versioned",
    ),
    "bucket accepts plain HTTP": (
        "security",
        "aws:SecureTransport: 'false'",
        "aws:SecureTransport: 'true'",
        "buckets_tls_only",
    ),
    "public IPs in subnets": (
        "network",
        "MapPublicIpOnLaunch: false",
        "MapPublicIpOnLaunch: true",
        "subnets_assign_no_public_ips",
    ),
    "no private endpoint": (
        "cluster",
        "EndpointPrivateAccess: true",
        "EndpointPrivateAccess: false",
        "cluster_endpoint_private_and_secrets_encrypted",
    ),
    "IMDSv1 allowed": (
        "cluster",
        "HttpTokens: required",
        "HttpTokens: optional",
        "nodes_require_imdsv2",
    ),
    "NetworkPolicies not enforced": (
        "cluster",
        """'{"enableNetworkPolicy": "true"}'""",
        """'{"enableNetworkPolicy": "false"}'""",
        "network_policies_enforced",
    ),
    "pods reach IMDS": (
        "cluster",
        "HttpPutResponseHopLimit: 1",
        "HttpPutResponseHopLimit: 2",
        "nodes_imds_one_hop",
    ),
    "key deleted with its stack": (
        "security",
        "    DeletionPolicy: RetainExceptOnCreate\n    UpdateReplacePolicy: Retain\n"
        "    Properties:\n"
        "      Description: !Sub '${App}-${Environment} telemetry",
        "    Properties:\n      Description: !Sub '${App}-${Environment} telemetry",
        "keys_retained",
    ),
    "retained bucket with a fixed name": (
        "security",
        "      BucketEncryption:",
        "      BucketName: !Sub '${App}-${Environment}-trail'\n      BucketEncryption:",
        "retained_buckets_named_by_cloudformation",
    ),
    "mutable image tags": (
        "cluster",
        "ImageTagMutability: IMMUTABLE_WITH_EXCLUSION",
        "ImageTagMutability: MUTABLE",
        "images_immutable_and_scanned",
    ),
    "release tags excluded from immutability": (
        "cluster",
        "ImageTagMutabilityExclusionFilterValue: 'sha256-*'",
        "ImageTagMutabilityExclusionFilterValue: '*'",
        "images_immutable_and_scanned",
    ),
    "detector without EKS audit logs": (
        "baseline",
        "{Name: EKS_AUDIT_LOGS, Status: ENABLED}",
        "{Name: EKS_AUDIT_LOGS, Status: DISABLED}",
        "detector_watches_eks_rds_and_s3",
    ),
    "basic registry scanning": (
        "baseline",
        "ScanType: ENHANCED",
        "ScanType: BASIC",
        "registry_scanning_enhanced",
    ),
    "hub with the default standards": (
        "baseline",
        "EnableDefaultStandards: false",
        "EnableDefaultStandards: true",
        "hub_enables_only_the_named_standard",
    ),
    "key without rotation": (
        "security",
        "EnableKeyRotation: true",
        "EnableKeyRotation: false",
        "keys_rotate",
    ),
}


@pytest.mark.parametrize("layer", stacks.layers())
@pytest.mark.parametrize("env", stacks.ENVIRONMENTS)
def test_real_templates_pass(layer: str, env: str, tmp_path: Path) -> None:
    result = guard(stacks.template_path(layer).read_text(), env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", CASES)
def test_rule_reports_its_fault(case: str, tmp_path: Path) -> None:
    layer, old, new, rule = CASES[case]
    result = guard(broken(layer, old, new), "prod", tmp_path)
    assert result.returncode != 0
    assert f"{rule}" in result.stdout and "FAIL" in result.stdout, result.stdout


def test_prod_database_must_refuse_deletion(tmp_path: Path) -> None:
    data = stacks.template_path("data").read_text()
    assert guard(data, "qa", tmp_path, DbDeletionProtection="false").returncode == 0
    result = guard(data, "prod", tmp_path, DbDeletionProtection="false")
    assert result.returncode != 0 and "prod_database_refuses_deletion" in result.stdout


def test_prod_needs_a_nat_gateway_per_zone(tmp_path: Path) -> None:
    network = stacks.template_path("network").read_text()
    assert guard(network, "qa", tmp_path, NatGateways="1").returncode == 0
    result = guard(network, "prod", tmp_path, NatGateways="1")
    assert result.returncode != 0 and "prod_nat_per_zone" in result.stdout


def test_prod_runs_the_security_baseline(tmp_path: Path) -> None:
    baseline = stacks.template_path("baseline").read_text()
    assert guard(baseline, "qa", tmp_path, EnableSecurityBaseline="false").returncode == 0
    result = guard(baseline, "prod", tmp_path, EnableSecurityBaseline="false")
    assert result.returncode != 0 and "prod_runs_the_security_baseline" in result.stdout
