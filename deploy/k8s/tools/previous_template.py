"""Print the merge patch that puts a Rollout back on the revision it should go back to.

Reads `kubectl get rollout,replicaset -o json` (a List) on stdin. While a canary runs or after it
was aborted, the Rollout's `status.stableRS` (a pod-template hash) names the revision that still
serves and was last promoted: that one, never merely "the highest below current", which after an
aborted release is that bad release again. Once a release is fully promoted (stableRS is the
current hash), it is the ReplicaSet with the highest `rollout.argoproj.io/revision` below the
Rollout's own. Its template (without the hash label Argo adds) becomes the Rollout's; within
`spec.rollbackWindow` Argo Rollouts then fast-tracks the change: no canary steps, no analysis.
"""

import json
import sys
from typing import Any

REVISION = "rollout.argoproj.io/revision"
HASH = "rollouts-pod-template-hash"


def revision(obj: dict[str, Any]) -> int:
    return int(obj["metadata"].get("annotations", {}).get(REVISION, "0"))


def target(rollout: dict[str, Any], owned: list[dict[str, Any]]) -> dict[str, Any] | None:
    status = rollout.get("status", {})
    stable = status.get("stableRS")
    if stable and stable != status.get("currentPodHash"):
        return next(
            (rs for rs in owned if rs["metadata"].get("labels", {}).get(HASH) == stable), None
        )
    earlier = [rs for rs in owned if revision(rs) < revision(rollout)]
    return max(earlier, key=revision) if earlier else None


def main() -> int:
    items = json.load(sys.stdin)["items"]
    rollout = next(i for i in items if i["kind"] == "Rollout")
    owned = [
        rs
        for rs in items
        if rs["kind"] == "ReplicaSet"
        and any(
            o.get("uid") == rollout["metadata"]["uid"]
            for o in rs["metadata"].get("ownerReferences", [])
        )
    ]
    previous = target(rollout, owned)
    if previous is None:
        print("previous_template: no earlier revision to go back to", file=sys.stderr)
        return 1
    template = previous["spec"]["template"]
    template["metadata"].get("labels", {}).pop(HASH, None)
    image = template["spec"]["containers"][0]["image"]
    print(f"rolling back to revision {revision(previous)}: {image}", file=sys.stderr)
    json.dump({"spec": {"template": template}}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
