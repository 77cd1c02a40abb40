"""The node group can hold what the manifests ask for at their peak: the HPA's maximum during a
canary, plus the daemons on every node and the platform's controllers, in CPU and in pods (each
instance type holds at most so many pods). The Cluster Autoscaler adds nodes up to
NodeMaxSizePerZone in each zone's group; past it, pods stay Pending and the HPA maximum is a
number on paper.

Rendered from deploy/k8s/overlays/<env> with kubectl kustomize, so a change to the HPA maximum or
to the pods' requests in the manifests is checked against the environment's node group.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from deploy.aws import stacks

OVERLAYS = stacks.HERE.parent / "k8s" / "overlays"

# vCPUs of the instance types the environments use (Amazon EC2 instance types: "General purpose"
# specifications, https://docs.aws.amazon.com/ec2/latest/instancetypes/gp.html).
VCPUS = {"t3.medium": 2, "m6i.large": 2}

# CPU the kubelet reserves on EKS AMIs (awslabs/amazon-eks-ami, nodeadm's kube-reserved: 6% of
# the first core, 1% of the second, 0.5% of the third and fourth, 0.25% of each one after).
KUBE_RESERVED_SHARES = (0.06, 0.01, 0.005, 0.005)
KUBE_RESERVED_REST = 0.0025

# Allowances, not measurements (no cluster here): the per-node DaemonSets' CPU requests (aws-node
# with its network policy agent, kube-proxy, ebs-csi-node, the CloudWatch agent and Fluent Bit,
# Prometheus' node exporter), and the cluster-wide controllers' (CoreDNS, metrics-server, the
# EBS CSI controller, the load balancer controller, External Secrets, Argo Rollouts, ExternalDNS,
# the Cluster Autoscaler, Prometheus and its Alertmanager). Revisit them with `kubectl describe
# nodes` on a real cluster.
DAEMONS_MILLICPU_PER_NODE = 500
PLATFORM_MILLICPU = 1500


# Pods per node with the VPC CNI without prefix delegation (our clusters' vpc-cni add-on: no
# ENABLE_PREFIX_DELEGATION): each pod takes one of the node's secondary IPv4 addresses, so
# ENIs x (IPv4 addresses per ENI - 1) + 2 (the host-network pods aws-node and kube-proxy), the
# kubelet's max-pods on EKS AMIs (https://docs.aws.amazon.com/eks/latest/userguide/choosing-instance-type.html,
# "Amazon EKS recommended maximum Pods for each Amazon EC2 instance type"; awslabs/amazon-eks-ami
# templates/shared/runtime/eni-max-pods.txt: t3.micro 4, t3.medium 17, m6i.large 29). ENIs and
# addresses: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/AvailableIpPerENI.html.
ENIS_AND_IPV4_PER_ENI = {"t3.micro": (2, 2), "t3.medium": (3, 6), "m6i.large": (3, 10)}

# Pods on every node (DaemonSets, hostNetwork ones included: max-pods counts every pod): aws-node
# (vpc-cni), kube-proxy, ebs-csi-node, the CloudWatch agent and Fluent Bit
# (amazon-cloudwatch-observability; its GPU and Neuron exporters only run on those instances).
# No node exporter (deploy/k8s/platform/values/prometheus.yaml).
DAEMON_PODS_PER_NODE = 5

# Pods of the platform, once per cluster: the EKS add-ons' (CoreDNS 2, metrics-server 2, EBS CSI
# controller 2, the CloudWatch observability operator 1) and deploy/k8s/platform's (values and
# manifests: load balancer controller 2, External Secrets' controller, webhook and cert
# controller 3, Argo Rollouts 2, ExternalDNS 1, Cluster Autoscaler 1, Prometheus server 1,
# Alertmanager 1).
PLATFORM_PODS = 2 + 2 + 2 + 1 + 2 + 3 + 2 + 1 + 1 + 1 + 1
# The release's migration Job: one pod, while the old version still runs.
RELEASE_JOB_PODS = 1


def max_pods(instance_type: str) -> int:
    enis, addresses = ENIS_AND_IPV4_PER_ENI[instance_type]
    return enis * (addresses - 1) + 2


def millicpu(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def allocatable_millicpu(instance_type: str) -> int:
    cores = VCPUS[instance_type]
    shares = [*KUBE_RESERVED_SHARES, *[KUBE_RESERVED_REST] * max(0, cores - 4)][:cores]
    reserved = sum(1000 * share for share in shares)
    return int(cores * 1000 - reserved) - DAEMONS_MILLICPU_PER_NODE


def rendered(env: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl is needed to render the overlays (it is installed on the build machine)"
        )
    out = subprocess.run(
        [kubectl, "kustomize", str(OVERLAYS / env)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def peak_app_millicpu(documents: list[dict[str, Any]]) -> int:
    """Argo Rollouts with traffic routing leaves the stable ReplicaSet at full size while the
    canary scales up (unless dynamicStableScale is set), and at promotion the canary reaches the
    full count while the old pods wait out scaleDownDelaySeconds: twice the replicas at once
    (argoproj/argo-rollouts docs/features/traffic-management/index.md, "Traffic routing with
    managed routes"; docs/features/canary.md, dynamicStableScale)."""
    (hpa,) = [d for d in documents if d["kind"] == "HorizontalPodAutoscaler"]
    (rollout,) = [d for d in documents if d["kind"] == "Rollout"]
    canary = rollout["spec"]["strategy"]["canary"]
    surge = 1 if canary.get("dynamicStableScale") else 2
    pod = sum(
        millicpu(c["resources"]["requests"]["cpu"])
        for c in rollout["spec"]["template"]["spec"]["containers"]
    )
    return surge * int(hpa["spec"]["maxReplicas"]) * pod


def peak_app_pods(documents: list[dict[str, Any]]) -> int:
    """The Rollout's pods at the HPA maximum during a canary (peak_app_millicpu's surge)."""
    (hpa,) = [d for d in documents if d["kind"] == "HorizontalPodAutoscaler"]
    (rollout,) = [d for d in documents if d["kind"] == "Rollout"]
    surge = 1 if rollout["spec"]["strategy"]["canary"].get("dynamicStableScale") else 2
    return surge * int(hpa["spec"]["maxReplicas"])


def pods_short(env: str, instance_type: str | None = None) -> int:
    """Pods that would stay Pending at the node group's maximum (0: all fit)."""
    values = stacks.environment(env)
    per_node = max_pods(instance_type or values["NodeInstanceType"]) - DAEMON_PODS_PER_NODE
    room = stacks.node_counts(env)[2] * per_node
    need = peak_app_pods(rendered(env)) + PLATFORM_PODS + RELEASE_JOB_PODS
    return max(0, need - room)


def nodes_needed(env: str) -> int:
    values = stacks.environment(env)
    need = peak_app_millicpu(rendered(env)) + PLATFORM_MILLICPU
    return math.ceil(need / allocatable_millicpu(values["NodeInstanceType"]))


@pytest.mark.parametrize("env", stacks.ENVIRONMENTS)
def test_node_group_holds_the_hpa_maximum_during_a_canary(env: str) -> None:
    assert stacks.node_counts(env)[2] >= nodes_needed(env)


@pytest.mark.parametrize("env", stacks.ENVIRONMENTS)
def test_node_group_holds_the_pods_during_a_canary_within_the_instance_types_pod_limit(
    env: str,
) -> None:
    """Each node holds at most max_pods of its type (the VPC CNI's IP addresses), daemons
    included: the platform, the HPA maximum twice over during a canary and the migration Job fit
    in the nodes at the group's maximum."""
    assert stacks.environment(env)["NodeInstanceType"] in ENIS_AND_IPV4_PER_ENI
    assert pods_short(env) == 0


def test_the_pod_count_sees_a_smaller_instance_type() -> None:
    """The figures of eni-max-pods.txt, and a type too small for our pods is refused."""
    assert {t: max_pods(t) for t in ENIS_AND_IPV4_PER_ENI} == {
        "t3.micro": 4, "t3.medium": 17, "m6i.large": 29,
    }  # fmt: skip
    assert pods_short("prod", "t3.micro") > 0
    assert pods_short("qa", "t3.micro") > 0


@pytest.mark.parametrize("env", stacks.ENVIRONMENTS)
def test_node_group_bounds_are_sensible(env: str) -> None:
    """At least two nodes (one lost node leaves the service running), desired within the bounds,
    and room to grow above the minimum for the autoscaler."""
    low, desired, high = stacks.node_counts(env)
    assert 2 <= low <= desired <= high and high > low


def test_the_check_sees_a_bigger_hpa(monkeypatch: pytest.MonkeyPatch) -> None:
    documents = rendered("prod")
    (hpa,) = [d for d in documents if d["kind"] == "HorizontalPodAutoscaler"]
    before = peak_app_millicpu(documents)
    hpa["spec"]["maxReplicas"] *= 4
    assert peak_app_millicpu(documents) == 4 * before
    assert allocatable_millicpu("m6i.large") == 2000 - 70 - DAEMONS_MILLICPU_PER_NODE
