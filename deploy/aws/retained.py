"""What deleting a stack keeps: `python -m deploy.aws.retained LAYER` prints
"LogicalId DeletionPolicy" for each resource of templates/LAYER.yaml whose DeletionPolicy is
Retain, RetainExceptOnCreate or Snapshot (teardown.sh lists them once the stacks are gone)."""

from __future__ import annotations

import sys

from deploy.aws import stacks

KEPT = ("Retain", "RetainExceptOnCreate", "Snapshot")


def retained(layer: str) -> dict[str, str]:
    resources = stacks.plain_template(layer).get("Resources", {})
    return {
        name: resource["DeletionPolicy"]
        for name, resource in resources.items()
        if resource.get("DeletionPolicy") in KEPT
    }


if __name__ == "__main__":
    for logical, policy in retained(sys.argv[1]).items():
        print(logical, policy)
