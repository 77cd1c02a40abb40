"""Deploy every stack, in the order of deploy/aws/stacks, into moto (AWS mocked in-process).

What this proves: each template is accepted by a CloudFormation implementation with this
environment's parameters; the imports resolve against the exports of the stacks before it; the
resources moto really creates have the settings the templates ask for, read back through the
service APIs (EC2, KMS, S3, CloudWatch Logs, IAM, RDS, SNS, ECR, CloudFormation exports).

What the mock cannot see: moto has no CloudFormation model for the types in STAND_INS (EKS, ACM,
WAFv2, CloudTrail, the IAM OIDC providers, alarms, bucket and topic policies, SNS subscriptions,
and all of the security baseline but its EventBridge rules and Config role: GuardDuty, ECR's
registry scanning, Config's recorder, delivery channel and conformance pack, Security Hub).
Secrets Manager secrets have no model either, but moto's Secrets Manager API is real: BRIDGES
creates them through it (a generated password, as GenerateSecretString asks), so they are asserted.
What the EKS add-ons do once the cluster stack exists is played by AFTER_STACK: the observability
add-on creates its Container Insights log groups when they are missing, as its Fluent Bit does.
A stand-in lets their stack complete and returns placeholder attributes (an ARN-shaped string, an
issuer URL, a security group for the EKS cluster) so that later stacks can import them; nothing is
asserted about them here (cfn-lint, checkov and cfn-guard check their properties).

Among the types moto does create, its models drop some properties, so these are not asserted here
either (the static checks cover them): S3 versioning, public access block, lifecycle and ownership;
log groups' KMS keys; ECR scan-on-push and KMS encryption; security group egress rules. moto does
not enforce IAM or key policies, does not validate managed policy ARNs, add-on names or instance
classes, and does not run change sets, updates or rollbacks the way CloudFormation does.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError
from deploy.aws import stacks
from moto import mock_aws
from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel
from moto.ec2.models import ec2_backends
from moto.ec2.models.subnets import Subnet
from moto.kms.models import KmsBackend
from moto.rds.models import DBInstance, rds_backends
from moto.secretsmanager.models import secretsmanager_backends

REGION = "us-east-1"

# Types moto's CloudFormation cannot create, each replaced by a stand-in (see the docstring).
# Any other unsupported type fails the test; a type moto learns to create fails it too, so that
# the test then asserts on it instead.
STAND_INS = {
    "AWS::CloudTrail::Trail": "moto has a CloudTrail API but no CloudFormation model",
    "AWS::EKS::Cluster": "moto has no CloudFormation model for EKS",
    "AWS::EKS::Nodegroup": "moto has no CloudFormation model for EKS",
    "AWS::EKS::Addon": "moto has no CloudFormation model for EKS",
    "AWS::EKS::AccessEntry": "moto has no CloudFormation model for EKS",
    "AWS::IAM::OIDCProvider": "moto has the IAM API but no CloudFormation model for OIDC providers",
    "AWS::CertificateManager::Certificate": "DNS validation cannot happen offline",
    "AWS::WAFv2::WebACL": "moto has no CloudFormation model for WAFv2",
    "AWS::WAFv2::LoggingConfiguration": "moto has no CloudFormation model for WAFv2",
    "AWS::CloudWatch::Alarm": "moto has no CloudFormation model for alarms",
    "AWS::S3::BucketPolicy": "moto has no CloudFormation model for bucket policies",
    "AWS::SNS::TopicPolicy": "moto has no CloudFormation model for topic policies",
    "AWS::SNS::Subscription": "moto has no CloudFormation model for subscriptions",
    # The security baseline (baseline.yaml): moto has APIs for some of these services, but no
    # CloudFormation model for any of them; the EventBridge rules and the Config role are native.
    "AWS::GuardDuty::Detector": "moto has a GuardDuty API but no CloudFormation model",
    "AWS::ECR::RegistryScanningConfiguration": "moto has no CloudFormation model for it",
    "AWS::Config::ConfigurationRecorder": "moto has a Config API but no CloudFormation model",
    "AWS::Config::DeliveryChannel": "moto has a Config API but no CloudFormation model",
    "AWS::Config::ConformancePack": "moto has no CloudFormation model for conformance packs",
    "AWS::SecurityHub::Hub": "moto has no CloudFormation model for Security Hub",
    "AWS::SecurityHub::Standard": "moto has no CloudFormation model for Security Hub",
}

# Types moto's CloudFormation skips on purpose (parsing.NULL_MODELS), warning as for a type it
# cannot create; a stand-in cannot replace them. The baseline stack's placeholder when it is
# disabled is one: it creates nothing on AWS either.
IGNORED = {
    "AWS::CloudFormation::WaitConditionHandle": "moto skips it (NULL_MODELS); nothing to see",
}

# Types moto's CloudFormation cannot create but its service API can: created through that API.
BRIDGES = {
    "AWS::SecretsManager::Secret": "moto has the Secrets Manager API but no CloudFormation model",
}

NATIVE_TYPES = set(parsing.get_model_map())


def _secret_bridge() -> type[CloudFormationModel]:
    """AWS::SecretsManager::Secret through moto's Secrets Manager API (GenerateSecretString)."""

    class SecretBridge(CloudFormationModel):
        __module__ = "moto.secretsbridge"

        def __init__(self, arn: str) -> None:
            self.arn = arn

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::SecretsManager::Secret"

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @classmethod
        def create_from_cloudformation_json(
            cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
        ):  # type: ignore[no-untyped-def]
            properties = cloudformation_json["Properties"]
            generate = properties["GenerateSecretString"]
            backend = secretsmanager_backends[account_id][region_name]
            answer = backend.get_random_password(
                password_length=int(generate.get("PasswordLength", 32)),
                exclude_characters=generate.get("ExcludeCharacters", ""),
                exclude_numbers=False,
                exclude_punctuation=bool(generate.get("ExcludePunctuation", False)),
                exclude_uppercase=False,
                exclude_lowercase=False,
                include_space=False,
                require_each_included_type=True,
            )
            password = json.loads(answer)["RandomPassword"]  # moto answers with the API's JSON
            value = json.loads(generate["SecretStringTemplate"])
            value[generate["GenerateStringKey"]] = password
            created = backend.create_secret(
                name=resource_name,  # CloudFormation's generated name: the template sets none
                secret_string=json.dumps(value),
                secret_binary=None,
                description=properties.get("Description"),
                tags=properties.get("Tags"),
                kms_key_id=properties.get("KmsKeyId"),
                client_request_token=None,
                replica_regions=[],
                force_overwrite=False,
            )
            return cls(json.loads(created)["ARN"])

        @property
        def physical_resource_id(self) -> str:
            return self.arn

    return SecretBridge


def container_insights_writes_its_log_groups(env: str) -> None:
    """What the amazon-cloudwatch-observability add-on does once it runs: Fluent Bit
    (auto_create_group) and the CloudWatch agent create their log groups when missing."""
    logs = boto3.client("logs", region_name=REGION)
    cluster = exported(env, "cluster", "ClusterName")
    existing = {g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]}
    for kind in CONTAINER_INSIGHTS_LOGS:
        name = f"/aws/containerinsights/{cluster}/{kind}"
        if name not in existing:
            logs.create_log_group(logGroupName=name)


# Container Insights' log groups (Amazon CloudWatch User Guide, "Container Insights: Fluent Bit
# setup", and the add-on's Fluent Bit outputs with auto_create_group true).
CONTAINER_INSIGHTS_LOGS = ("application", "dataplane", "host", "performance")

# What runs in the account between one stack and the next.
AFTER_STACK = {"cluster": container_insights_writes_its_log_groups}


def _stand_in(resource_type: str) -> type[CloudFormationModel]:
    class StandIn(CloudFormationModel):
        __module__ = (
            "moto.standin"  # moto's model metaclass files models by their moto.<service> module
        )

        def __init__(self, logical_id: str, properties: dict[str, Any], account: str, region: str):
            self.logical_id, self.properties = logical_id, properties
            service = resource_type.split("::")[1].lower()
            self.arn = f"arn:aws:standin:{region}:{account}:{service}/{logical_id}"
            self.security_group_id = None
            if resource_type == "AWS::EKS::Cluster":
                # EKS creates a cluster security group in the cluster's VPC; data opens to it.
                ec2 = ec2_backends[account][region]
                subnet = ec2.get_subnet(properties["ResourcesVpcConfig"]["SubnetIds"][0])
                group = ec2.create_security_group(
                    f"eks-cluster-sg-{logical_id}", "stand-in", subnet.vpc_id
                )
                self.security_group_id = group.id

        @staticmethod
        def cloudformation_type() -> str:
            return resource_type

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return True

        @classmethod
        def create_from_cloudformation_json(
            cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
        ):  # type: ignore[no-untyped-def]
            return cls(
                kwargs["LogicalId"],
                cloudformation_json.get("Properties", {}),
                account_id,
                region_name,
            )

        @property
        def physical_resource_id(self) -> str:
            if resource_type == "AWS::EKS::Cluster":
                return str(self.properties["Name"])
            return self.arn

        def get_cfn_attribute(self, attribute_name: str) -> str:
            if attribute_name == "OpenIdConnectIssuerUrl":
                return (
                    f"https://oidc.eks.{REGION}.amazonaws.com/id/STANDIN{self.logical_id.upper()}"
                )
            if attribute_name == "ClusterSecurityGroupId" and self.security_group_id:
                return self.security_group_id
            return self.arn

    StandIn.__name__ = "StandIn" + re.sub(r"\W", "", resource_type)
    return StandIn


@pytest.fixture(scope="module")
def stand_ins() -> Iterator[None]:
    # A subclass registers itself with moto's model map, which holds it only weakly: keep it here.
    models = [_stand_in(resource_type) for resource_type in STAND_INS] + [_secret_bridge()]
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    yield
    del models


@pytest.fixture(scope="module")
def moto_fixes() -> Iterator[None]:
    """Three gaps in moto 5.2's CloudFormation models, bridged to moto's own service APIs.

    KMS: the model hands CloudFormation's {Key, Value} tags to an API expecting {TagKey, TagValue}.
    RDS: the model drops ManageMasterUserPassword, MasterUserSecret, DeletionProtection and
    VPCSecurityGroups, and has no MasterUserSecret.SecretArn attribute; they are passed to moto's
    RDS API after creation, which then creates the secret in its Secrets Manager. A Ref to a
    parameter group yields moto's object, not its name; the name is passed instead.
    EC2: a subnet has no CidrBlock attribute in moto (CloudFormation has one); its range is given.
    """
    create_key = KmsBackend.create_key
    create_db = DBInstance.create_from_cloudformation_json.__func__
    get_attribute = DBInstance.get_cfn_attribute

    def create_key_with_cfn_tags(self, *args, tags=None, **kwargs):  # type: ignore[no-untyped-def]
        tags = [
            {"TagKey": t["Key"], "TagValue": t["Value"]} if "Key" in t else t for t in tags or []
        ]
        return create_key(self, *args, tags=tags, **kwargs)

    def create_db_with_all_properties(cls, name, template, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        properties = template["Properties"]
        group = properties.get("DBParameterGroupName")
        properties["DBParameterGroupName"] = getattr(group, "name", group)
        database = create_db(cls, name, template, account_id, region_name, **kwargs)
        rds_backends[account_id][region_name].modify_db_instance(
            database.db_instance_identifier,
            {
                "manage_master_user_password": properties.get("ManageMasterUserPassword"),
                "master_user_secret_kms_key_id": properties.get("MasterUserSecret", {}).get(
                    "KmsKeyId"
                ),
                "deletion_protection": str(properties.get("DeletionProtection")).lower() == "true",
                "vpc_security_group_ids": properties.get("VPCSecurityGroups"),
            },
        )
        return database

    def get_attribute_with_secret(self, attribute_name):  # type: ignore[no-untyped-def]
        if attribute_name == "MasterUserSecret.SecretArn":
            return self.master_user_secret.secret_arn
        return get_attribute(self, attribute_name)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(KmsBackend, "create_key", create_key_with_cfn_tags)
        patch.setattr(
            DBInstance,
            "create_from_cloudformation_json",
            classmethod(create_db_with_all_properties),
        )
        patch.setattr(
            DBInstance,
            "has_cfn_attr",
            classmethod(
                lambda cls, attr: (
                    attr in {"Endpoint.Address", "Endpoint.Port", "MasterUserSecret.SecretArn"}
                )
            ),
        )
        patch.setattr(DBInstance, "get_cfn_attribute", get_attribute_with_secret)
        patch.setattr(Subnet, "has_cfn_attr", classmethod(lambda cls, attr: attr == "CidrBlock"))
        patch.setattr(Subnet, "get_cfn_attribute", lambda self, attr: self.cidr_block)
        yield


def deploy(env: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Create every stack in order; return {layer: stack description} and moto's warnings."""
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    described, problems = {}, []
    for layer in stacks.layers():
        name = stacks.stack_name(env, layer)
        # The template as CloudFormation parses it (moto's YAML reader splits !GetAtt a.b.c).
        body = json.dumps(stacks.load_template(layer))
        parameters = [
            {"ParameterKey": k, "ParameterValue": v}
            for k, v in stacks.parameters(env, layer).items()
        ]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                cloudformation.create_stack(
                    StackName=name,
                    TemplateBody=body,
                    Parameters=parameters,
                    Capabilities=["CAPABILITY_NAMED_IAM"],
                    Tags=[
                        {"Key": "app", "Value": "registro"},
                        {"Key": "environment", "Value": env},
                    ],
                )
            except (ClientError, ResponseParserError) as error:
                # moto raises a resource's failure (e.g. a log group that exists) from CreateStack.
                return described, [*problems, f"{layer}: creation failed: {error}"]
        problems += [
            f"{layer}: {w.message}"
            for w in caught
            if "not supported" in str(w.message)
            and not any(f"parse {kind} " in str(w.message) for kind in IGNORED)
        ]
        described[layer] = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if layer in AFTER_STACK:
            AFTER_STACK[layer](env)
    return described, problems


@pytest.fixture(scope="module", params=stacks.ENVIRONMENTS)
def deployed(
    request: pytest.FixtureRequest, stand_ins: None, moto_fixes: None
) -> Iterator[tuple[str, dict[str, Any]]]:
    with mock_aws():
        described, problems = deploy(request.param)
        assert problems == [], "a stack failed, or moto cannot create a type (stand-in: a reason)"
        yield request.param, described


def test_stand_ins_are_for_types_moto_cannot_create(
    layers: list[str], templates: dict[str, Any]
) -> None:
    used = {r["Type"] for t in templates.values() for r in t["Resources"].values()}
    replaced = set(STAND_INS) | set(BRIDGES)
    assert replaced & NATIVE_TYPES == set(), "moto creates these now: assert on them instead"
    assert replaced <= used, "stand-in for a type no template uses"
    assert set(IGNORED) <= set(parsing.NULL_MODELS), "moto no longer skips these: stand in"
    assert set(IGNORED) <= used, "an ignored type no template uses"


def test_every_stack_completes_and_exports(
    deployed: tuple[str, dict[str, Any]], templates: dict[str, Any]
) -> None:
    env, described = deployed
    assert {layer: s["StackStatus"] for layer, s in described.items()} == dict.fromkeys(
        described, "CREATE_COMPLETE"
    )
    exported = {
        e["Name"]
        for e in boto3.client("cloudformation", region_name=REGION).list_exports()["Exports"]
    }
    expected = {
        f"{stacks.stack_name(env, layer)}-{key}"
        for layer, t in templates.items()
        for key, output in t.get("Outputs", {}).items()
        if "Export" in output
    }
    assert expected <= exported


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def exported(env: str, layer: str, name: str) -> str:
    exports = client("cloudformation").list_exports()["Exports"]
    return next(
        e["Value"] for e in exports if e["Name"] == f"{stacks.stack_name(env, layer)}-{name}"
    )


def test_network(deployed: tuple[str, dict[str, Any]]) -> None:
    env, described = deployed
    values = stacks.environment(env)
    ec2 = client("ec2")
    vpc_id = exported(env, "network", "VpcId")
    vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    assert vpc["CidrBlock"] == f"10.{values['VpcClassB']}.0.0/16"
    assert {"Key": "environment", "Value": env} in vpc["Tags"]

    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    private = set(exported(env, "network", "PrivateSubnetIds").split(","))
    public = set(exported(env, "network", "PublicSubnetIds").split(","))
    assert {s["SubnetId"] for s in subnets} == private | public and len(private) == len(public) == 3
    assert len({s["AvailabilityZone"] for s in subnets if s["SubnetId"] in private}) == 3
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets)
    # The subnets' ranges, as the Kubernetes NetworkPolicies read them from the stack's outputs.
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["network"]["Outputs"]}
    cidrs = {s["SubnetId"]: s["CidrBlock"] for s in subnets}
    assert set(outputs["PrivateSubnetCidrs"].split(",")) == {cidrs[i] for i in private}
    assert set(outputs["PublicSubnetCidrs"].split(",")) == {cidrs[i] for i in public}

    nats = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
        "NatGateways"
    ]
    assert len(nats) == int(values["NatGateways"])
    assert {n["SubnetId"] for n in nats} <= public
    tables = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": sorted(private)}]
    )
    for table in tables["RouteTables"]:
        default = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        assert [r.get("NatGatewayId") for r in default] != [None] and default[0][
            "NatGatewayId"
        ] in {n["NatGatewayId"] for n in nats}

    flow_logs = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc_id]}])[
        "FlowLogs"
    ]
    assert [(f["TrafficType"], f["LogDestinationType"]) for f in flow_logs] == [
        ("ALL", "cloud-watch-logs")
    ]


def test_keys_rotate(deployed: tuple[str, dict[str, Any]]) -> None:
    env, _ = deployed
    kms = client("kms")
    for name in ("TelemetryKeyArn", "DataKeyArn"):
        arn = exported(env, "security", name)
        assert kms.get_key_rotation_status(KeyId=arn)["KeyRotationEnabled"] is True


def test_trail_bucket_encrypted_with_the_telemetry_key(
    deployed: tuple[str, dict[str, Any]],
) -> None:
    env, _ = deployed
    s3 = client("s3")
    bucket = exported(env, "security", "TrailBucketName")
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": exported(env, "security", "TelemetryKeyArn"),
    }
    assert {"Key": "environment", "Value": env} in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]


def test_log_groups_have_retention(
    deployed: tuple[str, dict[str, Any]], templates: dict[str, Any]
) -> None:
    env, _ = deployed
    groups = client("logs").describe_log_groups()["logGroups"]
    declared = sum(
        1
        for t in templates.values()
        for r in t["Resources"].values()
        if r["Type"] == "AWS::Logs::LogGroup"
    )
    assert len(groups) == declared
    retention = {g["logGroupName"]: g.get("retentionInDays") for g in groups}
    values = stacks.environment(env)
    assert retention[f"/registro/{env}/vpc-flow-logs"] == int(values["FlowLogRetentionDays"])
    assert retention[f"/aws/eks/registro-{env}/cluster"] == int(
        values["ControlPlaneLogRetentionDays"]
    )
    assert retention[f"/aws/rds/instance/registro-{env}/postgresql"] == int(
        values["DbLogRetentionDays"]
    )
    # Created by the cluster stack before the add-on, not by the add-on (AFTER_STACK) without any.
    for kind in CONTAINER_INSIGHTS_LOGS:
        assert retention[f"/aws/containerinsights/registro-{env}/{kind}"] == int(
            values["ApplicationLogRetentionDays"]
        )
    assert None not in retention.values()


def test_database(deployed: tuple[str, dict[str, Any]]) -> None:
    env, _ = deployed
    rds = client("rds")
    db = rds.describe_db_instances(DBInstanceIdentifier=exported(env, "data", "DbInstanceId"))[
        "DBInstances"
    ][0]
    assert (db["Engine"], db["MultiAZ"], db["StorageEncrypted"], db["PubliclyAccessible"]) == (
        "postgres",
        True,
        True,
        False,
    )
    assert db["KmsKeyId"] == exported(env, "security", "DataKeyArn")
    assert db["DeletionProtection"] is (stacks.environment(env)["DbDeletionProtection"] == "true")
    assert db["BackupRetentionPeriod"] == int(stacks.environment(env)["DbBackupRetentionDays"])
    assert "MasterUserPassword" not in json.dumps(db, default=str)
    secret = client("secretsmanager").describe_secret(SecretId=exported(env, "data", "DbSecretArn"))
    assert secret["KmsKeyId"] == exported(env, "security", "DataKeyArn")

    group = db["DBParameterGroups"][0]["DBParameterGroupName"]
    parameters = rds.describe_db_parameters(DBParameterGroupName=group)["Parameters"]
    assert {p["ParameterName"]: p.get("ParameterValue") for p in parameters}["rds.force_ssl"] == "1"

    (security_group,) = db["VpcSecurityGroups"]
    ec2 = client("ec2")
    sg = ec2.describe_security_groups(GroupIds=[security_group["VpcSecurityGroupId"]])[
        "SecurityGroups"
    ][0]
    nodes = exported(env, "cluster", "ClusterSecurityGroupId")
    assert [
        (
            p["IpProtocol"],
            p["FromPort"],
            p["ToPort"],
            [g["GroupId"] for g in p["UserIdGroupPairs"]],
            p["IpRanges"],
        )
        for p in sg["IpPermissions"]
    ] == [("tcp", 5432, 5432, [nodes], [])]


def test_app_database_login(deployed: tuple[str, dict[str, Any]]) -> None:
    """The service's own login: a generated password under the data key, no fixed name."""
    env, _ = deployed
    secrets = client("secretsmanager")
    arn = exported(env, "data", "DbAppSecretArn")
    assert secrets.describe_secret(SecretId=arn)["KmsKeyId"] == exported(
        env, "security", "DataKeyArn"
    )
    value = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
    assert set(value) == {"username", "password"}
    assert value["username"] == stacks.environment(env)["DbAppUsername"]
    assert len(value["password"]) == 32 and value["password"].isalnum()
    master = json.loads(
        secrets.get_secret_value(SecretId=exported(env, "data", "DbSecretArn"))["SecretString"]
    )
    assert master["username"] != value["username"]


def test_roles_trust_only_their_subjects(deployed: tuple[str, dict[str, Any]]) -> None:
    env, _ = deployed
    iam, values = client("iam"), stacks.environment(env)
    subjects = {
        (a["stack"], a["output"]): f"system:serviceaccount:{a['namespace']}:{a['name']}"
        for a in stacks.service_accounts()
        if a["output"]
    } | {
        ("edge", "ServiceRoleArn"): (
            f"system:serviceaccount:{values['ServiceNamespace']}:{values['ServiceAccountName']}"
        ),
    }
    assert len(subjects) == 7  # six add-ons (argo-rollouts among them) and the service
    issuer = exported(env, "cluster", "OidcIssuer")
    for (layer, output), subject in subjects.items():
        role = iam.get_role(RoleName=exported(env, layer, output).rsplit("/", 1)[1])["Role"]
        (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Condition"]["StringEquals"] == {
            f"{issuer}:aud": "sts.amazonaws.com",
            f"{issuer}:sub": subject,
        }
    service = iam.get_role(RoleName=exported(env, "edge", "ServiceRoleArn").rsplit("/", 1)[1])[
        "Role"
    ]
    assert iam.list_role_policies(RoleName=service["RoleName"])["PolicyNames"] == []
    assert iam.list_attached_role_policies(RoleName=service["RoleName"])["AttachedPolicies"] == []

    deploy = iam.get_role(RoleName=exported(env, "ci", "DeployRoleArn").rsplit("/", 1)[1])["Role"]
    (statement,) = deploy["AssumeRolePolicyDocument"]["Statement"]
    repository, environment = values["GitHubRepository"], values["GitHubEnvironment"]
    subject = f"repo:{repository}:environment:{environment}"
    workflows = f":job_workflow_ref:{repository}/.github/workflows"
    assert statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == [
        f"{subject}{workflows}/deploy.yml@refs/heads/main",
        f"{subject}-rollback{workflows}/deploy.yml@refs/heads/main",
        f"{subject}-rollback{workflows}/rollback.yml@refs/heads/main",
    ]


def test_alarm_topic_encrypted(deployed: tuple[str, dict[str, Any]]) -> None:
    env, _ = deployed
    attributes = client("sns").get_topic_attributes(
        TopicArn=exported(env, "observability", "AlarmTopicArn")
    )
    assert attributes["Attributes"]["KmsMasterKeyId"] == exported(
        env, "security", "TelemetryKeyArn"
    )


def test_alertmanager_publishes_to_the_alarm_topic_only(
    deployed: tuple[str, dict[str, Any]],
) -> None:
    """The role the cluster's Alertmanager signs with may publish to the exported topic and use
    the key that topic is encrypted with, through SNS only (moto stores the policy; it does not
    evaluate it: tests/infra/aws/test_alert_publisher.py reads the template)."""
    env, _ = deployed
    iam = client("iam")
    name = exported(env, "observability", "AlertmanagerRoleArn").rsplit("/", 1)[1]
    (policy,) = iam.list_role_policies(RoleName=name)["PolicyNames"]
    document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
    # moto's CloudFormation model stores an inline policy as the str() of its dict, not JSON.
    statements = ast.literal_eval(document)["Statement"]
    resources = {s["Sid"]: s["Resource"] for s in statements}
    assert resources == {
        "PublishToTheAlarmTopic": exported(env, "observability", "AlarmTopicArn"),
        "EncryptForTheAlarmTopic": exported(env, "security", "TelemetryKeyArn"),
    }


def test_repository_tags_immutable(deployed: tuple[str, dict[str, Any]]) -> None:
    """Immutable but for cosign's sha256-<digest>.sig/.att tags (ECR's tag mutability exclusion
    filters: https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html)."""
    env, _ = deployed
    name = exported(env, "cluster", "RepositoryUri").split("/", 1)[1]
    (repository,) = client("ecr").describe_repositories(repositoryNames=[name])["repositories"]
    assert repository["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert repository["imageTagMutabilityExclusionFilters"] == [
        {"filterType": "WILDCARD", "filter": "sha256-*"}
    ]


BASELINE_RULES = {
    "guardduty-high": {
        "source": ["aws.guardduty"],
        "detail-type": ["GuardDuty Finding"],
        "detail": {"severity": [{"numeric": [">=", 7]}]},
    },
    "inspector-high": {
        "source": ["aws.inspector2"],
        "detail-type": ["Inspector2 Finding"],
        "detail": {"severity": ["HIGH", "CRITICAL"], "status": ["ACTIVE"]},
    },
    "securityhub-high": {
        "source": ["aws.securityhub"],
        "detail-type": ["Security Hub Findings - Imported"],
        "detail": {
            "findings": {
                "ProductName": ["Security Hub"],
                "Severity": {"Label": ["HIGH", "CRITICAL"]},
                "Workflow": {"Status": ["NEW"]},
                "RecordState": ["ACTIVE"],
            }
        },
    },
}


def test_high_findings_reach_the_alarm_topic_where_the_baseline_is_enabled(
    deployed: tuple[str, dict[str, Any]],
) -> None:
    """With EnableSecurityBaseline, three rules on the default bus send high and critical findings
    to the exported alarm topic; without it, the baseline stack creates no rule. moto stores the
    rules and their targets; it neither matches events nor delivers them, and cannot see the
    detector, the hub or the recorder (stand-ins: tests/infra/aws/test_security_baseline.py reads
    the template). The patterns are the services' event formats: GuardDuty User Guide, "Creating
    custom responses to GuardDuty findings with Amazon EventBridge" (severity, numeric); Amazon
    Inspector User Guide, "Creating custom responses for Amazon Inspector findings with Amazon
    EventBridge" (detail-type "Inspector2 Finding"); Security Hub User Guide, "EventBridge
    event formats" (detail-type "Security Hub Findings - Imported", detail.findings)."""
    env, _ = deployed
    events = client("events")
    prefix = f"{stacks.environment(env)['App']}-{env}-"
    rules = {r["Name"]: r for r in events.list_rules(NamePrefix=prefix)["Rules"]}
    if stacks.environment(env)["EnableSecurityBaseline"] != "true":
        assert rules == {}
        return
    assert set(rules) == {prefix + name for name in BASELINE_RULES}
    topic = exported(env, "observability", "AlarmTopicArn")
    for name, pattern in BASELINE_RULES.items():
        rule = rules[prefix + name]
        assert rule["State"] == "ENABLED"
        assert json.loads(rule["EventPattern"]) == pattern
        targets = events.list_targets_by_rule(Rule=prefix + name)["Targets"]
        assert [t["Arn"] for t in targets] == [topic]
