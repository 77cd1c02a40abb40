"""deploy/image/verify.py, the one verification make deploy-k8s and make verify-signing run,
against signatures made by the local stand-in for Fulcio and Rekor (deploy/image/local_sigstore.py)
in an in-memory registry. Each refusal is a check `cosign verify` / `cosign verify-attestation`
makes (sigstore/cosign pkg/cosign/verify.go: VerifyImageSignatures, verifyOCISignature,
CheckCertificatePolicy, VerifyBundle) on the layout of cosign's specs/SIGNATURE_SPEC.md and
specs/ATTESTATION_SPEC.md; the drill (make verify-signing) runs the same against docker-registry."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from deploy.image import verify as v
from deploy.image.local_sigstore import LocalSigstore, Signer, artifact_config, artifact_manifest
from deploy.image.provenance import predicate
from deploy.image.signing_drill import github_run

REPOSITORY = "example-org/registro"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
HOST = "000000000000.dkr.ecr.eu-west-1.amazonaws.com"
OURS = v.Expected(REPOSITORY, COMMIT)


@dataclass
class MemoryRegistry:
    """Manifests by digest and by tag, blobs by digest: what the registry API serves."""

    manifests: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def manifest(self, repository: str, reference: str) -> bytes | None:
        return self.manifests.get(f"{repository}:{reference}")

    def blob(self, repository: str, digest: str) -> bytes:
        return self.blobs[digest]

    def image(self, repository: str, content: str) -> v.Reference:
        body = json.dumps({"schemaVersion": 2, "layers": [], "content": content}).encode()
        digest = v.sha256(body)
        self.manifests[f"{repository}:{digest}"] = body
        return v.Reference(HOST, repository, digest)

    def attach(self, ref: v.Reference, suffix: str, layers: list[v.Layer]) -> None:
        pairs = []
        for layer in layers:
            self.blobs[v.sha256(layer.data)] = layer.data
            pairs.append((layer, v.sha256(layer.data)))
        config = artifact_config(layers)
        self.manifests[f"{ref.repository}:{ref.tag_of(suffix)}"] = artifact_manifest(pairs, config)


@dataclass
class World:
    sigstore: LocalSigstore
    trust: v.TrustRoot
    registry: MemoryRegistry
    image: v.Reference

    def sign(
        self,
        signer: Signer | None = None,
        provenance: dict[str, object] | None = None,
        sbom: bool = True,
        at: dt.datetime | None = None,
    ) -> Signer:
        signer = signer or self.sigstore.issue(OURS)
        name = f"{self.image.registry}/{self.image.repository}"
        self.registry.attach(
            self.image, "sig", [self.sigstore.signature_layer(signer, self.image.digest, name, at)]
        )
        attestations = [
            self.sigstore.attestation_layer(
                signer, self.image.digest, name, v.SLSA_PROVENANCE_V1,
                provenance or predicate(github_run(REPOSITORY, COMMIT)),
            )
        ]  # fmt: skip
        if sbom:
            attestations.append(
                self.sigstore.attestation_layer(
                    signer, self.image.digest, name, v.CYCLONEDX, {"bomFormat": "CycloneDX"}
                )
            )
        self.registry.attach(self.image, "att", attestations)
        return signer

    def verify(self, expected: v.Expected = OURS, image: str | None = None) -> v.Verified:
        return v.verify(image or str(self.image), expected, self.trust, self.registry)


@pytest.fixture
def world(tmp_path: Path) -> World:
    sigstore = LocalSigstore()
    trust = v.TrustRoot.load(sigstore.write_trusted_root(tmp_path / "trusted_root.json"))
    registry = MemoryRegistry()
    return World(sigstore, trust, registry, registry.image("registro-qa", "the build"))


def refused(world: World, expected: v.Expected = OURS, image: str | None = None) -> str:
    with pytest.raises(v.Refused) as caught:
        world.verify(expected, image)
    return str(caught.value)


def test_an_image_our_workflow_signed_and_attested_is_verified(world: World) -> None:
    """cosign verify --certificate-identity <our deploy.yml@refs/heads/main>
    --certificate-oidc-issuer https://token.actions.githubusercontent.com passes, and so does
    verify-attestation for the SLSA provenance v1 and CycloneDX predicate types."""
    world.sign()
    verified = world.verify()
    assert verified.identity == (
        "https://github.com/example-org/registro/.github/workflows/deploy.yml@refs/heads/main"
    )
    assert verified.attestations == [v.CYCLONEDX, v.SLSA_PROVENANCE_V1]


def test_a_tag_is_refused_before_anything_is_fetched(world: World) -> None:
    """A tag is mutable (distribution-spec: a tag is a name for a manifest, which a push moves):
    only REPOSITORY@sha256:... is released, as release.sh's render requires."""
    world.sign()
    assert "names a tag, not a digest" in refused(world, image=f"{HOST}/registro-qa:{COMMIT}")


def test_an_unsigned_image_is_refused(world: World) -> None:
    """cosign looks for the signatures under the tag sha256-<hex>.sig (SIGNATURE_SPEC.md, "Tag
    Based Discovery"); none there: no signatures found."""
    assert "is not signed" in refused(world)


def test_a_signature_of_another_digest_does_not_cover_this_one(world: World) -> None:
    """The simple-signing payload names the manifest digest it signs (critical.image
    docker-manifest-digest); a signature copied beside other bytes does not verify them."""
    world.sign()
    other = world.registry.image("registro-qa", "tampered")
    world.registry.manifests[f"registro-qa:{other.tag_of('sig')}"] = world.registry.manifests[
        f"registro-qa:{world.image.tag_of('sig')}"
    ]
    assert "the signature is for" in refused(world, image=str(other))


@pytest.mark.parametrize(
    ("expected", "reason"),
    [
        (v.Expected("someone-else/registro", COMMIT), "signed by https://github.com/example-org"),
        (v.Expected(REPOSITORY, COMMIT, workflow=".github/workflows/ci.yml"), "signed by"),
        (v.Expected(REPOSITORY, COMMIT, ref="refs/heads/feature"), "signed by"),
        (v.Expected(REPOSITORY, "fedcba9876543210"), "signed for commit 0123456789abcdef"),
        (v.Expected(REPOSITORY, COMMIT, issuer="https://accounts.google.com"), "issued by"),
    ],
)
def test_the_identity_must_be_our_release_workflow_at_this_commit(
    world: World, expected: v.Expected, reason: str
) -> None:
    """--certificate-identity is the SAN, --certificate-oidc-issuer the issuer extension
    (1.3.6.1.4.1.57264.1.8); the commit is the Source Repository Digest (…1.13) Fulcio copies
    from the token's sha claim (sigstore/fulcio docs/oid-info.md)."""
    world.sign()
    assert reason in refused(world, expected)


def test_a_signer_holding_a_short_commit_prefix_is_matched_by_prefix_only(world: World) -> None:
    world.sign()
    assert world.verify(v.Expected(REPOSITORY, COMMIT[:7])).commit == COMMIT[:7]
    assert "signed for commit" in refused(world, v.Expected(REPOSITORY, COMMIT[:6]))


def test_a_certificate_from_an_authority_we_do_not_trust_is_refused(world: World) -> None:
    """The leaf must chain to a certificate authority of the trusted root (cosign: the Fulcio
    roots and intermediates from TUF); a self-made CA with our identity in its SAN is not one."""
    impostor = LocalSigstore("impostor", log_key=world.sigstore.log_key)
    world.sign(impostor.issue(OURS))
    assert "not issued by a certificate authority we trust" in refused(world)


def test_an_entry_of_a_log_we_do_not_trust_is_refused(world: World) -> None:
    """The bundle's SignedEntryTimestamp must verify with a transparency log key of the trusted
    root (cosign pkg/cosign/tlog.go VerifySET)."""
    other_log = LocalSigstore("other log", ca_key=world.sigstore.ca_key)
    other_log.ca = world.sigstore.ca
    world.sigstore, original = other_log, world.sigstore
    world.sign(original.issue(OURS))
    assert "a transparency log we do not trust" in refused(world)


def test_a_signature_without_a_log_entry_is_refused(world: World) -> None:
    """Keyless signatures are only trusted at the log's time: with no bundle there is no time at
    which the ten-minute certificate was valid (cosign refuses without a tlog entry unless told
    --insecure-ignore-tlog)."""
    world.sign()
    key = f"registro-qa:{world.image.tag_of('sig')}"
    manifest = json.loads(world.registry.manifests[key])
    del manifest["layers"][0]["annotations"][v.BUNDLE_ANNOTATION]
    world.registry.manifests[key] = json.dumps(manifest).encode()
    assert "never recorded in a transparency log" in refused(world)


def test_a_certificate_expired_when_the_log_recorded_the_signature_is_refused(
    world: World,
) -> None:
    """cosign checks the certificate's validity at the entry's integratedTime, not now."""
    late = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)
    world.sign(at=late)
    assert "not valid when the log recorded the signature" in refused(world)


def test_a_forged_entry_timestamp_is_refused(world: World) -> None:
    """The SET is a signature over the canonical JSON of {body, integratedTime, logID,
    logIndex}: moving the time (to fit a certificate's window) breaks it."""
    world.sign()
    key = f"registro-qa:{world.image.tag_of('sig')}"
    manifest = json.loads(world.registry.manifests[key])
    bundle = json.loads(manifest["layers"][0]["annotations"][v.BUNDLE_ANNOTATION])
    bundle["Payload"]["integratedTime"] -= 60
    manifest["layers"][0]["annotations"][v.BUNDLE_ANNOTATION] = json.dumps(bundle)
    world.registry.manifests[key] = json.dumps(manifest).encode()
    assert "signed entry timestamp does not verify" in refused(world)


def test_a_signature_that_does_not_match_its_payload_is_refused(world: World) -> None:
    signer = world.sign()
    key = f"registro-qa:{world.image.tag_of('sig')}"
    manifest = json.loads(world.registry.manifests[key])
    forged = base64.b64encode(signer.sign(b"something else")).decode()
    manifest["layers"][0]["annotations"][v.SIGNATURE_ANNOTATION] = forged
    world.registry.manifests[key] = json.dumps(manifest).encode()
    assert "bad signature" in refused(world)


def test_provenance_must_name_our_workflow_and_this_commit(world: World) -> None:
    """SLSA provenance v1, GitHub's workflow build type (actions/attest-build-provenance's
    predicate): externalParameters.workflow and the git commit of resolvedDependencies."""
    run = github_run(REPOSITORY, "fedcba9876543210fedcba9876543210fedcba98")
    world.sign(provenance=predicate(run))
    assert "provenance says commit" in refused(world)


def test_an_image_without_an_sbom_attestation_is_refused(world: World) -> None:
    world.sign(sbom=False)
    assert "no https://cyclonedx.org/bom attestation" in refused(world)


def test_the_public_good_trusted_root_loads_with_fulcio_and_rekor() -> None:
    """deploy/image/sigstore-trusted-root.json: Sigstore's public-good TrustedRoot as
    sigstore-python 4.5.1 embeds it (sigstore/_store/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/
    trusted_root.json), the root cosign verifies Fulcio certificates and Rekor entries with."""
    trust = v.TrustRoot.load(v.PUBLIC_GOOD_ROOT)
    assert any("sigstore" in str(a.chain[-1].subject).lower() for a in trust.authorities)
    rekor_v1 = bytes.fromhex("c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d")
    assert rekor_v1 in trust.logs


def test_the_release_expects_the_repository_the_deploy_role_trusts() -> None:
    assert v.github_repository("qa") == v.github_repository("prod") == REPOSITORY
    with pytest.raises(v.Refused):
        v.github_repository("staging")


def test_registry_credentials_are_not_sent_on_to_a_redirect() -> None:
    """ECR answers a blob GET with a redirect to a pre-signed S3 URL (ECR docs, "Private registry
    authentication": the layers come from S3), and S3 refuses a request that authenticates twice
    (query signature and Authorization header): the header goes to the registry only."""
    seen: dict[str, str | None] = {}
    blob = b"config"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen[self.path] = self.headers.get("Authorization")
            if self.path.startswith("/v2/"):
                self.send_response(307)
                self.send_header("Location", "/s3/blob?X-Amz-Signature=x")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        registry = v.HttpRegistry(f"http://127.0.0.1:{server.server_address[1]}", "Basic c2VjcmV0")
        assert registry.blob("registro-qa", v.sha256(blob)) == blob
    finally:
        server.shutdown()
    assert seen == {
        f"/v2/registro-qa/blobs/{v.sha256(blob)}": "Basic c2VjcmV0",
        "/s3/blob?X-Amz-Signature=x": None,
    }


def test_an_attestation_with_another_attestations_log_entry_is_refused(world: World) -> None:
    """cosign v2.6 logs an attestation as a "dsse" entry (cmd/cosign/cli/options/options.go
    rekorEntryTypes: "dsse" first), whose body keeps the sha256 of the envelope it was sent and
    of its payload (sigstore/rekor pkg/types/dsse/v0.0.1/entry.go). An entry the log really
    signed, but for the other attestation of the same signer, is not this one's."""
    world.sign()
    key = f"registro-qa:{world.image.tag_of('att')}"
    manifest = json.loads(world.registry.manifests[key])
    first, second = (layer["annotations"] for layer in manifest["layers"])
    first[v.BUNDLE_ANNOTATION], second[v.BUNDLE_ANNOTATION] = (
        second[v.BUNDLE_ANNOTATION],
        first[v.BUNDLE_ANNOTATION],
    )
    world.registry.manifests[key] = json.dumps(manifest).encode()
    assert "the transparency log's entry is not this attestation" in refused(world)
