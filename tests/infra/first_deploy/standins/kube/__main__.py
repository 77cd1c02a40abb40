"""`kubectl` and `helm` for the rehearsal: an API server, its RBAC, Argo Rollouts and the load
balancer controller reduced to the behaviours a first deployment depends on, one module for each
thing stood in for (each names its sources):

  cluster.py           the API server's objects and kinds; the state, scenario and call log
  rbac.py              its authorization (the deployer's Role)
  kubectl.py           the kubectl verbs the scripts use (Jobs run to their end at once)
  argo.py              Argo Rollouts' controller and the canary's analysis
  load_balancer.py     the AWS Load Balancer Controller (an Ingress's ALB, its web ACL)
  external_secrets.py  External Secrets' refresh
  volumes.py           the EBS CSI driver and the PV controller (the prometheus chart's volumes)
  helm.py              helm upgrade --install of the platform's charts

Run as a directory (`runpy.run_path` of this folder, by the rehearsal's kubectl and helm in
conftest.py's stand_in_bin): STANDIN_TOOL says which tool. State lives in the JSON file
STANDIN_KUBE; every call is recorded in STANDIN_LOG.
"""

from __future__ import annotations

import os
import sys

from cluster import Refused, record
from helm import helm
from kubectl import kubectl


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
