"""The API server's authorization. The caller's identity is STANDIN_IDENTITY ("admin": the
cluster creator; "deployer": the pipeline's deploy role, an EKS access entry in Kubernetes group
`registro-deployer` with no access policy). The deployer may do only what a Role bound to its group
grants: RBAC is deny by default and Roles are namespaced
(https://kubernetes.io/docs/reference/access-authn-authz/rbac/); EKS access entries without a
policy add nothing (https://docs.aws.amazon.com/eks/latest/userguide/access-entries.html).
"""

from __future__ import annotations

import os
from typing import Any

from cluster import CLUSTER_SCOPED, NAMESPACE, RESOURCES, Refused


def allowed(state: dict[str, Any], kind: str, verb: str, subresource: str = "") -> bool:
    if os.environ.get("STANDIN_IDENTITY", "admin") == "admin":
        return True
    if kind in CLUSTER_SCOPED or kind not in RESOURCES:
        return False
    group, resource = RESOURCES[kind]
    resource = f"{resource}/{subresource}" if subresource else resource
    objects = state["objects"].values()
    roles = {
        o["metadata"]["name"]: o
        for o in objects
        if o["kind"] == "Role" and o["metadata"].get("namespace") == NAMESPACE
    }
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        if not any(
            s.get("kind") == "Group" and s.get("name") == "registro-deployer"
            for s in binding.get("subjects", [])
        ):
            continue
        role = roles.get(binding.get("roleRef", {}).get("name", ""))
        for rule in (role or {}).get("rules", []):
            if (
                group in rule.get("apiGroups", [])
                and (resource in rule.get("resources", []) or "*" in rule.get("resources", []))
                and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
            ):
                return True
    return False


def authorize(
    state: dict[str, Any], kind: str, verb: str, name: str, subresource: str = ""
) -> None:
    if not allowed(state, kind, verb, subresource):
        group, resource = RESOURCES.get(kind, ("", kind.lower() + "s"))
        sub = f"/{subresource}" if subresource else ""
        raise Refused(
            f"Error from server (Forbidden): {resource}{sub}.{group or 'core'} "
            f'"{name}" is forbidden: '
            f'User "deployer" cannot {verb} resource "{resource}{sub}" in API group "{group}" '
            f'in the namespace "{NAMESPACE}"'
        )
