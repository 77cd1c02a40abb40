"""Every alarm reaches a person: all alarms notify the alarm topic, and the topic always has the
environment's AlarmEmail subscribed (an alarm whose topic has no subscriber tells no one)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from deploy.aws import stacks


def test_every_alarm_notifies_the_topic(templates: dict[str, Any]) -> None:
    alarms = {
        k: r
        for k, r in templates["observability"]["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert alarms
    for logical_id, alarm in alarms.items():
        assert {"Ref": "AlarmTopic"} in alarm["Properties"]["AlarmActions"], logical_id


def test_the_topic_always_has_the_email_subscriber(templates: dict[str, Any]) -> None:
    """SNS delivers to an e-mail endpoint only after its owner follows the link in the
    confirmation message SNS sends when the subscription is created (Amazon SNS Developer Guide,
    "Email notifications"): docs/aws.md tells the operator to confirm it after the deploy. The
    subscription has no condition, and the parameter cannot be left empty."""
    observability = templates["observability"]
    (subscription,) = [
        r for r in observability["Resources"].values() if r["Type"] == "AWS::SNS::Subscription"
    ]
    assert "Condition" not in subscription
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    pattern = re.compile(observability["Parameters"]["AlarmEmail"]["AllowedPattern"])
    assert not pattern.fullmatch("")


@pytest.mark.parametrize("env", stacks.ENVIRONMENTS)
def test_environments_name_an_address(env: str, templates: dict[str, Any]) -> None:
    """An address the template accepts (the committed one is a placeholder that
    make preflight-aws refuses; the operator sets the real one)."""
    pattern = templates["observability"]["Parameters"]["AlarmEmail"]["AllowedPattern"]
    address = stacks.environment(env)["AlarmEmail"]
    assert re.fullmatch(pattern, address)
