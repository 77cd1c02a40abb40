"""Argo Rollouts' controller, reduced to what a first deployment depends on.

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
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from cluster import NAMESPACE, key, scenario

REVISION = "rollout.argoproj.io/revision"
HASH = "rollouts-pod-template-hash"


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
