"""The ci stack's deploy role: exactly what the pipelines use, and its Kubernetes identity.

AWS and GitHub behaviour these tests rely on:

- An EKS access entry's `KubernetesGroups` are the `kind: Group` subjects of RoleBindings; with no
  access policy associated, the principal may do only what RBAC grants those groups, and "Amazon
  EKS doesn't confirm that the value for name exists in any bindings"
  (https://docs.aws.amazon.com/eks/latest/APIReference/API_CreateAccessEntry.html,
  https://docs.aws.amazon.com/eks/latest/userguide/create-k8s-group-access-entry.html). So a
  group name that differs from deploy/k8s/platform's RoleBinding deploys fine and then forbids
  every request: the names are compared here.
- `AmazonEKSEditPolicy` grants no `argoproj.io` or `external-secrets.io` objects
  (https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html): it must not
  come back.
- A job that references a GitHub environment gets an OIDC token whose `sub` is
  `repo:OWNER/REPO:environment:NAME`, followed by `:job_workflow_ref:...` once the repository's
  subject template includes that claim
  (https://docs.github.com/en/actions/reference/security/oidc); IAM's `StringEquals` with a list
  matches any of its values
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html).
- Hosted runners reach the EKS public endpoint, authenticated by IAM
  (docs/decisions/pipeline-cluster-access.md): the role needs `eks:DescribeCluster` for its
  kubeconfig and must not be able to change the endpoint's allow-list itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
PLATFORM = ROOT / "deploy" / "k8s" / "platform"

# What the pipelines run with this role: `make publish-image` (ECR), release.sh's `outputs`
# (CloudFormation), `connect` (EKS) and `apply` (ELB, WAF). Everything else in the cluster is
# RBAC's.
EXPECTED_ACTIONS = {
    "ecr:GetAuthorizationToken": "*",
    "ecr:BatchCheckLayerAvailability": "repository",
    "ecr:BatchGetImage": "repository",
    "ecr:DescribeImages": "repository",
    "ecr:GetDownloadUrlForLayer": "repository",
    "ecr:InitiateLayerUpload": "repository",
    "ecr:UploadLayerPart": "repository",
    "ecr:CompleteLayerUpload": "repository",
    "ecr:PutImage": "repository",
    "cloudformation:DescribeStacks": "stacks",
    "eks:DescribeCluster": "cluster",
    # release.sh's lookup of the ALB for the canary analysis (R4); no resource-level permissions
    # (Service Authorization Reference, Elastic Load Balancing V2: DescribeLoadBalancers).
    "elasticloadbalancing:DescribeLoadBalancers": "*",
    # release.sh's check of the ALB's web ACL (R12): GetWebACLForResource on the ALB and the web
    # ACL, and GetWebACL, which it calls (Service Authorization Reference, AWS WAF V2).
    "wafv2:GetWebACLForResource": "alb and web acls",
    "wafv2:GetWebACL": "alb and web acls",
}


def resource_kind(resource: Any) -> str:
    if resource == "*":
        return "*"
    if isinstance(resource, dict) and "Fn::ImportValue" in resource:
        name = resource["Fn::ImportValue"]["Fn::Sub"]
        return {"${ClusterStack}-RepositoryArn": "repository"}.get(
            name, {"${ClusterStack}-ClusterArn": "cluster"}.get(name, name)
        )
    if resource == [
        {"Fn::Sub": "arn:${AWS::Partition}:elasticloadbalancing:${AWS::Region}:${AWS::AccountId}"
                    ":loadbalancer/app/${App}-${Environment}/*"},
        {"Fn::Sub": "arn:${AWS::Partition}:wafv2:${AWS::Region}:${AWS::AccountId}"
                    ":regional/webacl/*/*"},
    ]:  # fmt: skip
        return "alb and web acls"
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        arn = resource["Fn::Sub"]
        if arn.endswith(":stack/${App}-${Environment}-*/*"):
            return "stacks"
    return repr(resource)


def deploy_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    (policy,) = template["Resources"]["DeployRole"]["Properties"]["Policies"]
    statements: list[dict[str, Any]] = policy["PolicyDocument"]["Statement"]
    return statements


def test_deploy_role_has_exactly_what_the_pipelines_use(templates: dict[str, Any]) -> None:
    granted: dict[str, str] = {}
    for statement in deploy_statements(templates["ci"]):
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert action not in granted, f"{action} granted twice"
            granted[action] = resource_kind(statement["Resource"])
    assert granted == EXPECTED_ACTIONS
    assert "eks:UpdateClusterConfig" not in granted, "the pipeline must not widen the endpoint"


def access_entry(templates: dict[str, Any]) -> dict[str, Any]:
    (entry,) = [
        r for r in templates["ci"]["Resources"].values() if r["Type"] == "AWS::EKS::AccessEntry"
    ]
    properties: dict[str, Any] = entry["Properties"]
    return properties


def test_access_entry_is_the_deployer_group_and_no_access_policy(
    templates: dict[str, Any],
) -> None:
    entry = access_entry(templates)
    assert entry["PrincipalArn"] == {"Fn::GetAtt": ["DeployRole", "Arn"]}
    assert entry["Type"] == "STANDARD"
    assert entry["KubernetesGroups"] == ["registro-deployer"]
    assert "AccessPolicies" not in entry, "the group's namespace Role is all the role may do"
    assert (
        "AmazonEKSEditPolicy" not in (ROOT / "deploy" / "aws" / "templates" / "ci.yaml").read_text()
    )


def platform_bindings() -> list[dict[str, Any]]:
    documents = [
        doc
        for path in sorted(PLATFORM.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict)
    ]
    return [d for d in documents if d.get("kind") in {"RoleBinding", "ClusterRoleBinding"}]


def test_access_entry_group_is_bound_in_the_platform(templates: dict[str, Any]) -> None:
    """deploy/k8s/platform/ (applied by `make bootstrap-k8s`) binds a namespace Role to it."""
    assert PLATFORM.is_dir(), f"{PLATFORM} is missing: nothing binds the deploy role's group"
    (group,) = access_entry(templates)["KubernetesGroups"]
    bindings = [
        b
        for b in platform_bindings()
        if any(s.get("kind") == "Group" and s.get("name") == group for s in b.get("subjects", []))
    ]
    assert bindings, f"no RoleBinding in deploy/k8s/platform/ has the subject Group {group}"
    for binding in bindings:
        assert binding["kind"] == "RoleBinding", "the deploy role's group gets nothing cluster-wide"
        assert binding["metadata"]["namespace"] == "registro"
        assert binding["roleRef"]["kind"] == "Role"


WORKFLOWS = Path(__file__).resolve().parents[3] / ".github" / "workflows"


def trusted_subjects(templates: dict[str, Any]) -> list[str]:
    (statement,) = templates["ci"]["Resources"]["DeployRole"]["Properties"][
        "AssumeRolePolicyDocument"
    ]["Statement"]
    subjects = statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    return [s["Fn::Sub"] for s in subjects]


def test_role_trusts_the_deploy_workflows_on_main_only(templates: dict[str, Any]) -> None:
    """GitHub's default subject for a job in an environment is
    `repo:OWNER/REPO:environment:NAME`: any workflow, from any branch, that names the environment
    gets the role. AWS evaluates only `aud` and `sub` of the token ("AWS does not support custom
    claims for OIDC": GitHub Docs, "Configuring OpenID Connect in Amazon Web Services"), so the
    repository's subject template includes `job_workflow_ref` (GitHub Docs, "OpenID Connect
    reference", "Customizing the subject claims for an organization or repository"): the subject
    becomes `repo:...:environment:NAME:job_workflow_ref:OWNER/REPO/.github/workflows/F@REF`. The
    role trusts the workflow files that use it, at refs/heads/main only."""
    subjects = trusted_subjects(templates)
    prefix = "repo:${GitHubRepository}:environment:${GitHubEnvironment}"
    workflow = ":job_workflow_ref:${GitHubRepository}/.github/workflows/"
    assert sorted(subjects) == sorted(
        [
            f"{prefix}{workflow}deploy.yml@refs/heads/main",
            f"{prefix}-rollback{workflow}deploy.yml@refs/heads/main",
            f"{prefix}-rollback{workflow}rollback.yml@refs/heads/main",
        ]
    )


def test_the_trusted_workflows_are_those_that_assume_the_role() -> None:
    """Each workflow file the trust names exists and configures AWS credentials; deploy.yml runs
    on pushes to main only."""
    for name in ("deploy.yml", "rollback.yml"):
        text = (WORKFLOWS / name).read_text()
        assert "aws-actions/configure-aws-credentials" in text, name
    deploy = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())
    assert deploy[True] == {"push": {"branches": ["main"]}}
