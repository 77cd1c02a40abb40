"""deploy/aws/service-accounts.json is the one list of the service accounts the IRSA roles trust:
every role's trust policy names exactly its entry, every IRSA role has an entry, and every entry
with an output exports that role's ARN (the charts' values read the same file and outputs)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from deploy.aws import stacks
from test_templates import exports

SUBJECT = re.compile(r':sub": "system:serviceaccount:(?P<namespace>[^:"]+):(?P<name>[^"]+)"')


def trusted_subjects(template: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """role logical id -> (namespace, name) its web-identity trust policy names."""
    subjects = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        document = json.dumps(resource["Properties"]["AssumeRolePolicyDocument"])
        body = document.replace('\\"', '"')
        if match := SUBJECT.search(body):
            subjects[logical_id] = (match["namespace"], match["name"])
    return subjects


@pytest.fixture(scope="module")
def accounts() -> list[dict[str, Any]]:
    return stacks.service_accounts()


def test_every_irsa_role_trusts_its_listed_service_account(
    templates: dict[str, Any], accounts: list[dict[str, Any]]
) -> None:
    """An IRSA role is assumed only by the token of the service account its `:sub` condition
    names (Amazon EKS User Guide, "Assign IAM roles to Kubernetes service accounts"): a chart
    whose service account has another name or namespace gets AccessDenied on every AWS call."""
    listed = {(a["stack"], a["role"]): (a["namespace"], a["name"]) for a in accounts}
    found = {
        (layer, role): subject
        for layer, template in templates.items()
        for role, subject in trusted_subjects(template).items()
    }
    # The service's own role trusts the ServiceNamespace/ServiceAccountName parameters instead.
    service = ("edge", "ServiceRole")
    assert found.pop(service) == ("${ServiceNamespace}", "${ServiceAccountName}")
    assert found == listed


def test_outputs_export_the_listed_roles(
    templates: dict[str, Any], accounts: list[dict[str, Any]]
) -> None:
    for account in accounts:
        if account["output"] is None:
            continue
        output = templates[account["stack"]]["Outputs"][account["output"]]
        assert output["Value"] == {"Fn::GetAtt": [account["role"], "Arn"]}
        assert account["output"] in exports(templates[account["stack"]])


def test_the_charts_service_accounts(accounts: list[dict[str, Any]]) -> None:
    """The names the platform's charts must create (INTERFACES: ALB controller, ExternalDNS,
    External Secrets, Cluster Autoscaler, the Alertmanager of the prometheus chart)."""
    by_output = {a["output"]: f"{a['namespace']}/{a['name']}" for a in accounts if a["output"]}
    assert by_output == {
        "LoadBalancerControllerRoleArn": "kube-system/aws-load-balancer-controller",
        "ExternalDnsRoleArn": "kube-system/external-dns",
        "ExternalSecretsRoleArn": "external-secrets/external-secrets",
        "ClusterAutoscalerRoleArn": "kube-system/cluster-autoscaler",
        "AlertmanagerRoleArn": "monitoring/prometheus-alertmanager",
        "ArgoRolloutsRoleArn": "argo-rollouts/argo-rollouts",
    }


def test_check_finds_a_renamed_service_account(
    templates: dict[str, Any], accounts: list[dict[str, Any]]
) -> None:
    edge = json.loads(
        json.dumps(templates["edge"]).replace(
            "kube-system:external-dns", "external-dns:external-dns"
        )
    )
    assert trusted_subjects(edge)["ExternalDnsRole"] == ("external-dns", "external-dns")
    assert ("kube-system", "external-dns") in {(a["namespace"], a["name"]) for a in accounts}
