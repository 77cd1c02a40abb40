"""The AWS Load Balancer Controller: an Ingress's ALB and its web ACL.

- The load balancer controller creates an ALB for an Ingress and deletes it when the Ingress is
  deleted (finalizer `ingress.k8s.aws/resources`); with `deletion_protection.enabled=true` in
  the Ingress's load-balancer-attributes it cannot, and the Ingress stays.
  It associates the web ACL the Ingress names in `alb.ingress.kubernetes.io/wafv2-acl-arn`
  with the ALB, `none` disassociates, no annotation leaves it as it is (aws-load-balancer-
  controller v3.5.0 docs/guide/ingress/annotations.md, "wafv2-acl-arn"); the associations are
  state "web_acls" (ALB ARN -> web ACL ARN). With the scenario's "set_web_acl_denied" its
  AssociateWebACL calls are denied (R12: elasticloadbalancing:SetWebAcl under a condition it
  never meets), so the ALB keeps what it had, and serves all the same.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cluster import scenario


def alb_arn(ingress: dict[str, Any]) -> str:
    """The ARN the AWS Load Balancer Controller gives the Ingress's ALB: named by the
    load-balancer-name annotation, else k8s-<namespace>-<ingress>-<hash> (aws-load-balancer-
    controller docs/guide/ingress/annotations.md, "load-balancer-name"), then /<16 hex id>."""
    metadata = ingress["metadata"]
    name = metadata.get("annotations", {}).get(
        "alb.ingress.kubernetes.io/load-balancer-name",
        f"k8s-{metadata.get('namespace', 'default')}-{metadata['name']}-0a1b2c3d4e",
    )
    alb_id = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"arn:aws:elasticloadbalancing:eu-west-1:0:loadbalancer/app/{name}/{alb_id}"


def reconcile_ingress(state: dict[str, Any], ingress: dict[str, Any]) -> None:
    arn = alb_arn(ingress)
    if arn not in state["albs"]:
        state["albs"].append(arn)
    web_acl = (
        ingress["metadata"]
        .get("annotations", {})
        .get("alb.ingress.kubernetes.io/wafv2-acl-arn", "")
    )
    if web_acl and not scenario().get("set_web_acl_denied"):
        if web_acl == "none":
            state["web_acls"].pop(arn, None)
        else:
            state["web_acls"][arn] = web_acl
    ingress.setdefault("metadata", {})["finalizers"] = ["ingress.k8s.aws/resources"]


def delete_ingress(state: dict[str, Any], object_key: str) -> bool:
    """True once the controller could delete the ALB and so remove the finalizer."""
    ingress = state["objects"][object_key]
    attributes = (
        ingress["metadata"]
        .get("annotations", {})
        .get("alb.ingress.kubernetes.io/load-balancer-attributes", "")
    )
    if "deletion_protection.enabled=true" in attributes:
        return False
    del state["objects"][object_key]
    state["albs"] = [a for a in state["albs"] if a != alb_arn(ingress)]
    state["web_acls"].pop(alb_arn(ingress), None)
    return True
