"""Every custom resource validates against the CRD of the version the platform installs.

kubernetes-validate skips custom resources, so they are checked here with jsonschema against the
served version's openAPIV3Schema, strictly: an object that declares its properties accepts no
others (the API server would silently prune an unknown field, so a typo would never show). The
CRDs are those the platform's charts render (Argo Rollouts 2.41.0 ships v1.9.0's, the ALB
controller 3.5.0 its own), plus External Secrets 2.9.0's from PLATFORM_UPSTREAM/crds: its source
chart (../shared/upstream) renders none; the published one (`make platform-upstream`) has them
generated in, so there they are rendered twice, identically (test_platform.py).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
import yaml
from k8s_support import UPSTREAM, Manifests, Platform, require_upstream

EXTRA_CRDS = ["external-secrets-2.9.0"]
# The custom resources the release applies; all must be there, whatever else is.
RELEASE_KINDS = {"Rollout", "AnalysisTemplate", "ExternalSecret", "SecretStore"}


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


def implicit_root_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """apiVersion, kind and metadata are allowed at the root whether the CRD's schema names them
    or not (kubernetes.io docs, custom-resource-definitions, "Specifying a structural schema":
    they are implicitly specified); policy-controller's CRD names only spec and status."""
    implicit = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
    }
    if "properties" not in schema:
        return schema
    return {**schema, "properties": implicit | schema["properties"]}


Validators = dict[tuple[str, str], jsonschema.protocols.Validator]


@pytest.fixture(scope="module")
def validators(platform: Platform) -> Validators:
    """(apiVersion, kind) -> validator, for every served version of every installed CRD."""
    crds = [d for d in platform.docs if d["kind"] == "CustomResourceDefinition"]
    for name in EXTRA_CRDS:
        require_upstream(UPSTREAM / "crds" / name)
        for path in sorted((UPSTREAM / "crds" / name).glob("*.yaml")):
            crds.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    out: Validators = {}
    for crd in crds:
        for version in crd["spec"]["versions"]:
            if version["served"]:
                api = f"{crd['spec']['group']}/{version['name']}"
                schema = closed(implicit_root_fields(version["schema"]["openAPIV3Schema"]))
                out[(api, crd["spec"]["names"]["kind"])] = jsonschema.Draft7Validator(schema)
    return out


def errors(validator: jsonschema.protocols.Validator, doc: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def custom(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    core = (
        "v1",
        "apps/",
        "batch/",
        "policy/",
        "networking.k8s.io/",
        "autoscaling/",
        "rbac.",
        "storage.k8s.io/",
        "admissionregistration.",
        "apiextensions.",
        "scheduling.k8s.io/",
    )
    return [d for d in docs if not d["apiVersion"].startswith(core)]


def test_release_custom_resources_match_the_installed_crds(
    manifests: Manifests, validators: Validators
) -> None:
    resources = custom(manifests.docs)
    assert {d["kind"] for d in resources} == RELEASE_KINDS
    for doc in resources:
        key = (doc["apiVersion"], doc["kind"])
        assert key in validators, f"{key}: no installed CRD serves it"
        assert errors(validators[key], doc) == [], (doc["kind"], doc["metadata"]["name"])


def test_platform_custom_resources_match_the_installed_crds(
    platform: Platform, validators: Validators
) -> None:
    for doc in custom(platform.docs):
        key = (doc["apiVersion"], doc["kind"])
        assert key in validators, f"{key}: no installed CRD serves it"
        assert errors(validators[key], doc) == [], (doc["kind"], doc["metadata"]["name"])


def test_the_image_policies_validate_and_a_misspelt_field_is_caught(
    platform: Platform, validators: Validators
) -> None:
    """The ClusterImagePolicies against the v1beta1 schema policy-controller 0.10.6's chart
    installs (templates/crds/clusterimagepolicy.yaml)."""
    key = ("policy.sigstore.dev/v1beta1", "ClusterImagePolicy")
    found = [d for d in platform.policies if d["kind"] == "ClusterImagePolicy"]
    assert len(found) == 2 and key in validators
    for policy in found:
        assert errors(validators[key], policy) == [], policy["metadata"]["name"]
    typo = copy.deepcopy(found[0])
    typo["spec"]["authorities"][0]["keyless"]["identites"] = []
    assert errors(validators[key], typo)


def test_only_the_v1_external_secrets_api_is_served(validators: Validators) -> None:
    """External Secrets 2.x serves v1 only (v1beta1 served: false in its CRDs)."""
    assert ("external-secrets.io/v1", "ExternalSecret") in validators
    assert ("external-secrets.io/v1beta1", "ExternalSecret") not in validators


def test_the_rollout_crd_has_a_status_subresource(platform: Platform) -> None:
    """With a status subresource the API server ignores `status` in a patch of the main resource
    (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
    #status-subresource): that is why release.sh aborts with --subresource=status."""
    crd = next(
        d
        for d in platform.docs
        if d["kind"] == "CustomResourceDefinition"
        and d["metadata"]["name"] == "rollouts.argoproj.io"
    )
    assert all("status" in v.get("subresources", {}) for v in crd["spec"]["versions"])


def test_validation_catches_a_misspelt_field(manifests: Manifests, validators: Validators) -> None:
    rollout = copy.deepcopy(manifests.one("Rollout"))
    rollout["spec"]["strategy"]["canary"]["trafficRouting"]["alb"]["rootSerivce"] = "typo"
    assert errors(validators[("argoproj.io/v1alpha1", "Rollout")], rollout)
    template = copy.deepcopy(manifests.one("AnalysisTemplate"))
    template["spec"]["metrics"][0]["successCondtion"] = "typo"
    assert errors(validators[("argoproj.io/v1alpha1", "AnalysisTemplate")], template)
    external = copy.deepcopy(manifests.one("ExternalSecret", "registro-database"))
    external["spec"]["refreshIntreval"] = "1h"
    assert errors(validators[("external-secrets.io/v1", "ExternalSecret")], external)
