"""The cluster stack's add-ons and nodes, as EKS runs them: what each AWS behaviour the platform
relies on needs from the template, pinned with the document that states the behaviour."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from deploy.aws import stacks

CONTAINER_INSIGHTS_GROUP = "/aws/containerinsights/${Cluster}/"


def resources_of(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == resource_type}


def addon(template: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [
        r
        for r in resources_of(template, "AWS::EKS::Addon").values()
        if r["Properties"]["AddonName"] == name
    ]
    return found


def depends_on(resource: dict[str, Any]) -> set[str]:
    value = resource.get("DependsOn", [])
    return {value} if isinstance(value, str) else set(value)


def container_insights_groups(template: dict[str, Any]) -> dict[str, str]:
    """logical id -> the kind (application, dataplane, ...) of each Container Insights log group."""
    groups = {}
    for logical_id, group in resources_of(template, "AWS::Logs::LogGroup").items():
        name = group["Properties"]["LogGroupName"]
        text = name.get("Fn::Sub") if isinstance(name, dict) else name
        text = text[0] if isinstance(text, list) else text
        if isinstance(text, str) and "/aws/containerinsights/" in text:
            groups[logical_id] = text.rsplit("/", 1)[1]
    return groups


def test_container_insights_log_groups_exist_before_the_addon_writes_them(
    templates: dict[str, Any],
) -> None:
    """The amazon-cloudwatch-observability add-on's Fluent Bit writes to
    /aws/containerinsights/<cluster>/{application,dataplane,host} and its CloudWatch agent to
    .../performance, creating each group that is missing (Fluent Bit `auto_create_group true`:
    Amazon CloudWatch User Guide, "Set up Fluent Bit as a DaemonSet to send logs to CloudWatch
    Logs", https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-setup-logs-FluentBit.html).
    CloudWatch Logs refuses to create a group that exists (CreateLogGroup:
    ResourceAlreadyExistsException), so a stack creating them after the add-on runs fails. They
    are created in the cluster stack, before the add-on (DependsOn), and nowhere else."""
    cluster = templates["cluster"]
    groups = container_insights_groups(cluster)
    assert sorted(groups.values()) == ["application", "dataplane", "host", "performance"]
    for logical_id in groups:
        name = cluster["Resources"][logical_id]["Properties"]["LogGroupName"]["Fn::Sub"]
        assert name.startswith(CONTAINER_INSIGHTS_GROUP), name  # ${Cluster}: the cluster's Ref
    assert set(groups) <= depends_on(addon(cluster, "amazon-cloudwatch-observability"))
    elsewhere = {
        layer: container_insights_groups(t) for layer, t in templates.items() if layer != "cluster"
    }
    assert {k: v for k, v in elsewhere.items() if v} == {}


def test_vpc_cni_enforces_network_policies(templates: dict[str, Any]) -> None:
    """The VPC CNI enforces Kubernetes NetworkPolicies only when the vpc-cni add-on's
    configuration values set "enableNetworkPolicy": "true"; otherwise the API server stores the
    policies and nothing applies them (Amazon EKS User Guide, "Limit Pod traffic with Kubernetes
    network policies", https://docs.aws.amazon.com/eks/latest/userguide/cni-network-policy-configure.html;
    awsdocs/amazon-eks-user-guide latest/ug/networking/eks-networking-add-ons.adoc)."""
    values = json.loads(addon(templates["cluster"], "vpc-cni")["Properties"]["ConfigurationValues"])
    assert values.get("enableNetworkPolicy") == "true"


def test_pods_cannot_reach_the_node_role(templates: dict[str, Any]) -> None:
    """With IMDSv2 and a response hop limit of 1, the token answer does not survive the extra hop
    into a pod's network namespace, so pods on the pod network cannot read the node role's
    credentials; EKS sets 1 in managed node groups' default launch templates for that reason
    (awsdocs/amazon-eks-user-guide latest/ug/nodes/al2023.adoc; Amazon EC2 User Guide, "Use the
    Instance Metadata Service", IMDS considerations). The agents that need IMDS run in the host's
    network namespace, where it is one hop: aws-node and kube-proxy, and the CloudWatch agent
    since aws-observability/helm-charts#82 (hostNetwork: true "for clusters with a restricted hop
    limit"). Everything else gets AWS credentials from its IRSA role."""
    (template,) = resources_of(templates["cluster"], "AWS::EC2::LaunchTemplate").values()
    options = template["Properties"]["LaunchTemplateData"]["MetadataOptions"]
    assert (options["HttpTokens"], options["HttpPutResponseHopLimit"]) == ("required", 1)


def test_addons_the_platform_relies_on(templates: dict[str, Any]) -> None:
    """metrics-server is an EKS community add-on named `metrics-server`
    (awsdocs/amazon-eks-user-guide latest/ug/workloads/community-addons.adoc): the HPA reads pod
    CPU from it. The EBS CSI driver is the add-on `aws-ebs-csi-driver`, whose controller calls
    EC2 as kube-system/ebs-csi-controller-sa (latest/ug/storage/ebs-csi.adoc); without it (EKS
    >= 1.30 has no default StorageClass either) the Prometheus volume stays Pending. Add-ons
    that run pods wait for the node group."""
    cluster = templates["cluster"]
    ebs = addon(cluster, "aws-ebs-csi-driver")["Properties"]
    role = ebs["ServiceAccountRoleArn"]["Fn::GetAtt"][0]
    assert "system:serviceaccount:kube-system:ebs-csi-controller-sa" in json.dumps(
        cluster["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]
    )
    groups = set(resources_of(cluster, "AWS::EKS::Nodegroup"))
    for name in ("metrics-server", "aws-ebs-csi-driver", "coredns"):
        assert groups <= depends_on(addon(cluster, name)), name


def test_every_addon_version_is_pinned_in_one_place_for_every_environment(
    templates: dict[str, Any],
) -> None:
    """R8: without AddonVersion, CreateAddon installs the default version of the day
    (AWS::EKS::Addon AddonVersion; Amazon EKS API Reference, CreateAddon: "The version must match
    one of the versions returned by DescribeAddonVersions"), so qa and prod created weeks apart
    differ, and so may the Container Insights add-on's metrics the node alarm reads. Each add-on
    reads its version from the one AddonVersions mapping, by the cluster's KubernetesVersion; every
    environment's version has its row, complete, and qa and prod resolve to the same pins."""
    cluster = templates["cluster"]
    addons = resources_of(cluster, "AWS::EKS::Addon")
    assert {r["Properties"]["AddonName"] for r in addons.values()} >= {
        "vpc-cni", "kube-proxy", "coredns", "amazon-cloudwatch-observability",
        "metrics-server", "aws-ebs-csi-driver",
    }  # fmt: skip
    mapping = cluster["Mappings"]["AddonVersions"]
    keys = []
    for logical_id, resource in addons.items():
        version = resource["Properties"].get("AddonVersion")
        assert isinstance(version, dict), f"{logical_id}: AddonVersion {version!r}"
        name, row, key = version["Fn::FindInMap"]
        assert (name, row) == ("AddonVersions", {"Ref": "KubernetesVersion"}), logical_id
        keys.append(key)
    assert len(set(keys)) == len(keys)  # one pin per add-on
    for minor, pins in mapping.items():
        assert sorted(pins) == sorted(keys), minor  # a row pins every add-on, nothing else
        assert all(re.fullmatch(r"v\d+\.\d+\.\d+-eksbuild\.\d+", v) for v in pins.values())
    resolved = {env: stacks.addon_pins(stacks.environment(env)["KubernetesVersion"])
                for env in stacks.ENVIRONMENTS}  # fmt: skip
    assert all(version for pins in resolved.values() for _name, version in pins), resolved
    assert resolved["qa"] == resolved["prod"]


def test_the_cluster_runs_the_environments_kubernetes_version(templates: dict[str, Any]) -> None:
    """The cluster's Version is the KubernetesVersion parameter (each environment's, written from
    deploy/facts/facts.yaml like the Makefile's K8S_VERSION the manifests are validated against)."""
    (cluster,) = resources_of(templates["cluster"], "AWS::EKS::Cluster").values()
    assert cluster["Properties"]["Version"] == {"Ref": "KubernetesVersion"}


# The EKS Kubernetes release calendar as of the decision (2026-12-01): version -> upstream release.
# Standard support lasts 14 months from the EKS release, which follows the upstream one; a version
# is available on EKS once the release notes list it (Amazon EKS User Guide, "Understand the
# Kubernetes version lifecycle on EKS" and "Review release notes for Kubernetes versions on
# standard support": 1.36 is available, 1.37 is not; 1.34 ends standard support on 2026-12-02).
EKS_CALENDAR = {"1.34": "2025-08-27", "1.35": "2025-12-17", "1.36": "2026-04-22"}
DECIDED_ON = "2026-12-01"
STANDARD_SUPPORT_MONTHS = 14


def test_kubernetes_version_is_the_newest_in_standard_support() -> None:
    """The pinned version is the newest EKS offers, and in standard support on the decision date
    (extended support costs 6x the control plane's hourly price)."""
    (version,) = {stacks.environment(env)["KubernetesVersion"] for env in stacks.ENVIRONMENTS}
    assert version == max(EKS_CALENDAR, key=lambda v: tuple(map(int, v.split("."))))
    year, month, day = map(int, EKS_CALENDAR[version].split("-"))
    months = year * 12 + month - 1 + STANDARD_SUPPORT_MONTHS
    standard_until = f"{months // 12:04d}-{months % 12 + 1:02d}-{day:02d}"
    assert standard_until > DECIDED_ON


def test_nodes_start_after_the_vpc_cni_addon(templates: dict[str, Any]) -> None:
    """B4: a node's aws-node pod needs the CNI's permissions before the node can become Ready.
    They come from the node role (AmazonEKS_CNI_Policy) or from the vpc-cni add-on's IRSA role;
    EKS requires one of the two ("Amazon EKS node IAM role",
    https://docs.aws.amazon.com/eks/latest/userguide/create-node-role.html). The node role here
    holds no CNI policy (pods on the pod network could otherwise use it), so each node group
    waits for the add-on that brings the IRSA role (terraform-aws-modules/terraform-aws-eks
    creates `before_compute` add-ons for this reason)."""
    cluster = templates["cluster"]
    groups = resources_of(cluster, "AWS::EKS::Nodegroup")
    (cni_logical_id,) = [
        k
        for k, r in resources_of(cluster, "AWS::EKS::Addon").items()
        if r["Properties"]["AddonName"] == "vpc-cni"
    ]
    node_role_policies = json.dumps(cluster["Resources"]["NodeRole"]["Properties"])
    assert groups
    for logical_id, group in groups.items():
        assert (
            cni_logical_id in depends_on(group) or "AmazonEKS_CNI_Policy" in node_role_policies
        ), logical_id


def test_one_node_group_per_zone(templates: dict[str, Any]) -> None:
    """R2: EBS volumes are zonal, and the Cluster Autoscaler scales a group without knowing which
    zone its next node lands in; the EKS guide asks for one managed node group per Availability
    Zone when workloads use EBS volumes and the autoscaler (Amazon EKS User Guide, "Create a
    managed node group", https://docs.aws.amazon.com/eks/latest/userguide/create-managed-node-group.html;
    kubernetes/autoscaler cluster-autoscaler/cloudprovider/aws/README.md, "Common Notes and
    Gotchas"). Each group has one private subnet, a different one (Fn::Select index)."""
    groups = resources_of(templates["cluster"], "AWS::EKS::Nodegroup")
    chosen = []
    for group in groups.values():
        (subnet,) = group["Properties"]["Subnets"]
        index, split = subnet["Fn::Select"]
        assert split["Fn::Split"][1] == {
            "Fn::ImportValue": {"Fn::Sub": "${NetworkStack}-PrivateSubnetIds"}
        }
        chosen.append(int(index))
    assert sorted(chosen) == list(range(stacks.ZONES))


def test_upgrade_policy_is_standard_support(templates: dict[str, Any]) -> None:
    """Without UpgradePolicy a cluster enters extended support when standard support ends, at
    $0.60 instead of $0.10 a cluster-hour (Amazon EKS User Guide, "Configure cluster upgrade
    policy", https://docs.aws.amazon.com/eks/latest/userguide/view-upgrade-policy.html;
    AWS::EKS::Cluster UpgradePolicy.SupportType STANDARD | EXTENDED)."""
    (cluster,) = resources_of(templates["cluster"], "AWS::EKS::Cluster").values()
    assert cluster["Properties"]["UpgradePolicy"] == {"SupportType": "STANDARD"}


def test_container_insights_mode_is_fixed_for_the_node_alarm(templates: dict[str, Any]) -> None:
    """R8: the amazon-cloudwatch-observability add-on's mode comes from its configuration values
    (agent.config.logs.metrics_collected.kubernetes.enhanced_container_insights; Amazon
    CloudWatch User Guide, "Install the CloudWatch agent with the Amazon CloudWatch Observability
    EKS add-on", https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/install-CloudWatch-Observability-EKS-addon.html).
    Stated here, an add-on upgrade cannot change which metrics the node alarm reads
    (node_cpu_utilization by ClusterName, "Amazon EKS and Kubernetes Container Insights with
    enhanced observability metrics")."""
    values = json.loads(
        addon(templates["cluster"], "amazon-cloudwatch-observability")["Properties"][
            "ConfigurationValues"
        ]
    )
    kubernetes = values["agent"]["config"]["logs"]["metrics_collected"]["kubernetes"]
    assert kubernetes["enhanced_container_insights"] is True
    alarm = templates["observability"]["Resources"]["NodeCpuAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "ContainerInsights",
        "node_cpu_utilization",
    )
    assert [d["Name"] for d in alarm["Dimensions"]] == ["ClusterName"]


def test_node_groups_follow_the_control_planes_version(templates: dict[str, Any]) -> None:
    """A managed node group without Version keeps the version it was created with when the
    cluster is upgraded (AWS::EKS::Nodegroup Version: "If you don't specify a Kubernetes version
    for node groups, the cluster's version is used" at creation only; Amazon EKS User Guide,
    "Update a managed node group"). With the cluster's KubernetesVersion, one deploy upgrades
    the control plane and then the nodes, which reference the cluster."""
    groups = resources_of(templates["cluster"], "AWS::EKS::Nodegroup")
    assert groups
    for group in groups.values():
        assert group["Properties"]["Version"] == {"Ref": "KubernetesVersion"}


def test_the_agent_receives_otlp_traces_and_may_send_them_to_xray(
    templates: dict[str, Any],
) -> None:
    """The agent's OTLP receiver for traces (traces.traces_collected.otlp; its http_endpoint
    defaults to 127.0.0.1:4318, which other pods cannot reach: Amazon CloudWatch User Guide,
    "Collect metrics and traces with OpenTelemetry") feeds the agent's X-Ray pipeline
    (aws/amazon-cloudwatch-agent, translator/translate/otel/pipeline/xray/translator.go), which
    calls PutTraceSegments; the add-on's IRSA role needs AWSXrayWriteOnlyAccess beside
    CloudWatchAgentServerPolicy (Amazon EKS User Guide, "Amazon CloudWatch Observability
    agent" add-on, required IAM permissions). The port is the one config.env's endpoint names."""
    cluster = templates["cluster"]
    values = json.loads(
        addon(cluster, "amazon-cloudwatch-observability")["Properties"]["ConfigurationValues"]
    )
    otlp = values["agent"]["config"]["traces"]["traces_collected"]["otlp"]
    assert otlp == {"http_endpoint": "0.0.0.0:4318"}
    policies = cluster["Resources"]["CloudWatchAgentRole"]["Properties"]["ManagedPolicyArns"]
    names = [p["Fn::Sub"].rsplit("/", 1)[1] for p in policies]
    assert names == ["CloudWatchAgentServerPolicy", "AWSXrayWriteOnlyAccess"]
    config = (Path(__file__).parents[3] / "deploy/k8s/base/config.env").read_text()
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://cloudwatch-agent.amazon-cloudwatch:4318\n" in config
