"""The SLO's alerts reach people: the platform's Alertmanager (chart prometheus 29.27.0, subchart
alertmanager 1.42.0 running Alertmanager v0.34.0), rendered as bootstrap installs it, routes each
alert the generated rules can raise by its `severity` to the receiver of that name, which
publishes to the observability stack's alarm topic with the IRSA role's credentials.

amtool is Debian's (package prometheus-alertmanager, 0.25): `amtool check-config` loads the file
as Alertmanager does, `amtool config routes test` walks the routing tree as its dispatcher does
(https://prometheus.io/docs/alerting/latest/configuration/#route) and `amtool template render`
executes a template. The config uses only fields whose meaning is the same in 0.25 and 0.34
(prometheus/alertmanager config/notifiers.go, SNSConfig, at both tags).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_support import PLATFORM, Platform, overlay_outputs, require

NAMESPACE = "monitoring"
ALERTING_RULES = yaml.safe_load((PLATFORM / "values" / "prometheus.yaml").read_text())[
    "serverFiles"
]["alerting_rules.yml"]


def amtool() -> str:
    found = shutil.which("amtool")
    require(found is not None, "amtool is not installed (apt-get install prometheus-alertmanager)")
    assert found
    return found


def alerts(groups: dict[str, Any] = ALERTING_RULES) -> list[dict[str, Any]]:
    """The alerting rules the clusters' Prometheus evaluates (generated from deploy/slo)."""
    return [r for g in groups["groups"] for r in g["rules"] if "alert" in r]


def alert_labels(rule: dict[str, Any]) -> dict[str, str]:
    """The labels an alert of `rule` carries: its rule labels and alertname (the recorded series
    it compares carry `slo` only, which the rules set too)."""
    return {"alertname": rule["alert"], **rule["labels"]}


def config(platform: Platform) -> dict[str, Any]:
    data = platform.one("ConfigMap", "prometheus-alertmanager", NAMESPACE)["data"]
    loaded: dict[str, Any] = yaml.safe_load(data["alertmanager.yml"])
    return loaded


@pytest.fixture
def config_file(platform: Platform, tmp_path: Path) -> Path:
    data = platform.one("ConfigMap", "prometheus-alertmanager", NAMESPACE)["data"]
    path = tmp_path / "alertmanager.yml"
    path.write_text(data["alertmanager.yml"])
    return path


def route(config_file: Path, labels: dict[str, str]) -> tuple[str, str]:
    """(the deepest route that matches `labels`, its receiver), as amtool resolves them."""
    result = subprocess.run(
        [amtool(), "config", "routes", "test", f"--config.file={config_file}", "--tree"]
        + [f"{k}={v}" for k, v in labels.items()],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    matched = re.findall(r"── (\S+)\s+receiver: (\S+)$", result.stdout, re.M)
    assert len(matched) == 1, result.stdout
    return matched[0]


def unrouted(config_file: Path, rules: list[dict[str, Any]]) -> list[str]:
    """The alerts no route of their severity takes: they reach only the root's fallback."""
    return [r["alert"] for r in rules if route(config_file, alert_labels(r))[0] == "default-route"]


def test_the_config_loads_in_alertmanager(config_file: Path) -> None:
    result = subprocess.run(
        [amtool(), "check-config", str(config_file)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_slo_alert_reaches_the_receiver_of_its_severity(config_file: Path) -> None:
    rules = alerts()
    assert {r["labels"]["severity"] for r in rules} == {"page", "ticket"}
    for rule in rules:
        severity = rule["labels"]["severity"]
        assert route(config_file, alert_labels(rule)) == (f'{{severity="{severity}"}}', severity)
    assert unrouted(config_file, rules) == []


def test_an_unknown_severity_is_caught_and_still_pages(config_file: Path) -> None:
    """A rule with a severity no route names would be reported by the check above; the root's
    receiver still pages for it rather than drop it."""
    made_up = {"alert": "RegistroMadeUp", "labels": {"severity": "urgent", "slo": "availability"}}
    assert unrouted(config_file, [made_up]) == ["RegistroMadeUp"]
    assert route(config_file, alert_labels(made_up)) == ("default-route", "page")


def test_the_routes_are_the_severities_of_the_rules(platform: Platform) -> None:
    """No route or receiver for a severity the rules never raise (a stale one would hide a
    renamed severity behind the fallback)."""
    tree = config(platform)["route"]
    severities = {r["labels"]["severity"] for r in alerts()}
    assert [(r["matchers"], r["receiver"]) for r in tree["routes"]] == [
        ([f'severity="{s}"'], s) for s in sorted(severities)
    ]
    assert {r["name"] for r in config(platform)["receivers"]} == severities
    assert tree["receiver"] == "page"


def test_the_receivers_publish_to_the_alarm_topic_as_the_irsa_role(platform: Platform) -> None:
    """sigv4 with a region and no keys, profile or role_arn: Alertmanager's SNS notifier then
    loads the AWS SDK's default configuration (notify/sns/sns.go, createSNSClient, at v0.34.0),
    whose credential chain takes the web identity token and role the EKS webhook gives a pod of an
    annotated service account (https://docs.aws.amazon.com/eks/latest/userguide/
    iam-roles-for-service-accounts-minimum-sdk.html). The topic and region are the stacks'."""
    outputs = overlay_outputs(platform.overlay)
    for receiver in config(platform)["receivers"]:
        assert set(receiver) == {"name", "sns_configs"}, receiver["name"]
        (sns,) = receiver["sns_configs"]
        assert sns["topic_arn"] == outputs["AlarmTopicArn"]
        assert sns["sigv4"] == {"region": outputs["AwsRegion"]}
        assert sns["attributes"] == {"severity": receiver["name"]}
        assert sns["send_resolved"] is True
    statefulset = platform.one("StatefulSet", "prometheus-alertmanager", NAMESPACE)
    account = statefulset["spec"]["template"]["spec"]["serviceAccountName"]
    annotations = platform.one("ServiceAccount", account, NAMESPACE)["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"] == outputs["AlertmanagerRoleArn"]


def render(template: str, data: dict[str, Any], tmp_path: Path) -> str:
    (tmp_path / "data.json").write_text(json.dumps(data))
    (tmp_path / "none.tmpl").write_text("")
    result = subprocess.run(
        [
            amtool(),
            "template",
            "render",
            f"--template.glob={tmp_path / 'none.tmpl'}",
            f"--template.data={tmp_path / 'data.json'}",
            f"--template.text={template}",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_every_subject_is_one_sns_accepts(platform: Platform, tmp_path: Path, status: str) -> None:
    """SNS refuses a Subject that is not ASCII text beginning with a letter, number or
    punctuation mark, has a line break or control character, or is 100 characters or more (Amazon
    SNS API Reference, Publish, https://docs.aws.amazon.com/sns/latest/api/API_Publish.html):
    the notification would fail. Rendered for each alert the rules raise, grouped as the route
    groups them (by alertname)."""
    subjects = {s["subject"] for r in config(platform)["receivers"] for s in r["sns_configs"]}
    assert config(platform)["route"]["group_by"] == ["alertname"]
    for rule in alerts():
        labels = alert_labels(rule)
        alert = {"status": status, "labels": labels, "annotations": rule["annotations"]}
        data = {
            "receiver": labels["severity"],
            "status": status,
            "alerts": [alert],
            "groupLabels": {"alertname": labels["alertname"]},
            "commonLabels": labels,
            "commonAnnotations": rule["annotations"],
            "externalURL": "http://prometheus-alertmanager.monitoring.svc:9093",
        }
        for subject in subjects:
            text = render(subject, data, tmp_path)
            assert re.fullmatch(r"[A-Za-z0-9\[(][\x20-\x7e]{0,98}", text), text
            assert labels["alertname"] in text and status.upper() in text


def keeps(rule: dict[str, Any], value: str) -> bool:
    return re.fullmatch(rule["regex"], value) is not None


def test_prometheus_sends_its_alerts_to_this_alertmanager(platform: Platform) -> None:
    """The chart's prometheus.yml finds Alertmanagers with Kubernetes pod discovery and keeps the
    targets whose meta labels match (https://prometheus.io/docs/prometheus/latest/configuration/
    configuration/#kubernetes_sd_config, role pod: namespace, pod labels with names sanitised,
    container port number): the Alertmanager's pod must pass every keep."""
    server = platform.one("ConfigMap", "prometheus-server", NAMESPACE)["data"]
    (alertmanagers,) = yaml.safe_load(server["prometheus.yml"])["alerting"]["alertmanagers"]
    assert alertmanagers["kubernetes_sd_configs"] == [{"role": "pod"}]
    statefulset = platform.one("StatefulSet", "prometheus-alertmanager", NAMESPACE)
    pod = statefulset["spec"]["template"]
    meta = {
        "__meta_kubernetes_namespace": statefulset["metadata"]["namespace"],
        **{
            "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v
            for k, v in pod["metadata"]["labels"].items()
        },
    }
    ports = [str(p["containerPort"]) for c in pod["spec"]["containers"] for p in c["ports"]]
    rules = alertmanagers["relabel_configs"]
    assert rules and all(r["action"] == "keep" for r in rules)
    for rule in rules:
        (source,) = rule["source_labels"]
        if source == "__meta_kubernetes_pod_container_port_number":
            assert any(keeps(rule, p) for p in ports), (rule, ports)
        else:
            assert keeps(rule, meta.get(source, "")), (rule, meta)


def test_alertmanager_keeps_silences_on_a_gp3_volume(platform: Platform) -> None:
    """Silences and the notification log live in --storage.path; on an emptyDir a restarted pod
    forgets both and sends again what it had sent."""
    statefulset = platform.one("StatefulSet", "prometheus-alertmanager", NAMESPACE)
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert platform.one("StorageClass", claim["spec"]["storageClassName"])["parameters"] == {
        "type": "gp3",
        "encrypted": "true",
        "kmsKeyId": overlay_outputs(platform.overlay)["DataKeyArn"],  # test_platform.py
        "csi.storage.k8s.io/fstype": "ext4",
    }
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert f"--storage.path={mounts[claim['metadata']['name']]}" in container["args"]
