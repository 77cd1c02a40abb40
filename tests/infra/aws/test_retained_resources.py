"""What a teardown keeps stays usable, and does not block the next deploy.

CloudFormation keeps a resource with DeletionPolicy Retain (and, for a database, a final snapshot
with Snapshot) when it deletes the stack (AWS CloudFormation User Guide, "DeletionPolicy
attribute"). Two things follow:

- the KMS keys that encrypt what is kept must be kept too: a key scheduled for deletion (7-30
  days, then gone) leaves the kept bucket's objects and the snapshot unreadable forever (AWS KMS
  Developer Guide, "Deleting AWS KMS keys");
- what is kept keeps its name: a fixed name (a bucket's, which is global) makes the next deploy of
  the same stack fail with "already exists". Secrets Manager reserves a deleted secret's name for
  its recovery window (CreateSecret: "a secret with this name is already scheduled for deletion"),
  so a secret's fixed name blocks a redeploy just the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from test_templates import walk

KEPT = {"Retain", "RetainExceptOnCreate", "Snapshot"}
RETAINED = ("Retain", "RetainExceptOnCreate")


def kept(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template["Resources"].items():
        if resource.get("DeletionPolicy") in KEPT:
            yield logical_id, resource


def key_ids(template: dict[str, Any]) -> set[str]:
    return {k for k, r in template["Resources"].items() if r["Type"] == "AWS::KMS::Key"}


def keys_used(
    resource: dict[str, Any], layer: str, templates: dict[str, dict[str, Any]]
) -> set[tuple[str, str]]:
    """(layer, key logical id) of every KMS key the resource refers to, here or by import."""
    found = set()
    for node in walk(resource.get("Properties", {})):
        if not isinstance(node, dict):
            continue
        target = node.get("Ref") or (node.get("Fn::GetAtt") or [None])[0]
        if target in key_ids(templates[layer]):
            found.add((layer, target))
        imported = node.get("Fn::ImportValue")
        if isinstance(imported, dict) and "Fn::Sub" in imported:
            source, name = imported["Fn::Sub"].split("}-", 1)
            source_layer = source.removeprefix("${").removesuffix("Stack").lower()
            output = templates.get(source_layer, {}).get("Outputs", {}).get(name, {})
            value = output.get("Value", {})
            target = (value.get("Fn::GetAtt") or [value.get("Ref")])[0]
            if target in key_ids(templates.get(source_layer, {"Resources": {}})):
                found.add((source_layer, target))
    return found


def keys_not_kept(templates: dict[str, dict[str, Any]]) -> list[str]:
    findings = []
    for layer, template in templates.items():
        for logical_id, resource in kept(template):
            for key_layer, key in sorted(keys_used(resource, layer, templates)):
                policy = templates[key_layer]["Resources"][key]
                if (
                    policy.get("DeletionPolicy") not in RETAINED
                    or policy.get("UpdateReplacePolicy") != "Retain"
                ):
                    findings.append(f"{layer}/{logical_id} is kept, its key {key_layer}/{key} not")
    return findings


def fixed_names(layer: str, template: dict[str, Any]) -> list[str]:
    """Kept resources whose identifier (a name) the template sets, and secrets with a Name."""
    findings = []
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::SecretsManager::Secret" and "Name" in properties:
            findings.append(f"{layer}/{logical_id}: secret Name (reserved after deletion)")
        if resource.get("DeletionPolicy") not in RETAINED:
            continue  # Snapshot keeps a copy under a name of its own, not the resource
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource["Type"]).schema
        read_only = {p.rsplit("/", 1)[1] for p in schema.get("readOnlyProperties", [])}
        for pointer in schema.get("primaryIdentifier", []):
            name = pointer.rsplit("/", 1)[1]
            if name in properties and name not in read_only:
                findings.append(f"{layer}/{logical_id}: kept with a fixed {name}")
    return findings


def test_keys_of_what_is_kept_are_kept(templates: dict[str, Any]) -> None:
    assert keys_not_kept(templates) == []
    # The kept things this rests on: the trail bucket and the database's final snapshot.
    assert {
        (layer, logical_id)
        for layer, t in templates.items()
        for logical_id, _ in kept(t)
        if keys_used(t["Resources"][logical_id], layer, templates)
    } >= {("security", "TrailBucket"), ("data", "Database")}


def test_a_failed_first_create_keeps_nothing(templates: dict[str, Any]) -> None:
    """R10: DeletionPolicy Retain also keeps a resource when the stack's first create fails and
    rolls back, so every failed first deploy left a KMS key (billed monthly) and a bucket behind.
    RetainExceptOnCreate keeps it on stack deletion only (AWS CloudFormation User Guide,
    "DeletionPolicy attribute",
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html).
    UpdateReplacePolicy has no such value (Delete, Retain, Snapshot): a replaced key or bucket
    stays Retain ("UpdateReplacePolicy attribute")."""
    retained = [
        (layer, logical_id, resource)
        for layer, t in templates.items()
        for logical_id, resource in t["Resources"].items()
        if resource.get("DeletionPolicy") in RETAINED
    ]
    assert retained
    for layer, logical_id, resource in retained:
        assert resource["DeletionPolicy"] == "RetainExceptOnCreate", (layer, logical_id)
        assert resource.get("UpdateReplacePolicy") == "Retain", (layer, logical_id)


def test_nothing_kept_has_a_fixed_name(templates: dict[str, Any]) -> None:
    findings = [f for layer, t in templates.items() for f in fixed_names(layer, t)]
    assert findings == []


BAD = """\
Resources:
  Key:
    Type: AWS::KMS::Key
    Properties: {KeyPolicy: {}}
  Bucket:
    Type: AWS::S3::Bucket
    DeletionPolicy: Retain
    Properties:
      BucketName: fixed-name
      BucketEncryption:
        ServerSideEncryptionConfiguration:
          - ServerSideEncryptionByDefault: {SSEAlgorithm: aws:kms, KMSMasterKeyID: !GetAtt Key.Arn}
  Secret:
    Type: AWS::SecretsManager::Secret
    Properties: {Name: fixed}
"""


@pytest.fixture()
def bad(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    template, matches = decode(str(path))
    assert template is not None, matches
    return template


def test_checks_find_their_faults(bad: dict[str, Any]) -> None:
    assert keys_not_kept({"bad": bad}) == ["bad/Bucket is kept, its key bad/Key not"]
    assert fixed_names("bad", bad) == [
        "bad/Bucket: kept with a fixed BucketName",
        "bad/Secret: secret Name (reserved after deletion)",
    ]
