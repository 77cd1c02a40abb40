"""The API server's objects, and what every stand-in shares: the state file STANDIN_KUBE, the
scenario STANDIN_SCENARIO, the call log STANDIN_LOG, object keys, kinds and their API groups.
A kind exists only once its CRD is installed (helm installs the charts' CRDs): otherwise
`no matches for kind` (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

NAMESPACE = "registro"
# kind -> (API group, resource), for RBAC.
RESOURCES = {
    "Rollout": ("argoproj.io", "rollouts"),
    "AnalysisTemplate": ("argoproj.io", "analysistemplates"),
    "AnalysisRun": ("argoproj.io", "analysisruns"),
    "ExternalSecret": ("external-secrets.io", "externalsecrets"),
    "SecretStore": ("external-secrets.io", "secretstores"),
    "ConfigMap": ("", "configmaps"),
    "Secret": ("", "secrets"),
    "Service": ("", "services"),
    "ServiceAccount": ("", "serviceaccounts"),
    "Pod": ("", "pods"),
    "Ingress": ("networking.k8s.io", "ingresses"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "Job": ("batch", "jobs"),
    "ReplicaSet": ("apps", "replicasets"),
    "Role": ("rbac.authorization.k8s.io", "roles"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
}
# Kinds of the API groups Kubernetes itself serves; any other group is a CRD's.
BUILT_IN_GROUPS = ("", "apps", "batch", "policy", "autoscaling")


def built_in(api_version: str) -> bool:
    group = api_version.split("/")[0] if "/" in api_version else ""
    return group in BUILT_IN_GROUPS or group.endswith(".k8s.io")


CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "StorageClass", "PriorityClass",
    "CustomResourceDefinition", "IngressClass", "ValidatingWebhookConfiguration",
    "PersistentVolume", "MutatingWebhookConfiguration", "ClusterImagePolicy",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
}  # fmt: skip


class Refused(Exception):
    """What the API server (or helm) answers instead: printed, exit 1."""


def load() -> dict[str, Any]:
    path = Path(os.environ["STANDIN_KUBE"])
    state = json.loads(path.read_text()) if path.exists() else {}
    state.setdefault("objects", {})
    state.setdefault("crds", [])
    state.setdefault("releases", {})
    state.setdefault("albs", [])
    state.setdefault("web_acls", {})
    return state


def save(state: dict[str, Any]) -> None:
    Path(os.environ["STANDIN_KUBE"]).write_text(json.dumps(state, indent=1))


def scenario() -> dict[str, Any]:
    path = Path(os.environ["STANDIN_SCENARIO"])
    return json.loads(path.read_text()) if path.exists() else {}


def record(tool: str, args: list[str]) -> None:
    with open(os.environ["STANDIN_LOG"], "a") as log:
        entry = {"tool": tool, "args": args, "identity": os.environ.get("STANDIN_IDENTITY")}
        log.write(json.dumps(entry) + "\n")


def key(kind: str, name: str, namespace: str | None) -> str:
    return f"{kind}/{'' if kind in CLUSTER_SCOPED else namespace or NAMESPACE}/{name}"
