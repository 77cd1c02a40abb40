"""Print each Rollout of a rendered manifest as a Deployment with its selector and pod template.

Checkov and kubernetes-validate know Deployments but not Argo Rollouts' CRD, so they skip a
Rollout's pod template; fed this copy, they check it as strictly as any Deployment's.
Usage: python -m deploy.k8s.tools.rollout_as_deployment MANIFESTS.yaml > rollout-pods.yaml
"""

import sys

import yaml


def main(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        rollouts = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "Rollout"]
    if not rollouts:
        print(f"{path}: no Rollout found", file=sys.stderr)
        return 1
    deployments = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**r["metadata"], "name": r["metadata"]["name"] + "-rollout-pods"},
            "spec": {"selector": r["spec"]["selector"], "template": r["spec"]["template"]},
        }
        for r in rollouts
    ]
    yaml.safe_dump_all(deployments, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
