"""The account security baseline (templates/baseline.yaml), read from the template: moto has no
CloudFormation model for GuardDuty, ECR's registry scanning, Config's recorder, delivery channel
and conformance pack, or Security Hub (test_moto_smoke.py stands in for them), and evaluates no
policy. What only AWS shows: that the services accept these settings in the chosen Region, that
the recorder starts, that findings are produced and that EventBridge's delivery to the encrypted
topic succeeds (its FailedInvocations metric; docs/aws.md, "The security baseline").
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest
import yaml
from deploy.aws import stacks

Template = dict[str, Any]
ALARM_TOPIC = {"Fn::ImportValue": {"Fn::Sub": "${ObservabilityStack}-AlarmTopicArn"}}
TRAIL_BUCKET = {"Fn::ImportValue": {"Fn::Sub": "${SecurityStack}-TrailBucketName"}}
TELEMETRY_KEY = {"Fn::ImportValue": {"Fn::Sub": "${SecurityStack}-TelemetryKeyArn"}}


def resources(template: Template, kind: str) -> dict[str, Any]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def only(template: Template, kind: str) -> dict[str, Any]:
    (resource,) = resources(template, kind).values()
    properties: dict[str, Any] = resource["Properties"]
    return properties


def test_nothing_is_created_unless_the_environment_enables_it(templates: dict[str, Any]) -> None:
    """A stack must hold a resource, so a disabled baseline holds one that does nothing
    (AWS::CloudFormation::WaitConditionHandle); everything else needs EnableSecurityBaseline."""
    baseline = templates["baseline"]
    assert baseline["Conditions"]["BaselineEnabled"] == {
        "Fn::Equals": [{"Ref": "EnableSecurityBaseline"}, "true"]
    }
    conditions = {k: r.get("Condition") for k, r in baseline["Resources"].items()}
    assert conditions.pop("Disabled") == "BaselineDisabled"
    assert set(conditions.values()) == {"BaselineEnabled"}
    assert baseline["Resources"]["Disabled"]["Type"] == "AWS::CloudFormation::WaitConditionHandle"


@pytest.mark.parametrize("env", stacks.ENVIRONMENTS)
def test_each_environment_chooses_and_one_account_enables_it_once(env: str) -> None:
    """GuardDuty (one detector per account and Region: GuardDuty API Reference, CreateDetector),
    Security Hub (EnableSecurityHub), the Config recorder (one per account and Region: AWS Config
    Developer Guide, "Managing the configuration recorder") and the registry's scanning
    configuration (one per registry) are singletons: environments in one account (that of
    AdminRoleArn) enable the baseline at most once; prod enables it."""
    values = stacks.environment(env)
    assert values["EnableSecurityBaseline"] in ("true", "false")
    account = values["AdminRoleArn"].split(":")[4]
    enabled = [
        other
        for other in stacks.ENVIRONMENTS
        if stacks.environment(other)["AdminRoleArn"].split(":")[4] == account
        and stacks.environment(other)["EnableSecurityBaseline"] == "true"
    ]
    assert len(enabled) <= 1, f"{enabled} share account {account}: enable the baseline in one"
    assert stacks.environment("prod")["EnableSecurityBaseline"] == "true"


def test_guardduty_watches_eks_rds_and_s3_without_an_agent(templates: dict[str, Any]) -> None:
    """Feature names of the GuardDuty API (DetectorFeatureConfiguration: S3_DATA_EVENTS,
    EKS_AUDIT_LOGS, EBS_MALWARE_PROTECTION, RDS_LOGIN_EVENTS, EKS_RUNTIME_MONITORING,
    LAMBDA_NETWORK_LOGS, RUNTIME_MONITORING; "Specifying both EKS_RUNTIME_MONITORING and
    RUNTIME_MONITORING will cause an error",
    https://docs.aws.amazon.com/guardduty/latest/APIReference/API_DetectorFeatureConfiguration.html).
    Runtime Monitoring's automated agent makes GuardDuty create a VPC endpoint and a security group
    in the VPC, deleted only once Runtime Monitoring is disabled, which breaks an IaC teardown of
    the VPC (https://docs.aws.amazon.com/guardduty/latest/ug/using-iac-with-gdu-automated-agents-runtime-monitoring.html):
    it stays off, stated rather than left to the service's default."""
    detector = only(templates["baseline"], "AWS::GuardDuty::Detector")
    assert detector["Enable"] is True
    features = {f["Name"]: f for f in detector["Features"]}
    assert set(features) == {
        "S3_DATA_EVENTS",
        "EKS_AUDIT_LOGS",
        "EBS_MALWARE_PROTECTION",
        "RDS_LOGIN_EVENTS",
        "LAMBDA_NETWORK_LOGS",
        "RUNTIME_MONITORING",
    }
    enabled = {name for name, f in features.items() if f["Status"] == "ENABLED"}
    assert {"S3_DATA_EVENTS", "EKS_AUDIT_LOGS", "RDS_LOGIN_EVENTS"} <= enabled
    assert "RUNTIME_MONITORING" not in enabled
    assert features["RUNTIME_MONITORING"]["AdditionalConfiguration"] == [
        {"Name": "EKS_ADDON_MANAGEMENT", "Status": "DISABLED"}
    ]


def test_inspector_scans_every_environments_repository(templates: dict[str, Any]) -> None:
    """ENHANCED registry scanning is Amazon Inspector's ECR scanning, activated through ECR's API
    (Amazon Inspector User Guide, "Amazon Inspector integration with Amazon ECR",
    https://docs.aws.amazon.com/inspector/latest/user/ecr-integration.html); CloudFormation has no
    type that enables Inspector itself (AWS::InspectorV2: CisScanConfiguration,
    CodeSecurityIntegration, CodeSecurityScanConfiguration, Filter,
    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/AWS_InspectorV2.html).
    The configuration is the registry's: its filter covers each environment's repository."""
    scanning = only(templates["baseline"], "AWS::ECR::RegistryScanningConfiguration")
    assert scanning["ScanType"] == "ENHANCED"
    (rule,) = scanning["Rules"]
    assert rule["ScanFrequency"] == "CONTINUOUS_SCAN"
    (repository_filter,) = rule["RepositoryFilters"]
    assert repository_filter["FilterType"] == "WILDCARD"
    repository = templates["cluster"]["Resources"]["Repository"]["Properties"]["RepositoryName"]
    pattern = repository_filter["Filter"]["Fn::Sub"]
    for env in stacks.ENVIRONMENTS:
        app = stacks.environment(env)["App"]
        name = repository["Fn::Sub"].replace("${App}", app).replace("${Environment}", env)
        assert fnmatch.fnmatchcase(name, pattern.replace("${App}", app)), (name, pattern)


def test_config_records_everything_into_the_trail_bucket(templates: dict[str, Any]) -> None:
    """The recorder's role has AWS's managed AWS_ConfigRole and may write only where the delivery
    channel delivers: <prefix>/AWSLogs/<account>/Config/ (AWS Config Developer Guide,
    "Permissions for the Amazon S3 Bucket for the AWS Config Delivery Channel"), encrypted with
    the bucket's key through S3."""
    baseline = templates["baseline"]
    recorder = only(baseline, "AWS::Config::ConfigurationRecorder")
    assert recorder["RecordingGroup"] == {"AllSupported": True, "IncludeGlobalResourceTypes": True}
    assert recorder["RoleARN"] == {"Fn::GetAtt": ["ConfigRole", "Arn"]}
    channel = only(baseline, "AWS::Config::DeliveryChannel")
    # "Before you can create a delivery channel, you must create a configuration recorder"
    # (AWS::Config::DeliveryChannel, CloudFormation Template Reference).
    assert baseline["Resources"]["ConfigDeliveryChannel"]["DependsOn"] == "ConfigRecorder"
    assert channel["S3BucketName"] == TRAIL_BUCKET
    assert channel["S3KmsKeyArn"] == TELEMETRY_KEY
    role = baseline["Resources"]["ConfigRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWS_ConfigRole"}
    ]
    (policy,) = role["Policies"]
    writes = [s for s in policy["PolicyDocument"]["Statement"] if s["Action"] == "s3:PutObject"]
    (write,) = writes
    arn = write["Resource"]["Fn::Sub"][0]
    assert arn.endswith(f"/{channel['S3KeyPrefix']}/AWSLogs/${{AWS::AccountId}}/Config/*")


def test_the_conformance_pack_holds_managed_rules_only(templates: dict[str, Any]) -> None:
    """Each rule of the pack is an AWS managed rule (Owner AWS, a SourceIdentifier), so the pack
    needs no Lambda function of ours; AWS Config Developer Guide, "Conformance Pack Sample
    Templates" and "List of AWS Config Managed Rules"."""
    pack = only(templates["baseline"], "AWS::Config::ConformancePack")
    body = yaml.safe_load(pack["TemplateBody"])
    rules = body["Resources"].values()
    assert len(rules) >= 10
    for rule in rules:
        assert rule["Type"] == "AWS::Config::ConfigRule"
        assert rule["Properties"]["Source"]["Owner"] == "AWS"
        assert rule["Properties"]["Source"]["SourceIdentifier"].isupper()
    identifiers = {r["Properties"]["Source"]["SourceIdentifier"] for r in rules}
    assert {"GUARDDUTY_ENABLED_CENTRALIZED", "SECURITYHUB_ENABLED"} <= identifiers


def test_security_hub_runs_the_foundational_standard_only(templates: dict[str, Any]) -> None:
    """EnableDefaultStandards false: the hub enables no standard of its own choosing; the
    AWS Foundational Security Best Practices standard's ARN is
    arn:<partition>:securityhub:<region>::standards/aws-foundational-security-best-practices/v/1.0.0
    (AWS::SecurityHub::Standard's StandardsArn, from DescribeStandards)."""
    baseline = templates["baseline"]
    hub = only(baseline, "AWS::SecurityHub::Hub")
    assert hub["EnableDefaultStandards"] is False
    standard = baseline["Resources"]["FoundationalStandard"]
    assert standard["DependsOn"] == "SecurityHub"
    assert standard["Properties"]["StandardsArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:securityhub:${AWS::Region}::standards/"
        "aws-foundational-security-best-practices/v/1.0.0"
    }


def test_findings_of_high_severity_reach_the_alarm_topic(templates: dict[str, Any]) -> None:
    """GuardDuty's High is 7.0-8.9 and Critical 9.0-10.0 (GuardDuty User Guide, "Severity levels
    of GuardDuty findings"); Inspector and Security Hub label them HIGH and CRITICAL. Each rule's
    only target is the alarm topic; the full patterns are asserted in test_moto_smoke.py."""
    rules = resources(templates["baseline"], "AWS::Events::Rule")
    assert len(rules) == 3
    sources = set()
    for rule in rules.values():
        properties = rule["Properties"]
        assert properties["State"] == "ENABLED"
        assert [t["Arn"] for t in properties["Targets"]] == [ALARM_TOPIC]
        assert properties["Name"]["Fn::Sub"].startswith("${App}-${Environment}-")
        sources |= set(properties["EventPattern"]["source"])
    assert sources == {"aws.guardduty", "aws.inspector2", "aws.securityhub"}


def test_eventbridge_may_publish_to_the_encrypted_topic(templates: dict[str, Any]) -> None:
    """An EventBridge rule publishes to a topic only if the topic's policy allows
    events.amazonaws.com sns:Publish, and to an encrypted one only if the key's policy allows it
    kms:Decrypt and kms:GenerateDataKey* (EventBridge User Guide, "Using resource-based policies
    for Amazon EventBridge", Amazon SNS permissions,
    https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sns-permissions).
    The topic's statement is limited to this environment's rules, whose names it matches."""
    topic_policy = only(templates["observability"], "AWS::SNS::TopicPolicy")
    (statement,) = [
        s
        for s in topic_policy["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "events.amazonaws.com"}
    ]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "sns:Publish")
    source = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    for rule in resources(templates["baseline"], "AWS::Events::Rule").values():
        name = rule["Properties"]["Name"]["Fn::Sub"]
        arn = f"arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:rule/{name}"
        assert fnmatch.fnmatchcase(arn, source), (arn, source)
    key = templates["security"]["Resources"]["TelemetryKey"]["Properties"]["KeyPolicy"]
    (grant,) = [
        s for s in key["Statement"] if s.get("Principal") == {"Service": "events.amazonaws.com"}
    ]
    assert grant["Effect"] == "Allow"
    assert set(grant["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_the_baseline_comes_after_the_topic_and_before_nothing_it_needs(
    layers: list[str], templates: dict[str, Any]
) -> None:
    """It imports the alarm topic and the trail bucket, so it follows observability and security;
    teardown (reverse order) deletes it before the topic it publishes to."""
    assert layers.index("baseline") > layers.index("observability")
    body = json.dumps(templates["baseline"])
    assert "${ObservabilityStack}-AlarmTopicArn" in body
    assert "${SecurityStack}-TrailBucketName" in body
