"""Admission of registro's images (deploy/k8s/platform/policies/image-policy.yaml and
values/policy-controller.yaml), rendered as make bootstrap-k8s renders them, against the
behaviour of Sigstore's policy-controller v0.13.1 (chart 0.10.6): its glob matching
(pkg/apis/glob/glob.go), its no-match-policy (pkg/config/store.go), its namespace opt-in
(chart values webhook.namespaceSelector; docs.sigstore.dev/policy-controller/overview) and its
authorities (pkg/webhook/validator.go: an authority with attestations checks only those).
The ClusterImagePolicies' schema: test_crd_schemas.py, against the chart's CRD."""

from __future__ import annotations

import re
from typing import Any

import pytest
from deploy.image import identity as verify
from k8s_support import K8S, PLATFORM, Manifests, Platform, github_repository, overlay_outputs

DIGEST = "sha256:" + "ab" * 32


def glob_regex(glob: str) -> re.Pattern[str]:
    """policy-controller's glob.Compile: `.` literal, `**` any characters, `*` any but `/`."""
    pattern = glob.replace(".", r"\.").replace("**", "#").replace("*", "[^/]*").replace("#", ".*")
    return re.compile(f"^{pattern}$")


def policies(platform: Platform) -> list[dict[str, Any]]:
    return [d for d in platform.policies if d["kind"] == "ClusterImagePolicy"]


def test_both_policies_match_exactly_our_repository_by_digest(platform: Platform) -> None:
    """policy-controller matches the glob against the reference's Name() (repository@digest
    once its defaulting webhook resolved a tag); every matching policy must pass (AND)."""
    repository = overlay_outputs(platform.overlay)["RepositoryUri"]
    found = policies(platform)
    assert len(found) == 2
    for policy in found:
        (image,) = policy["spec"]["images"]
        glob = glob_regex(image["glob"])
        assert glob.match(f"{repository}@{DIGEST}"), policy["metadata"]["name"]
        for other in (
            f"{repository}:latest",
            f"{repository}-other@{DIGEST}",
            f"{repository}/nested@{DIGEST}",
            f"public.ecr.aws/other/registro@{DIGEST}",
        ):
            assert not glob.match(other), (policy["metadata"]["name"], other)


def test_the_signer_is_the_identity_the_deploy_verifies(platform: Platform) -> None:
    """keyless.identities: issuer and subject as cosign's --certificate-oidc-issuer and
    --certificate-identity, the same identity deploy/image/verify.py requires before a release."""
    expected = verify.Expected(github_repository(platform.overlay), "0" * 40)
    for policy in policies(platform):
        (authority,) = policy["spec"]["authorities"]
        assert authority["keyless"]["url"] == "https://fulcio.sigstore.dev"
        assert authority["keyless"]["identities"] == [
            {"issuer": verify.GITHUB_ISSUER, "subject": expected.identity}
        ]
        assert authority["ctlog"]["url"] == "https://rekor.sigstore.dev"


def test_one_policy_checks_the_signature_the_other_the_provenance(platform: Platform) -> None:
    """An authority with attestations verifies only the .att path (validator.go,
    ValidatePolicyAttestationsForAuthority): the signature needs a policy without them."""
    by_name = {p["metadata"]["name"]: p["spec"]["authorities"][0] for p in policies(platform)}
    signature = by_name["registro-signed-by-its-release-workflow"]
    provenance = by_name["registro-built-by-its-release-workflow"]
    assert "attestations" not in signature
    (attestation,) = provenance["attestations"]
    assert attestation["predicateType"] == verify.SLSA_PROVENANCE_V1
    cue = attestation["policy"]["data"]
    repository = github_repository(platform.overlay)
    for fact in (
        f'repository: "https://github.com/{repository}"',
        f'path: "{verify.RELEASE_WORKFLOW}"',
        f'ref: "{verify.RELEASE_REF}"',
    ):
        assert fact in cue


def rendered_webhooks(platform: Platform) -> list[dict[str, Any]]:
    return [
        webhook
        for doc in platform.charts["policy-controller"]
        if doc["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
        for webhook in doc["webhooks"]
        if "namespaceSelector" in webhook
    ]


def test_the_webhooks_see_only_namespaces_that_opt_in_and_never_system_ones(
    platform: Platform,
) -> None:
    """The chart puts webhook.namespaceSelector on its defaulting and validating webhooks; the
    system and platform namespaces are excluded by name as well as by not opting in."""
    webhooks = rendered_webhooks(platform)
    assert len(webhooks) == 2
    system = {"kube-system", "kube-public", "kube-node-lease"}
    charts = {d["metadata"].get("namespace") for docs in platform.charts.values() for d in docs}
    for webhook in webhooks:
        assert webhook["failurePolicy"] == "Fail"
        expressions = webhook["namespaceSelector"]["matchExpressions"]
        assert {"key": "policy.sigstore.dev/include", "operator": "In", "values": ["true"]} in (
            expressions
        )
        (excluded,) = [e for e in expressions if e["key"] == "kubernetes.io/metadata.name"]
        assert excluded["operator"] == "NotIn"
        assert system | (charts - {None}) <= set(excluded["values"])
        assert "registro" not in excluded["values"]


def test_only_the_registro_namespace_opts_in(platform: Platform, manifests: Manifests) -> None:
    labelled = {
        d["metadata"]["name"]
        for d in [*platform.docs, *manifests.docs]
        if d["kind"] == "Namespace"
        and d["metadata"].get("labels", {}).get("policy.sigstore.dev/include") == "true"
    }
    assert labelled == {"registro"}


def test_an_image_no_policy_matches_is_refused(platform: Platform) -> None:
    """no-match-policy in the config-policy-controller ConfigMap: deny refuses an image of any
    other repository in the namespaces the webhooks see (warn or allow would admit it)."""
    (config,) = [
        d
        for d in platform.charts["policy-controller"]
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "config-policy-controller"
    ]
    assert config["data"]["no-match-policy"] == "deny"


def test_a_workload_not_pinned_by_digest_is_refused_by_the_api_server(platform: Platform) -> None:
    """A ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) on Rollouts and Jobs, bound
    to the registro namespace with validationActions Deny."""
    repository = overlay_outputs(platform.overlay)["RepositoryUri"]
    (policy,) = [d for d in platform.policies if d["kind"] == "ValidatingAdmissionPolicy"]
    (binding,) = [d for d in platform.policies if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    resources = {
        (r["apiGroups"][0], r["resources"][0])
        for r in policy["spec"]["matchConstraints"]["resourceRules"]
    }
    assert resources == {("argoproj.io", "rollouts"), ("batch", "jobs")}
    (validation,) = policy["spec"]["validations"]
    assert f"c.image.startsWith('{repository}@')" in validation["expression"]
    assert "c.image.matches('@sha256:[0-9a-f]{64}$')" in validation["expression"]
    assert "initContainers" in validation["expression"]
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "registro"}
    }


def test_the_policies_take_only_outputs_and_the_github_repository() -> None:
    used = {
        m
        for path in (PLATFORM / "policies").glob("*.yaml")
        for m in re.findall(r"\$\{([A-Za-z0-9]+)\}", path.read_text())
    }
    assert used == {"RepositoryUri", "GitHubRepository"}
    for overlay in ("qa", "prod"):
        assert "RepositoryUri" in overlay_outputs(overlay)


@pytest.mark.parametrize("overlay", ["qa", "prod"])
def test_the_release_renders_the_image_the_admission_policies_admit(overlay: str) -> None:
    """release.sh pins the image as RepositoryUri@sha256:... (render refuses anything else):
    the shape the glob and the ValidatingAdmissionPolicy expect."""
    repository = overlay_outputs(overlay)["RepositoryUri"]
    text = (PLATFORM / "policies" / "image-policy.yaml").read_text()
    glob = re.search(r'glob: "([^"]+)"', text)
    assert glob is not None
    assert glob_regex(glob[1].replace("${RepositoryUri}", repository)).match(
        f"{repository}@{DIGEST}"
    )
    assert (
        "[[ $image =~ ^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$ ]]"
        in (K8S / "release.sh").read_text()
    )
