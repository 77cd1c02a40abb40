"""`kubectl` and `helm` for the rehearsal: an API server, its RBAC, Argo Rollouts and the load
balancer controller reduced to the behaviours a first deployment depends on. State lives in the
JSON file STANDIN_KUBE; every call is recorded in STANDIN_LOG; the caller's identity is
STANDIN_IDENTITY ("admin": the cluster creator; "deployer": the pipeline's deploy role, an EKS
access entry in Kubernetes group `registro-deployer` with no access policy).

Behaviours, each as documented:
- `kubectl kustomize` is the real kubectl (rendering is offline).
- A kind exists only once its CRD is installed (helm installs the charts' CRDs): otherwise
  `no matches for kind` (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/).
- The deployer may do only what a Role bound to its group grants: RBAC is deny by default and
  Roles are namespaced (https://kubernetes.io/docs/reference/access-authn-authz/rbac/); EKS access
  entries without a policy add nothing (https://docs.aws.amazon.com/eks/latest/userguide/access-entries.html).
- A Rollout has a status subresource: a patch of `status` on the main resource is ignored; only
  `--subresource=status` changes it (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource,
  argo-rollouts manifests/crds/rollout-crd.yaml `subresources: status`). Setting
  `status.abort` aborts the canary: traffic back to stable, phase Degraded
  (https://argo-rollouts.readthedocs.io/en/stable/features/specification/).
- Argo Rollouts: a new pod template is a new revision. The first has no stable revision to
  compare with and is Healthy at once; a canary pauses at its timed step (phase Paused, message
  CanaryPauseStep: the pause reason, argo-rollouts v1.9.0 utils/rollout/rolloututil.go
  CalculateRolloutPhase) while its analysis measures the canary's traffic. The analysis judges
  requests only: each `get` of the Rollout is a measurement, and once STANDIN_TRAFFIC (the ALB's
  request log) holds 5 requests more than when the canary began, the scenario's verdict for its
  image applies: "pass" (default) Healthy, stableRS the new hash; "fail" Degraded and aborted,
  stableRS unchanged. After 4 measurements with no traffic the run is Inconclusive, which pauses
  the Rollout (docs/features/analysis.md, "Inconclusive Runs"): phase Paused, message
  InconclusiveAnalysisRun. "pause" leaves it Paused at its step for good.
  The ALB's own 5xx are judged only if the AnalysisTemplate has a cloudWatch metric on
  AWS/ApplicationELB HTTPCode_ELB_5XX_Count (argo-rollouts docs/analysis/cloudwatch.md); its
  LoadBalancer dimension, the Rollout's args substituted, must be an existing ALB's app/<name>/<id>
  (the dimension's form: Elastic Load Balancing's "CloudWatch metrics for your Application Load
  Balancer"), else CloudWatch has no datapoints for it and the run is Inconclusive. The verdict
  "alb-fail" (the ALB answers 5xx itself) fails that metric: Degraded and aborted; a Rollout
  or template without it never sees them and promotes the canary.
- A Job runs to its end at once: condition Complete, or Failed (reason BackoffLimitExceeded) when
  the scenario's "jobs" says so for its name (https://kubernetes.io/docs/concepts/workloads/controllers/job/#terminal-job-conditions);
  `kubectl wait --for=condition=C` on a Job without condition C times out, as the real one does
  after --timeout;
  `kubectl logs job/NAME` prints the scenario's "logs" for it. No pod runs: what a Job's program
  does (restore.py's data check) is tested apart, against a real PostgreSQL.
- External Secrets reads the store when an ExternalSecret is created or its annotations change
  (external-secrets.io FAQ, "Can I manually trigger a secret refresh?"): status.refreshTime (now,
  to the second) and condition Ready True.
- The prometheus chart's Prometheus server (a Deployment) and Alertmanager (a StatefulSet) claim
  gp3 volumes: each PVC is bound to a PV the EBS CSI driver provisions as an EC2 volume (created
  in moto, tagged as the driver tags it: kubernetes.io/created-for/pvc/namespace and /name). The
  StorageClass's reclaimPolicy Delete deletes the PV and its volume when the PVC goes
  (https://kubernetes.io/docs/concepts/storage/persistent-volumes/#delete), but a PVC in use by a
  pod is kept until no pod uses it (`kubernetes.io/pvc-protection`, same page, "Storage Object in
  Use Protection"), and a StatefulSet's claims outlive it (https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#persistentvolumeclaim-retention).
  Deleting the cluster leaves the volumes: that is what teardown must not do.
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
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

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
# The CRDs each vendored chart installs (../shared/upstream/charts/*/crds, templates).
CHART_CRDS = {
    "argo-rollouts": ["Rollout", "AnalysisTemplate", "AnalysisRun", "ClusterAnalysisTemplate",
                      "Experiment"],
    "external-secrets": ["ExternalSecret", "SecretStore", "ClusterSecretStore"],
    "aws-load-balancer-controller": ["TargetGroupBinding", "IngressClassParams"],
    "policy-controller": ["ClusterImagePolicy", "TrustRoot"],
}  # fmt: skip
REVISION = "rollout.argoproj.io/revision"
HASH = "rollouts-pod-template-hash"


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


# --- RBAC ------------------------------------------------------------------------------------


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


# --- controllers -----------------------------------------------------------------------------


def template_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def reconcile_rollout(state: dict[str, Any], rollout: dict[str, Any]) -> None:
    """Argo Rollouts' controller, once per new pod template."""
    template = rollout["spec"]["template"]
    new = template_hash(template)
    status = rollout.setdefault("status", {})
    if status.get("currentPodHash") == new and status.get("phase") in ("Healthy", "Paused"):
        return
    replica_sets = [o for o in state["objects"].values() if o["kind"] == "ReplicaSet"]
    revision = 1 + max(
        (int(rs["metadata"]["annotations"][REVISION]) for rs in replica_sets), default=0
    )
    name = f"registro-{new}"
    state["objects"][key("ReplicaSet", name, NAMESPACE)] = {
        "kind": "ReplicaSet",
        "metadata": {
            "name": name, "namespace": NAMESPACE,
            # Argo copies the pod template's labels, adding the hash.
            "labels": {**template.get("metadata", {}).get("labels", {}), HASH: new},
            "annotations": {REVISION: str(revision)},
            "ownerReferences": [{"kind": "Rollout", "uid": rollout["metadata"]["uid"]}],
        },
        "spec": {"template": json.loads(json.dumps(template))},
    }  # fmt: skip
    rollout["metadata"].setdefault("annotations", {})[REVISION] = str(revision)
    image = template["spec"]["containers"][0]["image"]
    verdict = scenario().get("canary", {}).get(image.rsplit("@", 1)[-1], "pass")
    status.update(currentPodHash=new, observedGeneration=str(rollout["metadata"]["generation"]))
    status.pop("abort", None)
    state.pop("analysis", None)
    if status.get("stableRS") is None or new == status.get("stableRS"):
        status.update(phase="Healthy", stableRS=new, message="")
        return
    status.update(phase="Paused", message="CanaryPauseStep")
    if verdict != "pause":
        state["analysis"] = {
            "hash": new, "verdict": verdict, "revision": revision, "from": traffic(), "looks": 0,
        }  # fmt: skip


def traffic() -> int:
    """Requests the ALB has served so far (the rehearsal's request log)."""
    path = Path(os.environ.get("STANDIN_TRAFFIC", "/nonexistent"))
    return len(path.read_text().splitlines()) if path.exists() else 0


def alb_metric(state: dict[str, Any], rollout: dict[str, Any]) -> tuple[str, str] | None:
    """The AnalysisTemplate's CloudWatch metric on the ALB's own 5xx, and the LoadBalancer
    dimension the Rollout's analysis step gives it ({{args.NAME}} substituted), if it has one."""
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    step = next((s["analysis"] for s in steps if "analysis" in s), None)
    if step is None:
        return None  # QA's canary has no analysis step
    name = step["templates"][0]["templateName"]
    template = state["objects"].get(key("AnalysisTemplate", name, NAMESPACE))
    if template is None:
        return None
    args = {a["name"]: a.get("value", "") for a in template["spec"].get("args", [])}
    args |= {a["name"]: a.get("value", "") for a in step.get("args", [])}
    for metric in template["spec"]["metrics"]:
        for query in metric["provider"].get("cloudWatch", {}).get("metricDataQueries", []):
            stat = query.get("metricStat", {}).get("metric", {})
            if (stat.get("namespace"), stat.get("metricName")) != (
                "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count",
            ):  # fmt: skip
                continue
            for dimension in stat.get("dimensions", []):
                if dimension["name"] == "LoadBalancer":
                    value = re.sub(
                        r"\{\{\s*args\.([\w-]+)\s*\}\}",
                        lambda m: str(args.get(m.group(1), "")), dimension["value"],
                    )  # fmt: skip
                    return metric["name"], value
    return None


def measure(state: dict[str, Any], rollout: dict[str, Any]) -> None:
    """One measurement of the canary's analysis (each time the Rollout is read)."""
    analysis = state.get("analysis")
    status = rollout.get("status", {})
    if not analysis or status.get("currentPodHash") != analysis["hash"]:
        return
    analysis["looks"] += 1
    judged = alb_metric(state, rollout)
    albs = {arn.split(":loadbalancer/", 1)[1] for arn in state.get("albs", [])}
    if traffic() - analysis["from"] >= 5 and (judged is None or judged[1] in albs):
        state.pop("analysis")
        if analysis["verdict"] == "alb-fail" and judged is not None:
            status.update(
                phase="Degraded", abort=True,
                message="RolloutAborted: Rollout aborted update to revision "
                f"{analysis['revision']}: Metric \"{judged[0]}\" assessed Failed",
            )  # fmt: skip
        elif analysis["verdict"] == "fail":
            status.update(
                phase="Degraded", abort=True,
                message="RolloutAborted: Rollout aborted update to revision "
                f"{analysis['revision']}: Metric \"success-rate\" assessed Failed",
            )  # fmt: skip
        else:
            status.update(phase="Healthy", stableRS=analysis["hash"], message="")
    elif analysis["looks"] >= 4:
        state.pop("analysis")
        status.update(
            phase="Paused", message="InconclusiveAnalysisRun",
            pauseConditions=[{"reason": "InconclusiveAnalysisRun"}],
        )  # fmt: skip


def abort(rollout: dict[str, Any]) -> None:
    status = rollout["status"]
    status.pop("pauseConditions", None)
    if status.get("abort") and status.get("phase") != "Healthy":
        status.update(phase="Degraded", message="RolloutAborted: aborted by the user")


# The prometheus chart's workloads and their claims: (kind, workload, claim, size in GiB).
PROMETHEUS_VOLUMES = [
    ("Deployment", "prometheus-server", "prometheus-server", 8),
    ("StatefulSet", "prometheus-alertmanager", "storage-prometheus-alertmanager-0", 1),
]


def ec2() -> Any:
    import boto3  # the rehearsal's moto, as the EBS CSI driver calls EC2

    return boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def install_prometheus(state: dict[str, Any]) -> None:
    for kind, workload, claim, size in PROMETHEUS_VOLUMES:
        state["objects"][key(kind, workload, "monitoring")] = {
            "kind": kind, "metadata": {"name": workload, "namespace": "monitoring"},
        }  # fmt: skip
        if key("PersistentVolumeClaim", claim, "monitoring") in state["objects"]:
            continue
        tags = [
            {"Key": "kubernetes.io/created-for/pvc/namespace", "Value": "monitoring"},
            {"Key": "kubernetes.io/created-for/pvc/name", "Value": claim},
        ]
        volume = ec2().create_volume(
            AvailabilityZone=os.environ.get("AWS_REGION", "eu-west-1") + "a", Size=size,
            VolumeType="gp3", Encrypted=True,
            TagSpecifications=[{"ResourceType": "volume", "Tags": tags}],
        )["VolumeId"]  # fmt: skip
        pv = f"pvc-{hashlib.sha256(claim.encode()).hexdigest()[:12]}"
        state["objects"][key("PersistentVolumeClaim", claim, "monitoring")] = {
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": "monitoring",
                         "finalizers": ["kubernetes.io/pvc-protection"]},
            "spec": {"volumeName": pv, "storageClassName": "gp3-data-key"},
            "user": [kind, workload],
        }  # fmt: skip
        state["objects"][key("PersistentVolume", pv, None)] = {
            "kind": "PersistentVolume",
            "metadata": {"name": pv},
            "spec": {"claimRef": {"namespace": "monitoring", "name": claim},
                     "persistentVolumeReclaimPolicy": "Delete",
                     "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": volume}},
        }  # fmt: skip


def release_claims(state: dict[str, Any]) -> None:
    """The PV controller and the EBS CSI driver: a deleted claim no pod uses goes, and with it
    its PV and (reclaimPolicy Delete) its EBS volume."""
    for object_key, claim in list(state["objects"].items()):
        if claim["kind"] != "PersistentVolumeClaim" or "deletionTimestamp" not in claim["metadata"]:
            continue
        user = claim.get("user") or ["", ""]
        if key(user[0], user[1], "monitoring") in state["objects"]:
            continue  # kubernetes.io/pvc-protection: a pod still uses it
        del state["objects"][object_key]
        pv_key = key("PersistentVolume", claim["spec"]["volumeName"], None)
        pv = state["objects"].pop(pv_key, None)
        if pv is not None:
            ec2().delete_volume(VolumeId=pv["spec"]["csi"]["volumeHandle"])


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


# --- kubectl ---------------------------------------------------------------------------------


def parse_kubectl(args: list[str]) -> tuple[list[str], dict[str, str | bool]]:
    words: list[str] = []
    flags: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            flags[name] = value
        elif arg in ("-n", "--namespace", "-f", "-l", "--selector", "-o", "-p", "--patch",
                     "--type", "--patch-file", "--for", "--timeout", "--tail", "--filename",
                     "--subresource", "--field-manager"):  # fmt: skip
            flags[arg.lstrip("-")] = args[i + 1]
            i += 1
        elif arg.startswith("-"):
            flags[arg.lstrip("-")] = True
        else:
            words.append(arg)
        i += 1
    aliases = {"n": "namespace", "f": "filename", "l": "selector", "p": "patch"}
    return words, {aliases.get(k, k): v for k, v in flags.items()}


def selected(obj: dict[str, Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels", {})
    for term in re.split(r",(?![^()]*\))", selector) if selector else []:
        term = term.strip()
        notin = re.fullmatch(r"(\S+)\s+notin\s+\((.*)\)", term)
        if notin:
            if labels.get(notin[1]) in [v.strip() for v in notin[2].split(",")]:
                return False
        elif "!=" in term:
            name, value = term.split("!=", 1)
            if labels.get(name) == value:
                return False
        elif "=" in term:
            name, value = term.split("=", 1)
            if labels.get(name) != value.lstrip("="):
                return False
        elif labels.get(term) is None:
            return False
    return True


def kubectl_apply(state: dict[str, Any], flags: dict[str, Any]) -> None:
    documents = [d for d in yaml.safe_load_all(Path(str(flags["filename"])).read_text()) if d]
    items = [i for d in documents for i in (d["items"] if d.get("kind") == "List" else [d])]
    chosen = [i for i in items if selected(i, str(flags.get("selector", "")))]
    for obj in chosen:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if not built_in(obj["apiVersion"]) and kind not in state["crds"]:
            raise Refused(
                f'error: resource mapping not found for name: "{name}" namespace: "{NAMESPACE}" '
                f'from "{flags["filename"]}": no matches for kind "{kind}" in version '
                f'"{obj["apiVersion"]}"\nensure CRDs are installed first'
            )
        for verb in ("get", "create", "patch"):
            authorize(state, kind, verb, name)
    for obj in chosen:
        kind, name = obj["kind"], obj["metadata"]["name"]
        object_key = key(kind, name, obj["metadata"].get("namespace"))
        old = state["objects"].get(object_key)
        obj = json.loads(json.dumps(obj))
        if kind == "Rollout":
            generation = (old or {}).get("metadata", {}).get("generation", 0)
            changed = old is None or old.get("spec") != obj.get("spec")
            obj["metadata"]["generation"] = generation + (1 if changed else 0)
            obj["metadata"]["uid"] = (old or {}).get("metadata", {}).get("uid", "uid-rollout")
            obj["metadata"]["annotations"] = (old or {}).get("metadata", {}).get("annotations", {})
            obj["status"] = (old or {}).get("status", {})
            state["objects"][object_key] = obj
            if changed:
                reconcile_rollout(state, obj)
        else:
            state["objects"][object_key] = obj
            if kind == "Ingress":
                reconcile_ingress(state, obj)
            if kind == "Job":
                outcome = scenario().get("jobs", {}).get(name, "Complete")
                condition = {"type": outcome, "status": "True"}
                if outcome == "Failed":
                    condition["reason"] = "BackoffLimitExceeded"
                obj["status"] = {"conditions": [condition]}
            if kind == "ExternalSecret":
                refresh_secret(obj)
        print(f"{kind.lower()}/{name} {'configured' if old else 'created'}")


def refresh_secret(obj: dict[str, Any]) -> None:
    """External Secrets' controller reading the store for this ExternalSecret."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj["status"] = {
        "refreshTime": now,
        "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced"}],
    }


def jsonpath(obj: Any, expression: str) -> str:
    def value(path: str) -> str:
        current = obj
        for part in re.findall(r"[^.\[\]]+", path):
            if isinstance(current, list):
                current = (
                    current[int(part)] if part.isdigit() and int(part) < len(current) else None
                )
            elif isinstance(current, dict):
                current = current.get(part)
            if current is None:
                return ""
        return current if isinstance(current, str) else json.dumps(current)

    return re.sub(r"\{\.([^}]*)\}", lambda m: value(m[1]), expression)


def find(
    state: dict[str, Any], kinds: list[str], name: str | None, selector: str
) -> list[dict[str, Any]]:
    return [
        o for o in state["objects"].values()
        if o["kind"] in kinds and (name is None or o["metadata"]["name"] == name)
        and selected(o, selector) and (o["kind"] != "ReplicaSet" or not name)
    ]  # fmt: skip


KIND_NAMES = {
    "rollout": "Rollout", "rollouts": "Rollout", "replicaset": "ReplicaSet", "ingress": "Ingress",
    "job": "Job", "externalsecret": "ExternalSecret", "pods": "Pod", "pod": "Pod",
    "pvc": "PersistentVolumeClaim", "persistentvolumeclaim": "PersistentVolumeClaim",
    "pv": "PersistentVolume", "persistentvolume": "PersistentVolume",
    "deployment": "Deployment", "statefulset": "StatefulSet",
}  # fmt: skip


def target(words: list[str]) -> tuple[list[str], str | None]:
    """`rollout registro`, `job/registro-migrate`, `rollout,replicaset` -> kinds, name."""
    first = words[0]
    if "/" in first:
        kind, name = first.split("/", 1)
        return [KIND_NAMES.get(kind, kind)], name
    kinds = [KIND_NAMES.get(k, k) for k in first.split(",")]
    return kinds, words[1] if len(words) > 1 else None


def kubectl(args: list[str]) -> None:
    if args[:1] in (["kustomize"], ["version"]):  # the client's own work: the real kubectl's
        os.execv(os.environ["STANDIN_REAL_KUBECTL"], ["kubectl", *args])  # noqa: S606
    state = load()
    if not state.get("context"):
        raise Refused("error: no context: run aws eks update-kubeconfig first")
    words, flags = parse_kubectl(args)
    verb, rest = words[0], words[1:]
    try:
        if verb == "apply":
            kubectl_apply(state, flags)
        elif verb == "get":
            kinds, name = target(rest)
            for kind in kinds:
                authorize(state, kind, "get" if name else "list", name or "")
            found = find(state, kinds, name, str(flags.get("selector", "")))
            for rollout in (o for o in found if o["kind"] == "Rollout"):
                measure(state, rollout)
            if name and not found:
                raise Refused(f'Error from server (NotFound): {rest[0]} "{name}" not found')
            output = str(flags.get("output", flags.get("o", "")))
            if output == "json":
                print(json.dumps(found[0] if name else {"kind": "List", "items": found}))
            elif output.startswith("jsonpath="):
                print(jsonpath(found[0], output.removeprefix("jsonpath=")), end="")
            else:
                print("\n".join(f"{o['kind']}/{o['metadata']['name']}" for o in found))
        elif verb == "patch":
            kinds, name = target(rest)
            (rollout,) = find(state, kinds, name, "")
            subresource = str(flags.get("subresource", ""))
            authorize(state, kinds[0], "patch", name or "", subresource)
            patch = json.loads(
                Path(str(flags["patch-file"])).read_text()
                if "patch-file" in flags
                else str(flags["patch"])
            )
            if subresource == "status":
                rollout["status"].update(patch.get("status", {}))
                if rollout["status"].get("abort"):
                    state.pop("analysis", None)
                abort(rollout)
            else:
                # The status subresource: the main resource ignores changes to status.
                if "spec" in patch and patch["spec"] != {}:
                    merged = json.loads(json.dumps(rollout["spec"]))
                    merged.update(patch["spec"])
                    if merged != rollout["spec"]:
                        rollout["spec"] = merged
                        rollout["metadata"]["generation"] += 1
                        reconcile_rollout(state, rollout)
                print(
                    f"rollout.argoproj.io/{name} patched"
                    + ("" if "spec" in patch else " (no change)")
                )
                save(state)
                return
            print(f"rollout.argoproj.io/{name} patched")
        elif verb == "wait":
            condition = str(flags.get("for", ""))
            if condition == "delete":
                kinds, _ = target(rest)
                authorize(state, kinds[0], "list", "")
                for object_key in [k for k, o in state["objects"].items() if o["kind"] in kinds]:
                    if kinds == ["Ingress"] and not delete_ingress(state, object_key):
                        save(state)
                        raise Refused(f"error: timed out waiting for the condition on {object_key}")
            else:
                kinds, name = target(rest)
                authorize(state, kinds[0], "get", name or "")
                found = find(state, kinds, name, "")
                if not found:
                    raise Refused(f'Error from server (NotFound): "{name}" not found')
                wanted = condition.removeprefix("condition=")
                conditions = found[0].get("status", {}).get("conditions", [])
                if found[0]["kind"] == "Job" and not any(
                    c["type"] == wanted and c["status"] == "True" for c in conditions
                ):
                    raise Refused(f"error: timed out waiting for the condition on jobs/{name}")
            print("condition met")
        elif verb == "delete":
            kinds, name = target(rest)
            authorize(state, kinds[0], "delete", name or "")
            for object_key in [
                k for k, o in state["objects"].items()
                if o["kind"] in kinds and (name is None or o["metadata"]["name"] == name)
            ]:  # fmt: skip
                if kinds == ["PersistentVolumeClaim"]:
                    state["objects"][object_key]["metadata"]["deletionTimestamp"] = "now"
                    continue
                if kinds == ["Ingress"]:
                    # Deletion marks it; the controller's finalizer decides when it goes.
                    state["objects"][object_key]["metadata"]["deletionTimestamp"] = "now"
                    if flags.get("wait") == "false":
                        continue
                    if not delete_ingress(state, object_key):
                        save(state)
                        raise Refused("error: timed out waiting for the Ingress finalizer")
                else:
                    del state["objects"][object_key]
            release_claims(state)
        elif verb == "annotate":
            kinds, name = target(rest)
            authorize(state, kinds[0], "patch", name or "")
            found = find(state, kinds, name, "")
            if not found:
                raise Refused(f'Error from server (NotFound): {rest[0]} "{name}" not found')
            for pair in rest[2:] if "/" not in rest[0] else rest[1:]:
                annotation, value = pair.split("=", 1)
                found[0]["metadata"].setdefault("annotations", {})[annotation] = value
            if found[0]["kind"] == "ExternalSecret":
                refresh_secret(found[0])
            print(f"{rest[0]}/{name} annotated")
        elif verb == "logs":
            _, name = target(rest)
            print(scenario().get("logs", {}).get(name, "(stand-in: no pod logs)"))
        elif verb == "auth" and rest[:1] == ["can-i"]:
            print("yes")
        else:
            raise Refused(f"stand-in kubectl: {verb} is not modelled")
    finally:
        save(state)


# --- helm ------------------------------------------------------------------------------------


HELM_VALUED = {
    "-n",
    "--namespace",
    "--version",
    "-f",
    "--values",
    "--set",
    "--set-string",
    "--set-file",
    "--set-json",
    "--timeout",
    "--kube-context",
    "--post-renderer",
}
HELM_SWITCHES = {
    "--install",
    "--wait",
    "--atomic",
    "--create-namespace",
    "--reset-values",
    "--take-ownership",
    "--skip-crds",
    "--reuse-values",
    "--rollback-on-failure",
    "--wait-for-jobs",
    "--force",
}


def helm(args: list[str]) -> None:
    if args[:1] == ["version"]:
        print('version.BuildInfo{Version:"v3.17.2 (stand-in)"}')
        return
    if args[:1] != ["upgrade"] or "--install" not in args:
        raise Refused(f"stand-in helm: {' '.join(args[:1])} is not modelled")
    if os.environ.get("STANDIN_IDENTITY", "admin") != "admin":
        raise Refused("Error: failed to create resource: customresourcedefinitions is forbidden")
    state = load()
    if not state.get("context"):
        raise Refused("Error: Kubernetes cluster unreachable")
    words, i = [], 1
    while i < len(args):
        if args[i] in HELM_VALUED or (
            args[i].startswith("-") and "=" not in args[i] and args[i] not in HELM_SWITCHES
        ):
            i += 2 if args[i] in HELM_VALUED else 1
            continue
        if not args[i].startswith("-"):
            words.append(args[i])
        i += 1
    release, chart = words[0], words[1]
    chart_name = re.sub(r"-\d+\.\d+\.\d+$", "", Path(chart.rstrip("/")).name)
    for kind in CHART_CRDS.get(chart_name, []):
        if kind not in state["crds"]:
            state["crds"].append(kind)
    state["releases"][release] = {"chart": chart, "args": args}
    if chart_name == "prometheus":
        install_prometheus(state)
    save(state)
    print(f'Release "{release}" has been upgraded. Happy Helming!')


def main() -> None:
    tool = os.environ.get("STANDIN_TOOL", "kubectl")
    args = sys.argv[1:]
    record(tool, args)
    try:
        (helm if tool == "helm" else kubectl)(args)
    except Refused as refusal:
        print(refusal, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
