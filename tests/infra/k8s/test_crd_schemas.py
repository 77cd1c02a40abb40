"""The Rollout and the AnalysisTemplate validate against Argo Rollouts' own CRD schemas.

kubernetes-validate skips custom resources, so they are checked here with jsonschema against
each CRD's openAPIV3Schema, strictly: an object that declares its properties accepts no others
(the API server would silently prune an unknown field, so a typo would never show).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import jsonschema
import pytest
import yaml
from k8s_support import REPO, Manifests, require

# Where `make argo-rollouts-schemas` puts them: the Makefile defines the path and exports it.
SCHEMAS_SET = os.environ.get("ARGO_ROLLOUTS_SCHEMAS")
SCHEMAS = REPO / (SCHEMAS_SET or "")
CRDS = {"Rollout": "rollout-crd.yaml", "AnalysisTemplate": "analysis-template-crd.yaml"}


def closed(schema: Any) -> Any:
    """Forbid properties a schema does not declare, unless it preserves unknown fields."""
    if isinstance(schema, dict):
        schema = {k: closed(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def validators() -> dict[str, jsonschema.protocols.Validator]:
    require(
        bool(SCHEMAS_SET), "ARGO_ROLLOUTS_SCHEMAS is not set: run these through make verify-k8s"
    )
    require(
        all((SCHEMAS / name).is_file() for name in CRDS.values()),
        f"Argo Rollouts CRD schemas not found in {SCHEMAS}: run `make argo-rollouts-schemas` "
        "(it needs GitHub, or a copy in its ARGO_ROLLOUTS_MIRROR)",
    )
    out = {}
    for kind, name in CRDS.items():
        crd = yaml.safe_load((SCHEMAS / name).read_text())
        assert crd["spec"]["names"]["kind"] == kind
        version = crd["spec"]["versions"][0]
        schema = closed(version["schema"]["openAPIV3Schema"])
        out[kind] = jsonschema.Draft7Validator(schema)
    return out


def errors(validator: jsonschema.protocols.Validator, doc: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_custom_resources_match_their_crd(
    manifests: Manifests, validators: dict[str, jsonschema.protocols.Validator], kind: str
) -> None:
    doc = manifests.one(kind)
    assert doc["apiVersion"] == "argoproj.io/v1alpha1"
    assert errors(validators[kind], doc) == []


def test_validation_catches_a_misspelt_field(
    manifests: Manifests, validators: dict[str, jsonschema.protocols.Validator]
) -> None:
    rollout = copy.deepcopy(manifests.one("Rollout"))
    rollout["spec"]["strategy"]["canary"]["trafficRouting"]["alb"]["rootSerivce"] = "typo"
    assert errors(validators["Rollout"], rollout)
    template = copy.deepcopy(manifests.one("AnalysisTemplate"))
    template["spec"]["metrics"][0]["successCondtion"] = "typo"
    assert errors(validators["AnalysisTemplate"], template)
