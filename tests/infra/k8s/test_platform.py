"""The cluster platform (deploy/k8s/platform), rendered as `make bootstrap-k8s` installs it.

Each chart is rendered with `helm template` from the upstream source at the pinned version with
the pinned values and the overlay's placeholder outputs, then validated with kubernetes-validate
(--strict, the clusters' Kubernetes version); the wiring the charts cannot check is asserted here:
IRSA role annotations equal the stack outputs on the service accounts the IAM trust policies name,
the ALB controller's cluster and VPC, ExternalDNS's zone, the autoscaler's node groups, the
Prometheus volume and address the canary analysis uses, and the deploy role's permissions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_support import (
    CHARTS,
    PLATFORM,
    REPO,
    Manifests,
    Platform,
    k8s_version,
    overlay_outputs,
    require,
    require_upstream,
)

ROLE_ARN = "eks.amazonaws.com/role-arn"


def test_every_chart_is_pinned_to_the_upstream_release_it_names() -> None:
    assert [c.release for c in CHARTS] == [
        "aws-load-balancer-controller",
        "external-secrets",
        "argo-rollouts",
        "external-dns",
        "prometheus",
        "policy-controller",
    ], "install order: the ALB controller's webhooks, then the CRD owners, then the rest"
    for chart in CHARTS:
        require_upstream(chart.source)
        meta = yaml.safe_load((chart.source / "Chart.yaml").read_text())
        assert meta["version"] == chart.version, chart.release
        assert chart.repository.startswith("https://"), chart.release
        assert (PLATFORM / "values" / f"{chart.release}.yaml").is_file(), chart.release


def test_platform_validates_against_the_kubernetes_schemas(platform: Platform) -> None:
    """kubernetes-validate --strict for the clusters' version; custom resources are checked
    against their CRDs in test_crd_schemas.py."""
    validate = os.environ.get("KUBERNETES_VALIDATE") or shutil.which("kubernetes-validate")
    require(bool(validate), "kubernetes-validate is not installed (make verify-k8s installs it)")
    flat = platform.directory / "flat.yaml"
    flat.write_text(yaml.safe_dump_all(platform.docs, sort_keys=False))
    result = subprocess.run(
        [str(validate), "-k", k8s_version(), "--strict", "--quiet", "--no-warn", str(flat)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


SERVICE_ACCOUNTS = REPO / "deploy" / "aws" / "service-accounts.json"


def platform_service_accounts() -> list[tuple[str, str, str]]:
    """(role output, namespace, name) of each IRSA role a platform chart or manifest uses: the one
    list the IAM trust policies are tied to (deploy/aws/service-accounts.json, owner aws; its own
    test ties the templates to it). Roles EKS add-ons receive directly have no output."""
    require(SERVICE_ACCOUNTS.is_file(), f"{SERVICE_ACCOUNTS} (aws) not found")
    accounts = json.loads(SERVICE_ACCOUNTS.read_text())["service_accounts"]
    return [(a["output"], a["namespace"], a["name"]) for a in accounts if a["output"]]


def test_irsa_annotations_are_the_stack_outputs(platform: Platform) -> None:
    """IRSA: the pod's token is accepted only if the role's trust policy names
    system:serviceaccount:NAMESPACE:NAME, and the webhook injects the role the service account's
    eks.amazonaws.com/role-arn names
    (https://docs.aws.amazon.com/eks/latest/userguide/associate-service-account-role.html)."""
    outputs = overlay_outputs(platform.overlay)
    accounts = platform_service_accounts()
    assert {o for o, _, _ in accounts} == {
        "LoadBalancerControllerRoleArn",
        "ExternalSecretsRoleArn",
        "ExternalDnsRoleArn",
        "ClusterAutoscalerRoleArn",
        "AlertmanagerRoleArn",
        "ArgoRolloutsRoleArn",
    }
    for output, namespace, name in accounts:
        account = platform.one("ServiceAccount", name, namespace)
        assert account["metadata"]["annotations"][ROLE_ARN] == outputs[output], output
        users = [
            d
            for d in platform.docs
            if d["kind"] in {"Deployment", "StatefulSet"}
            and d["spec"]["template"]["spec"].get("serviceAccountName") == name
            and d["metadata"].get("namespace") == namespace
        ]
        assert users, f"no Deployment or StatefulSet runs as {namespace}/{name}"
    annotated = {
        (d["metadata"].get("namespace"), d["metadata"]["name"])
        for d in platform.docs
        if d["kind"] == "ServiceAccount" and ROLE_ARN in d["metadata"].get("annotations", {})
    }
    assert annotated == {(ns, name) for _, ns, name in accounts}


def container_args(platform: Platform, release: str) -> list[str]:
    deployments = [d for d in platform.charts[release] if d["kind"] == "Deployment"]
    main = next(d for d in deployments if d["metadata"]["name"] == release)
    container = main["spec"]["template"]["spec"]["containers"][0]
    return [*container.get("command", []), *container.get("args", [])]


def test_alb_controller_knows_its_cluster_without_instance_metadata(platform: Platform) -> None:
    """Pods cannot reach IMDS (hop limit 1): region and VPC id must be given, the controller
    otherwise reads them from the instance metadata (kubernetes-sigs/aws-load-balancer-controller
    docs/deploy/installation.md, "Using the Amazon EC2 instance metadata server version 2")."""
    outputs = overlay_outputs(platform.overlay)
    args = container_args(platform, "aws-load-balancer-controller")
    assert f"--cluster-name={outputs['ClusterName']}" in args
    assert f"--aws-vpc-id={outputs['VpcId']}" in args
    assert f"--aws-region={outputs['AwsRegion']}" in args


def test_external_dns_manages_only_the_service_name_in_its_zone(platform: Platform) -> None:
    outputs = overlay_outputs(platform.overlay)
    args = container_args(platform, "external-dns")
    assert "--provider=aws" in args
    assert f"--domain-filter={outputs['DomainName']}" in args
    assert f"--zone-id-filter={outputs['HostedZoneId']}" in args
    assert f"--txt-owner-id={outputs['ClusterName']}" in args
    assert "--policy=sync" in args
    assert [a for a in args if a.startswith("--source=")] == ["--source=ingress"]


# ExternalDNS v0.21.0 (chart 1.21.1's appVersion), restated from its source so that our rendered
# arguments can be judged against it (kubernetes-sigs/external-dns at tag v0.21.0):
# provider/aws/aws.go `Zones()` lines 421-436 (zone id filter, zone type filter, then the domain
# filter, the parent match only under --aws-zone-match-parent, default false:
# pkg/apis/externaldns/types.go line 260), endpoint/domain_filter.go `matchFilter` (line 134) and
# `MatchParent` (line 258), provider/zone_id_filter.go `Match` (a suffix of the zone id).
EXTERNAL_DNS_SOURCE = "kubernetes-sigs/external-dns v0.21.0 provider/aws/aws.go Zones()"


def _match_filter(filters: list[str], domain: str, empty: bool) -> bool:
    if not filters:
        return empty
    domain = domain.rstrip(".")
    for f in filter(None, filters):
        if f.startswith(".") and domain.endswith(f):
            return True
        if domain.count(".") == f.count(".") and domain == f:
            return True
        if domain.endswith("." + f):
            return True
    return False


def _match_parent(filters: list[str], domain: str) -> bool:
    if not filters:
        return True
    domain = domain.rstrip(".")
    return any(f and not f.startswith(".") and f.endswith("." + domain) for f in filters)


def external_dns_selects_zone(args: list[str], zone_id: str, zone_name: str) -> bool:
    """Whether ExternalDNS run with `args` manages the public hosted zone (zone_id, zone_name)."""
    values: dict[str, list[str]] = {}
    for arg in args:
        name, equals, value = arg.partition("=")
        values.setdefault(name, []).append(value if equals else "true")
    zone_ids = [z for z in values.get("--zone-id-filter", []) if z]
    if zone_ids and not any(f"/hostedzone/{zone_id}".endswith(z) for z in zone_ids):
        return False
    if values.get("--aws-zone-type", [""])[-1] not in ("", "public"):
        return False
    domains = [d for d in values.get("--domain-filter", []) if d]
    if _match_filter(domains, zone_name, True):
        return True
    parent = values.get("--aws-zone-match-parent", ["false"])[-1] == "true"
    return parent and _match_parent(domains, zone_name)


@pytest.mark.parametrize("zone", ["parent", "own"])
def test_external_dns_selects_the_zone_that_holds_the_service_name(
    platform: Platform, zone: str
) -> None:
    """B1: the service's name (DomainName) usually lives in a parent zone (docs/aws.md's
    registro-qa.yourcompany.com in yourcompany.com). ExternalDNS drops every hosted zone the
    domain filter does not match unless --aws-zone-match-parent is set (kubernetes-sigs/
    external-dns v0.21.0 provider/aws/aws.go Zones() lines 429-436; docs/tutorials/aws.md
    "aws-zone-match-parent"): no zone, no record, the name never resolves. Our rendered arguments
    are evaluated against that rule, restated above."""
    outputs = overlay_outputs(platform.overlay)
    args = container_args(platform, "external-dns")
    name, zone_id = outputs["DomainName"], outputs["HostedZoneId"]
    zone_name = name.split(".", 1)[1] if zone == "parent" else name
    assert external_dns_selects_zone(args, zone_id, zone_name + "."), (EXTERNAL_DNS_SOURCE, args)
    # ...and only ours: the zone id filter keeps it to the stack's zone.
    assert not external_dns_selects_zone(args, "ZOTHERZONE", zone_name + ".")


def test_the_restated_zone_rule_drops_a_parent_zone_without_the_flag() -> None:
    """The restated rule on the cases of its source's own tests (external-dns v0.21.0
    endpoint/domain_filter_test.go TestDomainFilterMatchParent; provider/aws/aws_test.go)."""
    args = ["--domain-filter=registro-qa.yourcompany.com", "--zone-id-filter=Z1"]
    with_parent = [*args, "--aws-zone-match-parent"]
    assert not external_dns_selects_zone(args, "Z1", "yourcompany.com.")
    assert external_dns_selects_zone(with_parent, "Z1", "yourcompany.com.")
    assert external_dns_selects_zone(args, "Z1", "registro-qa.yourcompany.com.")
    assert not external_dns_selects_zone(with_parent, "Z1", "othercompany.com.")
    assert not external_dns_selects_zone(
        [*with_parent, "--aws-zone-type=private"], "Z1", "yourcompany.com."
    )


def test_external_secrets_release_installs_its_crds() -> None:
    """The published chart carries the CRDs as templates gated by installCRDs (generated into the
    package by external-secrets hack/helm.generate.sh; the source chart's templates/crds/README.md
    says so); the source chart here has none, so test_crd_schemas uses ../shared/upstream/crds."""
    for release in ("external-secrets", "argo-rollouts"):
        values = yaml.safe_load((PLATFORM / "values" / f"{release}.yaml").read_text())
        assert values["installCRDs"] is True, release


def test_cluster_autoscaler_matches_the_cluster(platform: Platform) -> None:
    """Cluster Autoscaler supports the Kubernetes minor it is released with
    (kubernetes/autoscaler cluster-autoscaler/README.md, "Releases"); managed node groups tag their
    Auto Scaling groups k8s.io/cluster-autoscaler/enabled and k8s.io/cluster-autoscaler/<cluster>
    (https://docs.aws.amazon.com/eks/latest/userguide/managed-node-groups.html)."""
    outputs = overlay_outputs(platform.overlay)
    deployment = platform.one("Deployment", "cluster-autoscaler", "kube-system")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    image = re.fullmatch(
        r"registry\.k8s\.io/autoscaling/cluster-autoscaler:v(\d+\.\d+)\.\d+", container["image"]
    )
    assert image, container["image"]
    assert (
        "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,"
        f"k8s.io/cluster-autoscaler/{outputs['ClusterName']}"
    ) in container["command"]
    assert {"name": "AWS_REGION", "value": outputs["AwsRegion"]} in container["env"]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "cluster-autoscaler"


def prometheus_server(platform: Platform) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = platform.charts["prometheus"]
    workloads = {
        f"{d['kind']}/{d['metadata']['name']}": d
        for d in docs
        if d["kind"] in {"Deployment", "StatefulSet"}
    }
    assert set(workloads) == {
        "Deployment/prometheus-server",
        "StatefulSet/prometheus-alertmanager",
    }, "the server and the Alertmanager only: no pushgateway, kube-state-metrics"
    assert not [d for d in docs if d["kind"] == "DaemonSet"], "no node exporter"
    return workloads["Deployment/prometheus-server"], platform.one(
        "Service", "prometheus-server", "monitoring"
    )


def claimed_storage_classes(platform: Platform) -> dict[str, str]:
    """Every volume the platform claims -> its StorageClass: the charts' PVCs and their
    StatefulSets' volumeClaimTemplates."""
    claims: dict[str, str] = {}
    for doc in platform.docs:
        templates = doc.get("spec", {}).get("volumeClaimTemplates", [])
        for claim in [doc] * (doc["kind"] == "PersistentVolumeClaim") + templates:
            name = f"{doc['kind']}/{doc['metadata']['name']}/{claim['metadata']['name']}"
            claims[name] = claim["spec"].get("storageClassName", "")
    return claims


def cloudformation(path: Path) -> dict[str, Any]:
    """A template with its short-form intrinsics (!Sub, !GetAtt...) read as their long form."""

    class Loader(yaml.SafeLoader):
        pass

    def intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {name: value}

    Loader.add_multi_constructor("!", intrinsic)
    document: dict[str, Any] = yaml.load(path.read_text(), Loader=Loader)  # noqa: S506
    return document


def test_prometheus_keeps_its_data_on_gp3_volumes_encrypted_with_the_key_the_driver_may_use(
    platform: Platform,
) -> None:
    """EKS >= 1.30 has no default StorageClass (https://docs.aws.amazon.com/eks/latest/userguide/
    kubernetes-versions-standard.html, 1.30): a claim naming none stays Pending; gp3 volumes come
    from the EBS CSI driver (provisioner ebs.csi.aws.com). The driver encrypts with the key of
    the class's `kmsKeyId`, "the full ARN of the key", and without it with the account's default
    key aws/ebs (kubernetes-sigs/aws-ebs-csi-driver docs/parameters.md: encrypted, kmsKeyId):
    every claim's class names the security stack's data key, the one key the cluster stack grants
    the driver's role (EbsCsiDriverRole) use of."""
    claims = claimed_storage_classes(platform)
    assert set(claims) == {
        "PersistentVolumeClaim/prometheus-server/prometheus-server",
        "StatefulSet/prometheus-alertmanager/storage",
    }, claims
    key = overlay_outputs(platform.overlay)["DataKeyArn"]
    for name in set(claims.values()):
        storage_class = platform.one("StorageClass", name)
        assert storage_class["provisioner"] == "ebs.csi.aws.com"
        assert storage_class["parameters"]["type"] == "gp3"
        assert storage_class["parameters"]["encrypted"] == "true"
        assert storage_class["parameters"].get("kmsKeyId") == key, name
        assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    # The key the driver's role is granted: the security stack's output DataKeyArn.
    templates = REPO / "deploy" / "aws" / "templates"
    role = cloudformation(templates / "cluster.yaml")["Resources"]["EbsCsiDriverRole"]
    granted = {
        json.dumps(statement["Resource"])
        for policy in role["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if any(str(a).startswith("kms:") for a in statement["Action"])
    }
    assert granted == {json.dumps({"Fn::ImportValue": {"Fn::Sub": "${SecurityStack}-DataKeyArn"}})}
    output = cloudformation(templates / "security.yaml")["Outputs"]["DataKeyArn"]
    assert output["Export"] == {"Name": {"Fn::Sub": "${AWS::StackName}-DataKeyArn"}}
    server, _ = prometheus_server(platform)
    assert server["spec"]["strategy"]["type"] == "Recreate", "one pod at a time on a RWO volume"


def test_the_analysis_queries_the_platforms_prometheus(
    platform: Platform, manifests: Manifests
) -> None:
    _, service = prometheus_server(platform)
    port = service["spec"]["ports"][0]["port"]
    address = f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port}"
    args = {a["name"]: a.get("value") for a in manifests.one("AnalysisTemplate")["spec"]["args"]}
    assert args["prometheus-address"] == address


def test_prometheus_may_scrape_the_pods(platform: Platform, manifests: Manifests) -> None:
    server, service = prometheus_server(platform)
    labels = server["spec"]["template"]["metadata"]["labels"]
    ingress = manifests.one("NetworkPolicy", "registro-ingress")["spec"]["ingress"][0]
    peers = [p for p in ingress["from"] if "podSelector" in p]
    assert len(peers) == 1
    assert peers[0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": service["metadata"]["namespace"]
    }
    assert peers[0]["podSelector"]["matchLabels"].items() <= labels.items()


# Each kind the release applies, as RBAC names it (group, resource).
RESOURCES = {
    "ConfigMap": ("", "configmaps"),
    "Service": ("", "services"),
    "ServiceAccount": ("", "serviceaccounts"),
    "Ingress": ("networking.k8s.io", "ingresses"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "SecretStore": ("external-secrets.io", "secretstores"),
    "ExternalSecret": ("external-secrets.io", "externalsecrets"),
    "AnalysisTemplate": ("argoproj.io", "analysistemplates"),
    "Rollout": ("argoproj.io", "rollouts"),
    "Job": ("batch", "jobs"),
}
# What release.sh does beyond applying: delete the previous Job, read a failed Job's logs, read
# the Rollout's ReplicaSets and AnalysisRuns, abort through the status subresource.
EXTRA = {
    ("batch", "jobs"): {"delete"},
    ("argoproj.io", "rollouts/status"): {"patch"},
    ("argoproj.io", "analysisruns"): {"get", "list", "watch"},
    ("apps", "replicasets"): {"get", "list", "watch"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "pods/log"): {"get"},
}
APPLY = {"get", "list", "watch", "create", "patch"}


def test_deployer_role_grants_exactly_what_a_release_does(
    platform: Platform, manifests: Manifests
) -> None:
    """kubectl apply reads, then creates or patches; kubectl wait lists and watches. Nothing
    cluster-wide, no Secrets. The group is the one the deploy role's EKS access entry names."""
    role = platform.one("Role", "registro-deployer", "registro")
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    applied = {d["kind"] for d in manifests.docs} - {"Namespace"}
    assert applied <= set(RESOURCES), f"kinds with no RBAC name here: {applied - set(RESOURCES)}"
    wanted: dict[tuple[str, str], set[str]] = {RESOURCES[k]: set(APPLY) for k in applied}
    for key, verbs in EXTRA.items():
        wanted.setdefault(key, set()).update(verbs)
    assert granted == wanted
    binding = platform.one("RoleBinding", "registro-deployer", "registro")
    assert binding["roleRef"]["name"] == "registro-deployer"
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "registro-deployer"}
    ]
    assert not [
        d
        for d in platform.manifests
        if d["kind"] == "ClusterRoleBinding"
        and any(s.get("name") == "registro-deployer" for s in d.get("subjects", []))
    ]


def test_platform_outputs_come_from_the_stacks_never_copies(platform: Platform) -> None:
    """Every value the platform takes from a stack is a ${Output} placeholder in the committed
    files: no ARN, VPC id, zone id or cluster name is written in them."""
    outputs = overlay_outputs(platform.overlay)
    for path in [
        *(PLATFORM / "values").glob("*.yaml"),
        *(PLATFORM / "manifests").glob("*.yaml"),
        *(PLATFORM / "policies").glob("*.yaml"),
    ]:
        text = path.read_text()
        assert not re.search(r"arn:aws|vpc-[0-9a-f]{8}|\bZ[0-9A-Z]{12,}", text), path.name
        for value in (outputs["ClusterName"], outputs["DomainName"]):
            assert value not in text, (path.name, value)
    for rendered in ("manifests.yaml", "policies.yaml"):
        assert "${" not in (platform.directory / rendered).read_text(), rendered


def test_the_placeholder_names_are_release_outputs() -> None:
    """release.sh reads the keys of the overlay's outputs file; the platform may use only those."""
    used = {
        m
        for path in [
            *(PLATFORM / "values").glob("*.yaml"),
            *(PLATFORM / "manifests").glob("*.yaml"),
        ]
        for m in re.findall(r"\$\{([A-Za-z0-9]+)\}", path.read_text())
    }
    for overlay in ("qa", "prod"):
        assert used <= set(overlay_outputs(overlay)), used - set(overlay_outputs(overlay))


def test_a_missing_output_stops_the_platform_render(tmp_path: Path) -> None:
    outputs = {k: v for k, v in overlay_outputs("qa").items() if k != "ExternalDnsRoleArn"}
    (tmp_path / "outputs.env").write_text("".join(f"{k}={v}\n" for k, v in outputs.items()))
    result = subprocess.run(
        [
            "python3",
            "-m",
            "deploy.k8s.tools.platform_values",
            str(tmp_path / "outputs.env"),
            str(tmp_path / "out"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "needs output 'ExternalDnsRoleArn'" in result.stderr


@pytest.fixture(scope="module")
def namespaces() -> set[str]:
    docs = yaml.safe_load_all((PLATFORM / "manifests" / "namespaces.yaml").read_text())
    return {d["metadata"]["name"] for d in docs if d}


def test_every_chart_namespace_exists_before_its_chart(namespaces: set[str]) -> None:
    for chart in CHARTS:
        assert chart.namespace in namespaces | {"kube-system"}, chart.release


# Keys the charts read but only mention in a comment of their values.yaml.
COMMENTED_KEYS = {
    "prometheus": {
        "server.persistentVolume.storageClass",
        "alertmanager.persistence.storageClass",
    }
}
# Values the chart passes through whole as another program's configuration, checked by that
# program instead: Alertmanager's own (amtool, test_alert_routing.py).
PASSED_THROUGH = {"prometheus": "alertmanager.config."}


def unknown_keys(ours: Any, theirs: Any, prefix: str = "") -> list[str]:
    """Our values' keys that the chart's values.yaml does not have (Helm ignores a misspelt key
    silently). Free-form places (an empty map or null in the chart) accept anything."""
    if not isinstance(ours, dict) or not isinstance(theirs, dict) or not theirs:
        return []
    missing = []
    for key, value in ours.items():
        path = f"{prefix}{key}"
        if key not in theirs:
            missing.append(path)
        else:
            missing += unknown_keys(value, theirs[key], f"{path}.")
    return missing


def merged(base: Any, override: Any) -> Any:
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    return {k: merged(base.get(k), v) if k in base else v for k, v in override.items()} | {
        k: v for k, v in base.items() if k not in override
    }


def chart_values(source: Path) -> Any:
    """A chart's values.yaml, with each vendored subchart's own under the subchart's name (Helm
    passes that key to the subchart, whose values.yaml holds the rest of its defaults)."""
    values = yaml.safe_load((source / "values.yaml").read_text())
    for sub in sorted((source / "charts").glob("*/values.yaml")):
        name = sub.parent.name
        values[name] = merged(yaml.safe_load(sub.read_text()), values.get(name) or {})
    return values


def test_every_value_set_is_one_the_chart_has() -> None:
    for chart in CHARTS:
        require_upstream(chart.source)
        theirs = chart_values(chart.source)
        text = (PLATFORM / "values" / f"{chart.release}.yaml").read_text()
        ours = yaml.safe_load(re.sub(r"\$\{\w+\}", "x", text))
        missing = {
            key
            for key in unknown_keys(ours, theirs)
            if key not in COMMENTED_KEYS.get(chart.release, set())
            and not key.startswith(PASSED_THROUGH.get(chart.release, "\0"))
        }
        assert not missing, (chart.release, sorted(missing))


def test_argo_rollouts_verifies_target_groups_in_the_region(platform: Platform) -> None:
    """R4: --aws-verify-target-group makes the controller check in AWS, before each next step, the
    weights and targets it set through the Ingress (argoproj/argo-rollouts v1.9.0
    docs/features/traffic-management/alb.md). Its AWS clients read the region from the SDK's
    default chain (utils/aws/aws.go, metricproviders/cloudwatch/cloudwatch.go:
    config.LoadDefaultConfig; cmd/rollouts-controller/main.go has no region flag), so AWS_REGION
    is the stacks' region (docs/analysis/cloudwatch.md)."""
    assert "--aws-verify-target-group" in container_args(platform, "argo-rollouts")
    assert not [a for a in container_args(platform, "argo-rollouts") if "region" in a]
    deployment = next(
        d
        for d in platform.charts["argo-rollouts"]
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "argo-rollouts"
    )
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["AWS_REGION"] == overlay_outputs(platform.overlay)["AwsRegion"]
