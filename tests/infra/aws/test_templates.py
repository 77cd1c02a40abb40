"""What cfn-lint, checkov and cfn-guard cannot see: how the stacks fit together and house rules.

Each check is a function returning findings; the tests assert the real templates have none, and
that each check does find the fault it exists for in a small template written to have it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from deploy.aws import stacks

REQUIRED_TAGS = {"app": "App", "environment": "Environment"}  # tag key -> parameter it carries
STAR_REASON = "# star:"
IMPORT = re.compile(r"^\$\{(?P<layer>[A-Z][a-z]+)Stack\}-(?P<name>\w+)$")
EXPORT = re.compile(r"^\$\{AWS::StackName\}-(?P<name>\w+)$")


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def exports(template: dict[str, Any]) -> set[str]:
    names = set()
    for output in template.get("Outputs", {}).values():
        sub = output.get("Export", {}).get("Name", {}).get("Fn::Sub", "")
        if match := EXPORT.match(sub):
            names.add(match["name"])
    return names


def unexported_outputs(template: dict[str, Any]) -> list[str]:
    """Exports must be named ${AWS::StackName}-<Name>."""
    return [
        f"output {key}: export name {output['Export']['Name']!r} is not ${{AWS::StackName}}-<Name>"
        for key, output in template.get("Outputs", {}).items()
        if "Export" in output
        and not (
            isinstance(output["Export"]["Name"], dict)
            and EXPORT.match(output["Export"]["Name"].get("Fn::Sub", ""))
        )
    ]


def unmatched_imports(
    layer: str, templates: dict[str, dict[str, Any]], order: list[str]
) -> list[str]:
    """Every import names an export of an earlier stack, via a declared <Layer>Stack parameter."""
    template, findings = templates[layer], []
    for node in walk(template):
        if not (isinstance(node, dict) and "Fn::ImportValue" in node):
            continue
        sub = (
            node["Fn::ImportValue"].get("Fn::Sub")
            if isinstance(node["Fn::ImportValue"], dict)
            else None
        )
        match = IMPORT.match(sub or "")
        if not match:
            findings.append(f"import {node['Fn::ImportValue']!r} is not ${{<Layer>Stack}}-<Name>")
            continue
        source = match["layer"].lower()
        if f"{match['layer']}Stack" not in template.get("Parameters", {}):
            findings.append(f"import {sub}: parameter {match['layer']}Stack is not declared")
        if source not in order or order.index(source) >= order.index(layer):
            findings.append(f"import {sub}: {source} is not a stack deployed before {layer}")
        elif match["name"] not in exports(templates[source]):
            findings.append(f"import {sub}: {source} exports no {match['name']}")
    return findings


def untagged_resources(template: dict[str, Any]) -> list[str]:
    """Every resource type that takes tags carries app and environment, from the parameters."""
    findings = []
    for logical_id, resource in template.get("Resources", {}).items():
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource["Type"]).schema
        properties = resource.get("Properties", {})
        tag_sets = []
        if "Tags" in schema.get("properties", {}):
            tag_sets.append(properties.get("Tags", []))
        if "TagSpecifications" in schema.get("properties", {}):
            tag_sets += [spec.get("Tags", []) for spec in properties.get("TagSpecifications", [{}])]
        if resource["Type"] == "AWS::EC2::LaunchTemplate":
            data = properties.get("LaunchTemplateData", {})
            tag_sets += [spec.get("Tags", []) for spec in data.get("TagSpecifications", [{}])]
        for tags in tag_sets:
            pairs = (
                tags.items()
                if isinstance(tags, dict)
                else ((t.get("Key"), t.get("Value")) for t in tags)
            )
            present = dict(pairs)
            for key, parameter in REQUIRED_TAGS.items():
                if present.get(key) != {"Ref": parameter}:
                    findings.append(f"{logical_id}: tag {key} is not !Ref {parameter}")
    return findings


def log_groups_without_retention(template: dict[str, Any]) -> list[str]:
    return [
        f"{logical_id}: log group without RetentionInDays"
        for logical_id, resource in template.get("Resources", {}).items()
        if resource["Type"] == "AWS::Logs::LogGroup"
        and "RetentionInDays" not in resource.get("Properties", {})
    ]


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
    """(statement, written_in_yaml) for every policy statement, including JSON-string policies."""
    for node in walk(template):
        if isinstance(node, dict) and "Effect" in node:
            yield node, True
        if isinstance(node, dict) and "Fn::Sub" in node:
            body = node["Fn::Sub"][0] if isinstance(node["Fn::Sub"], list) else node["Fn::Sub"]
            if isinstance(body, str) and '"Statement"' in body:
                for statement in json.loads(body)["Statement"]:
                    yield statement, False


def unexplained_stars(template: dict[str, Any], source: str) -> list[str]:
    """An Allow with a wildcard action or Resource '*' carries a '# star: <reason>' comment."""
    lines, findings = source.splitlines(), []
    for statement, in_yaml in policy_statements(template):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement or "NotResource" in statement:
            findings.append(f"statement {statement.get('Sid', '?')}: NotAction/NotResource")
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if not isinstance(resources, list) else resources
        starred = [a for a in actions if isinstance(a, str) and "*" in a] + [
            r for r in resources if r == "*"
        ]
        if not starred:
            continue
        if in_yaml:
            span = lines[statement.start_mark.line : statement.end_mark.line + 1]
            if any(STAR_REASON in line and line.split(STAR_REASON, 1)[1].strip() for line in span):
                continue
        line = statement.start_mark.line + 1 if in_yaml else "(JSON string)"
        findings.append(
            f"statement {statement.get('Sid', '?')} at line {line}: {starred} without a reason"
        )
    return findings


# ---- the real templates --------------------------------------------------------------------------


def test_every_layer_has_a_template(layers: list[str]) -> None:
    templates_dir = stacks.template_path(layers[0]).parent
    assert sorted(p.stem for p in templates_dir.glob("*.yaml")) == sorted(layers)


def test_every_import_has_an_earlier_export(templates: dict[str, Any], layers: list[str]) -> None:
    findings = {
        layer: unmatched_imports(layer, templates, layers) + unexported_outputs(templates[layer])
        for layer in layers
    }
    assert {k: v for k, v in findings.items() if v} == {}


def test_every_taggable_resource_is_tagged(templates: dict[str, Any]) -> None:
    findings = {layer: untagged_resources(t) for layer, t in templates.items()}
    assert {k: v for k, v in findings.items() if v} == {}


def test_every_log_group_has_retention(templates: dict[str, Any]) -> None:
    findings = {layer: log_groups_without_retention(t) for layer, t in templates.items()}
    assert {k: v for k, v in findings.items() if v} == {}
    assert (
        sum(
            1
            for t in templates.values()
            for r in t["Resources"].values()
            if r["Type"] == "AWS::Logs::LogGroup"
        )
        >= 8
    )


def test_no_wildcard_without_a_written_reason(templates: dict[str, Any], layers: list[str]) -> None:
    findings = {
        layer: unexplained_stars(templates[layer], stacks.template_path(layer).read_text())
        for layer in layers
    }
    assert {k: v for k, v in findings.items() if v} == {}


@pytest.mark.parametrize("env", stacks.ENVIRONMENTS)
def test_environment_gives_every_parameter_and_nothing_else(env: str, layers: list[str]) -> None:
    declared = {name for layer in layers for name in stacks.template_parameters(layer)}
    for layer in layers:
        stacks.parameters(env, layer)  # raises when the environment lacks a parameter
    unused = set(stacks.environment(env)) - declared
    assert unused == set()


def test_environments_differ_only_in_values() -> None:
    assert set(stacks.environment("qa")) == set(stacks.environment("prod"))


def test_outputs_the_kubernetes_manifests_use(templates: dict[str, Any]) -> None:
    assert {
        "CertificateArn",
        "WebAclArn",
        "LoadBalancerControllerRoleArn",
        "ExternalSecretsRoleArn",
        "ServiceRoleArn",
    } <= exports(templates["edge"])
    assert {"RepositoryUri", "ClusterName"} <= exports(templates["cluster"])
    assert "DeployRoleArn" in exports(templates["ci"])


# ---- each check finds the fault it exists for ---------------------------------------------------

BAD_TEMPLATE = """\
Parameters:
  App: {Type: String}
  Environment: {Type: String}
  NetworkStack: {Type: String}
Resources:
  Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      Tags: [{Key: app, Value: !Ref App}]
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {}
      Policies:
        - PolicyName: too-much
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: 's3:*'
                Resource: !ImportValue {'Fn::Sub': '${NetworkStack}-NoSuchExport'}
              - Effect: Allow
                Action: 'ec2:DescribeVpcs'
                Resource: '*'
      Tags:
        - {Key: app, Value: !Ref App}
        - {Key: environment, Value: qa}
Outputs:
  Badly:
    Value: x
    Export: {Name: something-fixed}
"""


@pytest.fixture()
def bad(tmp_path: Path) -> tuple[dict[str, Any], str]:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_TEMPLATE)
    template, matches = decode(str(path))
    assert template is not None, matches
    return template, BAD_TEMPLATE


def test_checks_find_their_faults(
    bad: tuple[dict[str, Any], str], templates: dict[str, Any]
) -> None:
    template, source = bad
    assert unmatched_imports("bad", {**templates, "bad": template}, [*stacks.layers(), "bad"]) == [
        "import ${NetworkStack}-NoSuchExport: network exports no NoSuchExport"
    ]
    assert unexported_outputs(template) != []
    assert sorted(untagged_resources(template)) == [
        "Logs: tag environment is not !Ref Environment",
        "Role: tag environment is not !Ref Environment",
    ]
    assert log_groups_without_retention(template) == ["Logs: log group without RetentionInDays"]
    assert len(unexplained_stars(template, source)) == 2
    explained = source.replace(
        "Resource: '*'", "# star: Describe takes no ARN\n                Resource: '*'"
    )
    assert len(unexplained_stars(template, explained)) == 1
