"""The rendered manifests keep the promises of the delivery design (issue 5, docs/delivery.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from k8s_support import K8S, TEST_IMAGE, Manifests, overlay_outputs

RESTRICTED = "restricted"


def test_namespace_is_restricted_and_gets_readiness_gates(manifests: Manifests) -> None:
    labels = manifests.one("Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == RESTRICTED
    assert labels["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"
    namespaced = [d for d in manifests.docs if d["kind"] != "Namespace"]
    assert {d["metadata"].get("namespace") for d in namespaced} == {
        manifests.one("Namespace")["metadata"]["name"]
    }


def test_every_pod_is_locked_down(manifests: Manifests) -> None:
    templates = manifests.pod_templates()
    assert set(templates) == {"Rollout/registro", "Job/registro-migrate"}
    for where, template in templates.items():
        pod = template["spec"]
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert c["resources"]["requests"] and c["resources"]["limits"], where
            # The pipeline pins the image by digest; nothing ships as `latest` or untagged.
            assert c["image"] == TEST_IMAGE, where


def test_unrendered_overlays_leave_the_image_to_the_pipeline(manifests: Manifests) -> None:
    for path in (K8S / "base").glob("*.yaml"):
        for line in path.read_text().splitlines():
            match = re.match(r"\s*image:\s*(\S+)", line)
            if match:
                assert match.group(1) == "registro", f"{path.name}: {line.strip()}"


def test_probes_use_the_named_service_port(manifests: Manifests) -> None:
    container = manifests.one("Rollout")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports, probe
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_canary_routing_is_wired_end_to_end(manifests: Manifests) -> None:
    rollout = manifests.one("Rollout")
    canary = rollout["spec"]["strategy"]["canary"]
    alb = canary["trafficRouting"]["alb"]
    services = {s["metadata"]["name"]: s for s in manifests.all("Service")}
    pod_labels = rollout["spec"]["template"]["metadata"]["labels"]
    for name in (canary["stableService"], canary["canaryService"], alb["rootService"]):
        service = services[name]
        assert service["spec"]["selector"].items() <= pod_labels.items(), name
        assert [p["port"] for p in service["spec"]["ports"]] == [alb["servicePort"]], name
        assert service["spec"]["ports"][0]["targetPort"] == "http", name
    ingress = manifests.one("Ingress", alb["ingress"])
    paths = {p["path"]: p for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths["/"]["pathType"] == "Prefix"
    backend = paths["/"]["backend"]["service"]
    assert backend == {"name": alb["rootService"], "port": {"name": "use-annotation"}}
    # Prometheus scrapes exactly the two services the analysis compares.
    scraped = {
        n
        for n, s in services.items()
        if s["metadata"].get("annotations", {}).get("prometheus.io/scrape") == "true"
    }
    assert scraped == {canary["stableService"], canary["canaryService"]}


def analysis_steps(manifests: Manifests) -> list[dict[str, Any]]:
    steps = manifests.one("Rollout")["spec"]["strategy"]["canary"]["steps"]
    return [s["analysis"] for s in steps if "analysis" in s]


def test_production_canary_is_judged_at_each_weight(manifests: Manifests) -> None:
    steps = manifests.one("Rollout")["spec"]["strategy"]["canary"]["steps"]
    weights = [s["setWeight"] for s in steps if "setWeight" in s]
    assert weights == sorted(weights) and weights[-1] < 100
    template = manifests.one("AnalysisTemplate")["metadata"]["name"]
    for analysis in analysis_steps(manifests):
        assert [t["templateName"] for t in analysis["templates"]] == [template]
        # load-balancer: a placeholder release.sh apply replaces with the ALB's app/<name>/<id>
        assert analysis["args"] == [
            {"name": "service-name", "value": "registro-canary"},
            {"name": "load-balancer", "value": "load-balancer-full-name"},
        ]
    if manifests.overlay == "prod":
        # every weight gets a minute of traffic, then an analysis, before the next weight
        kinds = [next(iter(s)) for s in steps]
        assert kinds == ["setWeight", "pause", "analysis"] * len(weights), kinds
        assert weights[0] <= 10


def test_autoscaling_and_disruption_budget_cover_the_rollout(manifests: Manifests) -> None:
    rollout = manifests.one("Rollout")
    assert "replicas" not in rollout["spec"], "the HPA owns the replica count"
    hpa = manifests.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": rollout["apiVersion"],
        "kind": "Rollout",
        "name": rollout["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] >= 3
    pdb = manifests.one("PodDisruptionBudget")
    assert pdb["spec"]["selector"] == rollout["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
    zones = [
        t
        for t in rollout["spec"]["template"]["spec"]["topologySpreadConstraints"]
        if t["topologyKey"] == "topology.kubernetes.io/zone"
    ]
    assert (
        zones
        and zones[0]["labelSelector"]["matchLabels"] == rollout["spec"]["selector"]["matchLabels"]
    )


def test_ingress_is_https_only_behind_waf(manifests: Manifests) -> None:
    a = manifests.one("Ingress")["metadata"]["annotations"]
    assert a["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
    assert re.fullmatch(
        r"ELBSecurityPolicy-TLS13-1-2-.*|ELBSecurityPolicy-TLS-1-2-.*",
        a["alb.ingress.kubernetes.io/ssl-policy"],
    )
    assert re.fullmatch(
        r"arn:aws:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}",
        a["alb.ingress.kubernetes.io/certificate-arn"],
    )
    assert re.fullmatch(
        r"arn:aws:wafv2:[a-z0-9-]+:\d{12}:regional/webacl/.+",
        a["alb.ingress.kubernetes.io/wafv2-acl-arn"],
    )
    assert a["alb.ingress.kubernetes.io/target-type"] == "ip"
    container = manifests.one("Rollout")["spec"]["template"]["spec"]["containers"][0]
    assert (
        a["alb.ingress.kubernetes.io/healthcheck-path"]
        == container["readinessProbe"]["httpGet"]["path"]
    )


def field(doc: Any, path: str) -> Any:
    """Follow a kustomize fieldPath (a.b.[key.with.dots].0.c) through a document."""
    for part in re.findall(r"\[([^\]]+)\]|([^.\[\]]+)", path):
        key = part[0] or part[1]
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    return doc


def test_every_cloudformation_output_lands_where_it_belongs(manifests: Manifests) -> None:
    outputs = overlay_outputs(manifests.overlay)
    component = yaml.safe_load(
        (K8S / "components" / "cloudformation-outputs" / "kustomization.yaml").read_text()
    )
    used = set()
    for replacement in component["replacements"]:
        key = replacement["source"]["fieldPath"].removeprefix("data.")
        expected = outputs[key]
        if "options" in replacement["source"]:
            expected = expected.split(replacement["source"]["options"]["delimiter"])[
                replacement["source"]["options"]["index"]
            ]
        for target in replacement["targets"]:
            doc = manifests.one(target["select"]["kind"], target["select"]["name"])
            for path in target["fieldPaths"]:
                value = field(doc, path)
                if "options" in target:  # the output replaces one piece of the field
                    value = value.split(target["options"]["delimiter"])[target["options"]["index"]]
                assert value == expected, (key, path)
        used.add(key)
    # every output is used: in a manifest, by release.sh itself, or by the platform
    platform = {
        m
        for path in (K8S / "platform").rglob("*.yaml")
        for m in re.findall(r"\$\{([A-Za-z0-9]+)\}", path.read_text())
    }
    assert set(outputs) - used - platform == set()
    assert "ClusterName" in platform and "DbAppSecretArn" in used
    assert "RepositoryUri" in platform  # release.sh pins it; the image policies admit only it
    sa = manifests.one("ServiceAccount", "registro")["metadata"]["annotations"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/.+", sa["eks.amazonaws.com/role-arn"])


def secret_refs(pod: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each environment variable a pod takes from a Secret: name -> (secret, key)."""
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for c in pod["spec"]["containers"]
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def mounted_secret(pod: dict[str, Any], directory: str) -> dict[str, Any]:
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = [
        m
        for c in pod["spec"]["containers"]
        for m in c.get("volumeMounts", [])
        if m["mountPath"] == directory
    ]
    assert len(mounts) == 1 and mounts[0]["readOnly"], directory
    secret: dict[str, Any] = volumes[mounts[0]["name"]]["secret"]
    return secret


def test_database_logins_come_from_external_secrets(manifests: Manifests) -> None:
    """The server connects as the app role (DbAppSecretArn); only the migration Job gets the
    schema owner's login (DbSecretArn), and the app role's password to set (INTERFACES: the
    Job mounts both secrets, the Rollout only the app one)."""
    outputs = overlay_outputs(manifests.overlay)
    app = manifests.one("ExternalSecret", "registro-database")
    owner = manifests.one("ExternalSecret", "registro-database-owner")
    assert app["spec"]["dataFrom"] == [{"extract": {"key": outputs["DbAppSecretArn"]}}]
    assert owner["spec"]["dataFrom"] == [{"extract": {"key": outputs["DbSecretArn"]}}]
    for external in (app, owner):
        store = manifests.one("SecretStore", external["spec"]["secretStoreRef"]["name"])
        assert store["spec"]["provider"]["aws"]["service"] == "SecretsManager"
        # the controller's own IRSA role reads the secret (deploy/aws edge stack)
        assert "auth" not in store["spec"]["provider"]["aws"]
        data = external["spec"]["target"]["template"]["data"]
        # What External Secrets renders from the secret's username: no password in the URL.
        rendered = re.sub(r'\{\{ "([^"]*)" \}\}', r"\1", data["DATABASE_URL"])
        rendered = rendered.replace("{{ .username | urlquery }}", "registro")
        # ... and TLS required: the client refuses a plaintext connection.
        assert re.fullmatch(
            r"postgresql://registro@[a-z0-9.-]+:\d+/\w+\?sslmode=require", rendered
        ), rendered
        assert data["password"] == "{{ .password }}"  # noqa: S105 (a template, not a secret)
    password_file = Path(manifests.container_environment()["REGISTRO_DATABASE_PASSWORD_FILE"])
    pods = manifests.pod_templates()

    server = pods["Rollout/registro"]
    assert secret_refs(server) == {"DATABASE_URL": ("registro-database", "DATABASE_URL")}
    secret = mounted_secret(server, str(password_file.parent))
    assert secret["secretName"] == "registro-database"
    assert secret["items"] == [{"key": "password", "path": password_file.name}]
    mounted = {v["secret"]["secretName"] for v in server["spec"]["volumes"] if "secret" in v}
    assert mounted == {"registro-database"}, "the server never sees the owner's login"

    job = pods["Job/registro-migrate"]
    assert secret_refs(job) == {
        "DATABASE_URL": ("registro-database-owner", "DATABASE_URL"),
        "REGISTRO_APP_ROLE": ("registro-database", "username"),
    }
    secret = mounted_secret(job, str(password_file.parent))
    assert secret["secretName"] == "registro-database-owner"
    assert secret["items"] == [{"key": "password", "path": password_file.name}]
    env = {e["name"]: e.get("value") for e in job["spec"]["containers"][0]["env"]}
    app_file = Path(env["REGISTRO_APP_PASSWORD_FILE"])
    secret = mounted_secret(job, str(app_file.parent))
    assert secret["secretName"] == "registro-database"
    assert secret["items"] == [{"key": "password", "path": app_file.name}]
    assert app["spec"]["target"]["template"]["data"]["username"] == "{{ .username }}"
    assert not manifests.all("Secret"), "no Secret is ever rendered from git"


def test_network_policy_allows_only_what_is_needed(manifests: Manifests) -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in manifests.all("NetworkPolicy")}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    ingress = policies["registro-ingress"]
    rollout = manifests.one("Rollout")
    assert ingress["podSelector"] == rollout["spec"]["selector"]
    assert [r["ports"] for r in ingress["ingress"]] == [[{"protocol": "TCP", "port": "http"}]]
    egress = policies["registro-egress"]
    job_labels = manifests.one("Job")["spec"]["template"]["metadata"]["labels"]
    for labels in (rollout["spec"]["template"]["metadata"]["labels"], job_labels):
        assert egress["podSelector"]["matchLabels"].items() <= labels.items()
    ports = sorted((p["protocol"], p["port"]) for rule in egress["egress"] for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 4318), ("TCP", 5432), ("UDP", 53)], (
        "DNS, the trace agent and the database, nothing else"
    )
    for rule in egress["egress"]:
        for peer in rule["to"]:
            assert peer.get("ipBlock", {}).get("cidr") != "0.0.0.0/0"


def test_migration_job_runs_the_same_image_and_config(manifests: Manifests) -> None:
    job = manifests.one("Job", "registro-migrate")["spec"]["template"]["spec"]["containers"][0]
    server = manifests.one("Rollout")["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["registro", "migrate"]
    assert server["command"] == ["registro", "serve"]
    assert job["image"] == server["image"]
    assert job["envFrom"] == server["envFrom"]


def test_ingress_can_be_deleted_and_is_named_in_dns(manifests: Manifests) -> None:
    """With deletion_protection.enabled=true in the annotation, the controller refuses to delete
    the ALB ("deletion_protection is enabled, cannot delete the ingress") and stops reconciling, so
    the Ingress's finalizer never clears and teardown hangs (kubernetes-sigs/
    aws-load-balancer-controller pull 2172, issues 1900 and 2827). ExternalDNS publishes the name
    in external-dns.alpha.kubernetes.io/hostname (kubernetes-sigs/external-dns docs/annotations)."""
    a = manifests.one("Ingress")["metadata"]["annotations"]
    attributes = a.get("alb.ingress.kubernetes.io/load-balancer-attributes", "")
    assert "deletion_protection.enabled=true" not in attributes
    outputs = overlay_outputs(manifests.overlay)
    assert a["external-dns.alpha.kubernetes.io/hostname"] == outputs["DomainName"]


def test_the_alb_has_the_environments_name(manifests: Manifests) -> None:
    """R7: without alb.ingress.kubernetes.io/load-balancer-name the controller names the ALB from
    a hash of the Ingress, and alarms on `app/<name>/<id>` lose it when it is recreated; the name
    is at most 32 characters (kubernetes-sigs/aws-load-balancer-controller v3.5.0
    docs/guide/ingress/annotations.md, "load-balancer-name"), letters, digits and hyphens, not
    beginning with `internal-` (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html)."""
    name = manifests.one("Ingress")["metadata"]["annotations"][
        "alb.ingress.kubernetes.io/load-balancer-name"
    ]
    assert name == overlay_outputs(manifests.overlay)["ClusterName"]
    assert re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?", name), name
    assert not name.startswith("internal-")


def test_readiness_outlasts_the_services_database_check(manifests: Manifests) -> None:
    """/readyz waits up to READY_CHECK_TIMEOUT for the database (src/registro/api/health.py); a
    kubelet probe timing out first fails a pod whose database is only slow (a failover), and a
    slow database slows every pod alike: all would leave the endpoints and the ALB at once
    (https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#configure-probes,
    timeoutSeconds)."""
    source = (K8S.parents[1] / "src" / "registro" / "api" / "health.py").read_text()
    found = re.search(r"^READY_CHECK_TIMEOUT = ([0-9.]+)$", source, re.M)
    assert found, "src/registro/api/health.py: no READY_CHECK_TIMEOUT"
    probe = manifests.server_container()["readinessProbe"]
    assert probe["timeoutSeconds"] >= float(found.group(1)) + 1
    assert probe["timeoutSeconds"] < probe["periodSeconds"]


NOT_PUBLIC = ("/metrics", "/docs", "/openapi.json")


def test_operator_routes_are_not_public(manifests: Manifests) -> None:
    """The controller orders an Ingress's rules Exact first, then Prefix longest first (since
    v2.4.3: kubernetes-sigs/aws-load-balancer-controller docs/guide/ingress/spec.md), so each
    blocked path, Exact or a Prefix longer than `/`, is matched before the forward to the pods;
    its action (alb.ingress.kubernetes.io/actions.<name>) answers 404 at the ALB."""
    ingress = manifests.one("Ingress")
    paths = {p["path"]: p for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths["/"]["pathType"] == "Prefix"
    for path in NOT_PUBLIC:
        rule = paths[path]
        assert rule["pathType"] in {"Exact", "Prefix"}, path
        backend = rule["backend"]["service"]
        assert backend["port"] == {"name": "use-annotation"}, path
        action = json.loads(
            ingress["metadata"]["annotations"][
                f"alb.ingress.kubernetes.io/actions.{backend['name']}"
            ]
        )
        assert action["type"] == "fixed-response", path
        assert action["fixedResponseConfig"]["statusCode"] == "404", path
        assert json.loads(action["fixedResponseConfig"]["messageBody"])["message"]
    forwarded = [p for p in paths if p not in NOT_PUBLIC]
    assert forwarded == ["/"]


def test_traces_go_to_the_cloudwatch_agent_and_only_there(manifests: Manifests) -> None:
    """Spans go over OTLP/HTTP to the amazon-cloudwatch-observability add-on's agent
    (docs/decisions/telemetry-export.md): the operator names its Service after the agent
    (cloudwatch-agent, namespace amazon-cloudwatch) and selects its pods by
    manifestutils.SelectorLabels (aws/amazon-cloudwatch-agent-operator,
    internal/manifests/collector/service.go); the OTLP/HTTP port is the agent config's
    traces.traces_collected.otlp http_endpoint (deploy/aws/templates/cluster.yaml). The VPC CNI's
    policy controller allows a Service's ClusterIP when the peer's podSelector matches the
    Service's selector (aws/amazon-network-policy-controller-k8s,
    pkg/resolvers/endpoints.go getMatchingServiceClusterIPs): the agent runs with hostNetwork."""
    env = manifests.container_environment()
    endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert endpoint == "http://cloudwatch-agent.amazon-cloudwatch:4318"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert 0 < float(env["OTEL_TRACES_SAMPLER_ARG"]) <= 1
    pod = next(v for v in manifests.server_container()["env"] if v["name"] == "REGISTRO_POD_NAME")
    assert pod["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    policies = {p["metadata"]["name"]: p["spec"] for p in manifests.all("NetworkPolicy")}
    to_agent = [r for r in policies["registro-egress"]["egress"] if r["ports"][0]["port"] == 4318]
    assert to_agent == [
        {
            "to": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "amazon-cloudwatch"}
                    },
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/managed-by": "amazon-cloudwatch-agent-operator",
                            "app.kubernetes.io/instance": "amazon-cloudwatch.cloudwatch-agent",
                            "app.kubernetes.io/part-of": "amazon-cloudwatch-agent",
                            "app.kubernetes.io/component": "amazon-cloudwatch-agent",
                        }
                    },
                }
            ],
            "ports": [{"protocol": "TCP", "port": 4318}],
        }
    ]
