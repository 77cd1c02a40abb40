"""The dashboard on the first deploy and after: no widget reads an ALB that is not there."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from deploy.aws import stacks


def body(template: dict[str, Any], has_load_balancer: bool, full_name: str) -> dict[str, Any]:
    """DashboardBody as CloudFormation renders it, for one value of HasLoadBalancer."""
    text, names = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    condition, if_true, if_false = names["AlbWidgets"]["Fn::If"]
    assert condition == "HasLoadBalancer"
    values = {
        "Db": "registro-qa",
        "Cluster": "registro-qa",
        "AWS::Region": "eu-west-1",
        "LoadBalancerFullName": full_name,
        "DbCpuAlarm.Arn": "arn:a",
        "DbFreeStorageAlarm.Arn": "arn:b",
        "DbConnectionsAlarm.Arn": "arn:c",
        "NodeCpuAlarm.Arn": "arn:d",
    }

    def sub(string: str) -> str:
        return re.sub(r"\$\{([^}]+)\}", lambda m: values[m[1]], string)

    values["AlbWidgets"] = sub(if_true["Fn::Sub"]) if has_load_balancer else if_false
    parsed: dict[str, Any] = json.loads(sub(text))
    return parsed


def alb_dimensions(dashboard: dict[str, Any]) -> list[str]:
    found = []
    for widget in dashboard["widgets"]:
        for metric in widget["properties"].get("metrics", []):
            if "LoadBalancer" in metric:
                found.append(metric[metric.index("LoadBalancer") + 1])
    return found


@pytest.mark.parametrize("full_name", ["", "app/registro-qa/0123456789abcdef"])
def test_alb_widgets_exist_only_with_the_alb(templates: dict[str, Any], full_name: str) -> None:
    """R11: LoadBalancerFullName is empty until the controller has created the ALB (deploy.sh
    fills it on the next deploy). A CloudWatch dashboard metric with an empty dimension value
    matches no metric (CloudWatch User Guide, "Dimensions": a metric is identified by all of its
    dimensions). The ALB's widgets follow HasLoadBalancer, as its alarms do."""
    template = templates["observability"]
    assert template["Conditions"]["HasLoadBalancer"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "LoadBalancerFullName"}, ""]}]
    }
    dashboard = body(template, bool(full_name), full_name)
    if full_name:
        assert alb_dimensions(dashboard) == [full_name, full_name]
    else:
        assert alb_dimensions(dashboard) == []
    assert all("" not in alb_dimensions({"widgets": [w]}) for w in dashboard["widgets"])


def test_the_alb_name_is_checked_against_the_pinned_one() -> None:
    """R7: the alarms' dimension is app/<name>/<id>
    (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html,
    "LoadBalancer: app/load-balancer-name/1234567890123456"). The AWS Load Balancer Controller
    names the ALB from the Ingress's alb.ingress.kubernetes.io/load-balancer-name, else
    k8s-<namespace>-<ingress>-<hash> (kubernetes-sigs/aws-load-balancer-controller
    docs/guide/ingress/annotations.md, load-balancer-name)."""
    assert stacks.load_balancer_name_problem("qa", "") is None
    assert stacks.load_balancer_name_problem("qa", "app/registro-qa/0123456789abcdef") is None
    problem = stacks.load_balancer_name_problem("qa", "app/k8s-registro-registro-0a1b2c/0123abcd")
    assert problem and "load-balancer-name: registro-qa" in problem
    assert stacks.load_balancer_name_problem("prod", "app/registro-qa/0123abcd")


def test_a_deploy_stops_on_an_alb_of_another_name(tmp_path: Path) -> None:
    """Alarms on an ALB that is not the pinned one would watch nothing: the plan refuses it."""
    with pytest.raises(SystemExit, match="load-balancer-name: registro-qa"):
        stacks.main(["plan", "qa", str(tmp_path), "LoadBalancerFullName=app/k8s-registro-x/0123"])
    assert not list(tmp_path.iterdir())


def test_the_watched_alb_is_an_output(templates: dict[str, Any]) -> None:
    """A release compares the ALB it finds by name with what the alarms watch."""
    output = templates["observability"]["Outputs"]["LoadBalancerFullName"]
    assert output["Value"] == {"Ref": "LoadBalancerFullName"}


def test_the_error_rate_leads_to_the_traces_of_its_window(templates: dict[str, Any]) -> None:
    """A Logs Insights widget follows the dashboard's time range (CloudWatch User Guide, "Add
    or remove a log widget from a CloudWatch dashboard"): it lists the window's failed requests
    from the service's access lines with the X-Ray form of their trace ids, 1-<first 8 hex>-<24
    hex> (awsxrayexporter internal/translator/segment.go convertToAmazonTraceID). The fields sit
    under log_processed, where Container Insights' Fluent Bit merges a JSON line (Merge_Log_Key
    log_processed, aws-observability/helm-charts amazon-cloudwatch-observability values.yaml)."""
    dashboard = body(templates["observability"], True, "app/registro-qa/0123456789abcdef")
    (widget,) = [w for w in dashboard["widgets"] if w["type"] == "log"]
    query = widget["properties"]["query"]
    assert query.startswith("SOURCE '/aws/containerinsights/registro-qa/application'")
    assert "log_processed.logger = 'registro.access'" in query
    assert "log_processed.status >= 500" in query
    assert "concat('1-', substr(log_processed.trace_id, 0, 8), '-'," in query
    assert "log_processed.request_id" in query
