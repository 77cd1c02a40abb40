"""The bootstrap stack (deploy/aws/bootstrap.yaml): created once from the console, it lets the
infrastructure workflow run `make deploy-aws` and `make bootstrap-k8s` with no workstation.

AWS and GitHub behaviour these tests rely on:

- A change set created with `--role-arn` runs as that CloudFormation service role, and later
  operations on the stack use it too; the caller needs `iam:PassRole` for it
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html).
  `cloudformation:RoleArn` is a condition key of CreateChangeSet
  (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html),
  so the workflow's role cannot create a change set that runs with its own permissions.
- The OIDC subject is `repo:OWNER/REPO:environment:NAME:job_workflow_ref:...` once the
  repository's subject template includes job_workflow_ref
  (https://docs.github.com/en/actions/reference/security/oidc).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from cfnlint.decode import decode
from deploy.aws import stacks

BOOTSTRAP = stacks.HERE / "bootstrap.yaml"
WORKFLOW = stacks.HERE.parents[1] / ".github" / "workflows" / "infrastructure.yml"
REPOSITORY = "${GitHubRepository}"
# A resource type's namespace (AWS::<Namespace>::...) and its IAM service prefix, where they differ.
PREFIXES = {"CertificateManager": "acm"}
# A certificate validated by DNS with DomainValidationOptions' HostedZoneId: CloudFormation itself
# writes the validation record into the zone (AWS::CertificateManager::Certificate,
# https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-certificatemanager-certificate.html).
IMPLIED = {"route53"}


@pytest.fixture(scope="module")
def bootstrap() -> dict[str, Any]:
    template, matches = decode(str(BOOTSTRAP))
    assert template is not None, matches
    return json_plain(template)


def json_plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): json_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [json_plain(v) for v in node]
    return str(node) if not isinstance(node, bool | int | float) else node


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_it_needs_no_other_stack_and_asks_only_where_it_deploys_from(
    bootstrap: dict[str, Any],
) -> None:
    text = BOOTSTRAP.read_text()
    assert "ImportValue" not in text
    assert set(bootstrap["Parameters"]) == {
        "GitHubRepository", "Environment", "GitHubOidcProviderArn"
    }  # fmt: skip
    assert bootstrap["Parameters"]["GitHubOidcProviderArn"]["Default"] == ""


def test_only_the_infrastructure_workflow_on_main_in_its_environment_is_trusted(
    bootstrap: dict[str, Any],
) -> None:
    (trust,) = bootstrap["Resources"]["InfrastructureRole"]["Properties"][
        "AssumeRolePolicyDocument"
    ]["Statement"]
    condition = trust["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    subject = condition["token.actions.githubusercontent.com:sub"]
    assert subject == {
        "Fn::Sub": f"repo:{REPOSITORY}:environment:infrastructure-${{Environment}}"
        f":job_workflow_ref:{REPOSITORY}/.github/workflows/infrastructure.yml@refs/heads/main"
    }
    assert set(trust["Condition"]) == {"StringEquals"}  # no StringLike wildcard beside it
    workflow = yaml.safe_load(WORKFLOW.read_text())
    (job,) = workflow["jobs"].values()
    assert job["environment"]["name"] == "infrastructure-${{ inputs.environment }}"


def test_change_sets_run_only_as_the_cloudformation_role_which_only_it_may_pass(
    bootstrap: dict[str, Any],
) -> None:
    found = statements(bootstrap["Resources"]["InfrastructureRole"])
    (create,) = [s for s in found if "cloudformation:CreateChangeSet" in as_list(s["Action"])]
    assert as_list(create["Action"]) == ["cloudformation:CreateChangeSet"]
    assert create["Condition"] == {
        "ArnEquals": {"cloudformation:RoleArn": {"Fn::GetAtt": ["CloudFormationRole", "Arn"]}}
    }
    (passing,) = [s for s in found if "iam:PassRole" in as_list(s["Action"])]
    assert passing["Resource"] == {"Fn::GetAtt": ["CloudFormationRole", "Arn"]}
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
    }
    actions = [a for s in found for a in as_list(s["Action"])]
    assert not [a for a in actions if "*" in a]
    scoped = ("registro-${Environment}", "changeSet/deploy-", "role/*", "CloudFormationRole")
    for statement in found:
        for resource in as_list(statement["Resource"]):
            assert resource == "*" or any(s in str(resource) for s in scoped), statement["Sid"]
    (service,) = bootstrap["Resources"]["CloudFormationRole"]["Properties"][
        "AssumeRolePolicyDocument"
    ]["Statement"]
    assert service["Principal"] == {"Service": "cloudformation.amazonaws.com"}


def test_the_cloudformation_role_covers_exactly_the_services_the_templates_use(
    bootstrap: dict[str, Any], templates: dict[str, dict[str, Any]]
) -> None:
    """Enough for every resource type the stacks create, and no service they do not use."""
    used = {
        PREFIXES.get(r["Type"].split("::")[1], r["Type"].split("::")[1].lower())
        for template in templates.values()
        for r in template["Resources"].values()
        if r["Type"].startswith("AWS::")
    }
    (allowed,) = statements(bootstrap["Resources"]["CloudFormationRole"])
    assert {a.removesuffix(":*") for a in allowed["Action"]} == used | IMPLIED
