"""Print the merge patch that puts a Rollout back on its previous revision's pod template.

Reads `kubectl get rollout,replicaset -o json` (a List) on stdin. The previous revision is the
ReplicaSet with the highest `rollout.argoproj.io/revision` below the Rollout's own; its template
(without the hash label Argo adds) becomes the Rollout's. Within `spec.rollbackWindow` Argo
Rollouts then fast-tracks the change: no canary steps, no analysis.
"""

import json
import sys

REVISION = "rollout.argoproj.io/revision"
HASH = "rollouts-pod-template-hash"


def main() -> int:
    items = json.load(sys.stdin)["items"]
    rollout = next(i for i in items if i["kind"] == "Rollout")
    current = int(rollout["metadata"]["annotations"][REVISION])
    owned = [
        rs
        for rs in items
        if rs["kind"] == "ReplicaSet"
        and any(
            o.get("uid") == rollout["metadata"]["uid"]
            for o in rs["metadata"].get("ownerReferences", [])
        )
        and int(rs["metadata"]["annotations"].get(REVISION, "0")) < current
    ]
    if not owned:
        print("previous_template: no earlier revision to go back to", file=sys.stderr)
        return 1
    previous = max(owned, key=lambda rs: int(rs["metadata"]["annotations"][REVISION]))
    template = previous["spec"]["template"]
    template["metadata"].get("labels", {}).pop(HASH, None)
    image = template["spec"]["containers"][0]["image"]
    print(
        f"rolling back to revision {previous['metadata']['annotations'][REVISION]}: {image}",
        file=sys.stderr,
    )
    json.dump({"spec": {"template": template}}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
