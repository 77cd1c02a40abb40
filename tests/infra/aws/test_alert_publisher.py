"""The cluster's Alertmanager can publish the SLO alerts to the alarm topic, and nothing else: its
IRSA role (observability stack) may call sns:Publish on that topic and use the topic's KMS key
through SNS only, and neither the topic's policy nor the key's stands in the way. moto evaluates
no policy, so this reads the templates; what only AWS shows is in docs/decisions/alert-routing.md.
"""

from __future__ import annotations

from typing import Any

from test_edge_roles import role_statements

TELEMETRY_KEY = {"Fn::ImportValue": {"Fn::Sub": "${SecurityStack}-TelemetryKeyArn"}}


def test_the_role_publishes_to_the_alarm_topic_only(templates: dict[str, Any]) -> None:
    """Publishing to a topic encrypted with a customer managed key takes sns:Publish on the topic
    and kms:GenerateDataKey* and kms:Decrypt on its key (Amazon SNS Developer Guide, "Managing
    Amazon SNS encryption keys and costs",
    https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html); kms:ViaService keeps the
    key to calls SNS makes for the role
    (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service)."""
    statements = role_statements(templates["observability"], "AlertmanagerRole")
    assert [(s["Effect"], s["Action"], s["Resource"]) for s in statements] == [
        ("Allow", "sns:Publish", {"Ref": "AlarmTopic"}),
        ("Allow", ["kms:GenerateDataKey*", "kms:Decrypt"], TELEMETRY_KEY),
    ]
    assert "Condition" not in statements[0]
    assert statements[1]["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "sns.${AWS::Region}.amazonaws.com"}}
    }


def test_the_key_is_the_topics(templates: dict[str, Any]) -> None:
    topic = templates["observability"]["Resources"]["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == TELEMETRY_KEY


def test_the_key_policy_lets_iam_grant_its_use(templates: dict[str, Any]) -> None:
    """A key policy statement giving the account's root principal kms:* makes IAM policies of the
    account effective for the key (AWS KMS Developer Guide, "Default key policy": "Allows access
    to the AWS account and enables IAM policies",
    https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html); without it the
    role's KMS statement would grant nothing. No Deny statement overrides it."""
    key = templates["security"]["Resources"]["TelemetryKey"]["Properties"]["KeyPolicy"]
    root = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    account = [s for s in key["Statement"] if s.get("Principal") == root]
    assert [(s["Effect"], s["Action"], s.get("Condition")) for s in account] == [
        ("Allow", "kms:*", None)
    ]
    assert all(s["Effect"] == "Allow" for s in key["Statement"])


def test_the_topic_policy_refuses_only_plain_http(templates: dict[str, Any]) -> None:
    """Within one account an Allow in the principal's identity policy is enough unless a policy
    denies (IAM User Guide, "Policy evaluation logic",
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html);
    the topic's only Deny is for requests without TLS, and the AWS SDK Alertmanager uses calls
    SNS over HTTPS."""
    policy = templates["observability"]["Resources"]["AlarmTopicPolicy"]["Properties"]
    denials = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert [s["Condition"] for s in denials] == [{"Bool": {"aws:SecureTransport": "false"}}]
