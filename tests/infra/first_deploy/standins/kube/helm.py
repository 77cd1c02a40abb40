"""`helm upgrade --install` of the platform's charts: each chart's CRDs installed, the release
recorded; the prometheus chart's volumes claimed (volumes.py). Only the cluster creator may
install CRDs."""

from __future__ import annotations

import os
import re
from pathlib import Path

from cluster import Refused, load, save
from volumes import install_prometheus

# The CRDs each vendored chart installs (../shared/upstream/charts/*/crds, templates).
CHART_CRDS = {
    "argo-rollouts": ["Rollout", "AnalysisTemplate", "AnalysisRun", "ClusterAnalysisTemplate",
                      "Experiment"],
    "external-secrets": ["ExternalSecret", "SecretStore", "ClusterSecretStore"],
    "aws-load-balancer-controller": ["TargetGroupBinding", "IngressClassParams"],
    "policy-controller": ["ClusterImagePolicy", "TrustRoot"],
}  # fmt: skip


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
