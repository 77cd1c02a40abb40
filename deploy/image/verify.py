"""Refuse an image that our pipeline did not sign and attest for the commit being released.

    python -m deploy.image.verify IMAGE --commit SHA (--env qa|prod | --repository OWNER/NAME)
        [--trust-root FILE]

IMAGE must be REPOSITORY@sha256:DIGEST: a tag names nothing fixed, so it is refused. What is
checked, as `cosign verify` and `cosign verify-attestation` check it (sigstore/cosign
pkg/cosign/verify.go; the layout is cosign's specs/SIGNATURE_SPEC.md and
specs/ATTESTATION_SPEC.md), against the Sigstore trusted root in TRUST_ROOT (the public-good
instance's by default, deploy/image/sigstore-trusted-root.json; the local drill's own otherwise):

- the signature: the manifest tagged `sha256-<hex>.sig` beside the image holds a simple-signing
  payload whose docker-manifest-digest is DIGEST, signed by the key of a certificate that chains
  to a certificate authority of the trusted root;
- the identity: that certificate was issued to our release workflow (its SAN is
  https://github.com/OWNER/NAME/.github/workflows/deploy.yml@refs/heads/main, its OIDC issuer
  GitHub's) and for this commit (the source repository digest Fulcio copies from the OIDC
  token; Fulcio's docs/oid-info.md lists the extensions);
- the time: a transparency log of the trusted root signed the entry (its signed entry
  timestamp), the entry is this signature, and the certificate was valid at the log's time;
- the attestations: the `sha256-<hex>.att` manifest holds DSSE envelopes signed the same way,
  whose in-toto statements name DIGEST: SLSA provenance v1 saying our workflow built it from
  this commit, and a CycloneDX SBOM.

Registries: an ECR host is read with `aws ecr get-login-password` (Basic auth on the registry
API); 127.0.0.1/localhost over plain HTTP (the local drill); any other host anonymously over
HTTPS. make deploy-k8s (deploy/k8s/release.sh) and make verify-signing call this same code.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

# Re-exported: the callers of the verification name the identity through it.
from deploy.image.identity import GITHUB_ISSUER as GITHUB_ISSUER
from deploy.image.identity import RELEASE_REF as RELEASE_REF
from deploy.image.identity import RELEASE_WORKFLOW as RELEASE_WORKFLOW
from deploy.image.identity import SLSA_PROVENANCE_V1 as SLSA_PROVENANCE_V1
from deploy.image.identity import Expected as Expected

HERE = Path(__file__).resolve().parent
PUBLIC_GOOD_ROOT = HERE / "sigstore-trusted-root.json"
ENVIRONMENTS = HERE.parents[0] / "aws" / "environments"

# Fulcio's certificate extensions (sigstore/fulcio docs/oid-info.md): from 1.8 on, each value is
# a DER UTF8String; Fulcio copies them from the OIDC token's claims, the workflow cannot choose.
OID_ISSUER = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OID_RUNNER_ENVIRONMENT = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.11")
OID_SOURCE_REPOSITORY_URI = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.12")
OID_SOURCE_REPOSITORY_DIGEST = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.13")
OID_SOURCE_REPOSITORY_REF = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.14")

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
COSIGN_SIGNATURE_TYPE = "cosign container image signature"
CYCLONEDX = "https://cyclonedx.org/bom"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
REFERENCE = re.compile(
    r"^(?P<registry>[a-z0-9.-]+(?::[0-9]+)?)/(?P<repository>[a-z0-9._/-]+)"
    r"(?::(?P<tag>[A-Za-z0-9_.-]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
LOCAL_HOSTS = ("127.0.0.1", "localhost")


class Refused(Exception):
    """The image is not one our pipeline signed and attested for this commit."""


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    digest: str

    @classmethod
    def parse(cls, image: str) -> Reference:
        match = REFERENCE.match(image)
        if not match:
            raise Refused(f"not an image reference: {image!r}")
        if not match["digest"]:
            raise Refused(
                f"{image} names a tag, not a digest: a tag can be moved to other bytes after it "
                "was verified; release REPOSITORY@sha256:<digest>"
            )
        return cls(match["registry"], match["repository"], match["digest"])

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"

    def tag_of(self, suffix: str) -> str:
        """cosign's tag for what is attached to the image: sha256-<hex>.sig / .att."""
        return self.digest.replace(":", "-") + "." + suffix


class Registry(Protocol):
    def manifest(self, repository: str, reference: str) -> bytes | None: ...
    def blob(self, repository: str, digest: str) -> bytes: ...


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class HttpRegistry:
    """The registry API (distribution-spec): manifests and blobs by GET, each checked against
    the digest it was asked by."""

    base: str
    authorization: str | None = None

    @classmethod
    def for_host(cls, host: str) -> HttpRegistry:
        name = host.split(":")[0]
        if name in LOCAL_HOSTS:
            return cls(f"http://{host}")
        parts = name.split(".")
        if len(parts) >= 6 and parts[1:3] == ["dkr", "ecr"]:
            password = subprocess.run(
                ["aws", "ecr", "get-login-password", "--region", parts[3]],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if password.returncode != 0:
                raise Refused(f"cannot log in to {host}: {password.stderr.strip()}")
            token = base64.b64encode(f"AWS:{password.stdout.strip()}".encode()).decode()
            return cls(f"https://{host}", f"Basic {token}")
        return cls(f"https://{host}")

    def _get(self, path: str, accept: Iterable[str] = ()) -> bytes | None:
        request = urllib.request.Request(self.base + path)  # noqa: S310 (http(s): for_host)
        if accept:
            request.add_header("Accept", ", ".join(accept))
        if self.authorization:
            # Not sent on a redirect: ECR serves blobs from pre-signed S3 URLs, which refuse a
            # second way of authenticating.
            request.add_unredirected_header("Authorization", self.authorization)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (http(s) only)
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise Refused(f"registry {self.base}{path}: HTTP {error.code}") from None

    def manifest(self, repository: str, reference: str) -> bytes | None:
        body = self._get(f"/v2/{repository}/manifests/{reference}", MANIFEST_TYPES)
        if body is not None and reference.startswith("sha256:") and sha256(body) != reference:
            raise Refused(f"the registry served another manifest for {repository}@{reference}")
        return body

    def blob(self, repository: str, digest: str) -> bytes:
        body = self._get(f"/v2/{repository}/blobs/{digest}")
        if body is None or sha256(body) != digest:
            raise Refused(f"blob {digest} of {repository} is missing or does not match its digest")
        return body


# --- the trusted root (Sigstore's TrustedRoot JSON, protobuf-specs) ------------------------------


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True)
class Authority:
    chain: list[x509.Certificate]  # issuing certificate first, root last
    start: dt.datetime
    end: dt.datetime | None


@dataclass(frozen=True)
class TrustRoot:
    authorities: list[Authority]
    logs: dict[bytes, Any] = field(default_factory=dict)  # log id -> public key

    @classmethod
    def load(cls, path: Path) -> TrustRoot:
        document = json.loads(path.read_text())
        authorities = []
        for ca in document.get("certificateAuthorities", []):
            chain = [
                x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"]))
                for c in ca["certChain"]["certificates"]
            ]
            start = _time(ca["validFor"]["start"])
            assert start is not None
            authorities.append(Authority(chain, start, _time(ca["validFor"].get("end"))))
        logs = {
            base64.b64decode(log["logId"]["keyId"]): serialization.load_der_public_key(
                base64.b64decode(log["publicKey"]["rawBytes"])
            )
            for log in document.get("tlogs", [])
        }
        return cls(authorities, logs)


def verify_signature(key: Any, signature: bytes, data: bytes) -> None:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            raise Refused(f"unsupported key type {type(key).__name__}")
    except InvalidSignature:
        raise Refused("bad signature") from None


def verify_chain(leaf: x509.Certificate, trust: TrustRoot, at: dt.datetime) -> None:
    """The leaf was issued by an authority of the trusted root, valid at `at`."""
    for authority in trust.authorities:
        if not (authority.start <= at and (authority.end is None or at <= authority.end)):
            continue
        try:
            leaf.verify_directly_issued_by(authority.chain[0])
            for child, parent in zip(authority.chain, authority.chain[1:], strict=False):
                child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            continue
        root = authority.chain[-1]
        if root.subject != root.issuer:
            continue
        break
    else:
        raise Refused("the certificate was not issued by a certificate authority we trust")
    if not (leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc):
        raise Refused(
            f"the certificate was not valid when the log recorded the signature ({at:%H:%M:%S}"
            f" UTC; valid {leaf.not_valid_before_utc:%H:%M:%S}-{leaf.not_valid_after_utc:%H:%M:%S})"
        )
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    if ExtendedKeyUsageOID.CODE_SIGNING not in usages:
        raise Refused("the certificate is not for code signing")


def _utf8_extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    try:
        value = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    raw: bytes = value.value  # type: ignore[attr-defined]
    # A DER UTF8String: tag 0x0c, then a short or long-form length.
    if len(raw) < 2 or raw[0] != 0x0C:
        return None
    length, start = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
    return raw[start : start + length].decode()


def check_identity(cert: x509.Certificate, expected: Expected) -> None:
    """As cosign's --certificate-identity and --certificate-oidc-issuer, plus the commit."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if uris != [expected.identity]:
        raise Refused(f"signed by {', '.join(uris) or 'no identity'}, not {expected.identity}")
    issuer = _utf8_extension(cert, OID_ISSUER)
    if issuer != expected.issuer:
        raise Refused(f"identity issued by {issuer}, not {expected.issuer}")
    source = _utf8_extension(cert, OID_SOURCE_REPOSITORY_URI)
    if source != expected.repository_uri:
        raise Refused(f"built from {source}, not {expected.repository_uri}")
    commit = _utf8_extension(cert, OID_SOURCE_REPOSITORY_DIGEST) or ""
    if not (len(expected.commit) >= 7 and commit.startswith(expected.commit)):
        raise Refused(f"signed for commit {commit or 'none'}, not {expected.commit}")


# --- the transparency log's promise --------------------------------------------------------------


def verify_log_entry(bundle: str, trust: TrustRoot) -> tuple[dt.datetime, dict[str, Any]]:
    """cosign's bundle annotation: Rekor's signed entry timestamp over the canonical JSON of
    {body, integratedTime, logID, logIndex} (cosign pkg/cosign/tlog.go VerifySET). Returns the
    log's time and the entry's body."""
    try:
        document = json.loads(bundle)
        payload = document["Payload"]
        key = trust.logs.get(bytes.fromhex(payload["logID"]))
        timestamp = base64.b64decode(document["SignedEntryTimestamp"])
    except (ValueError, KeyError, TypeError):
        raise Refused("no readable transparency log entry") from None
    if key is None:
        raise Refused("recorded by a transparency log we do not trust")
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    try:
        verify_signature(key, timestamp, canonical)
    except Refused:
        raise Refused("the transparency log's signed entry timestamp does not verify") from None
    body: dict[str, Any] = json.loads(base64.b64decode(payload["body"]))
    return dt.datetime.fromtimestamp(payload["integratedTime"], dt.UTC), body


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _same_certificate(encoded: str, cert: x509.Certificate) -> bool:
    try:
        return x509.load_pem_x509_certificate(base64.b64decode(encoded)) == cert
    except ValueError:
        return False


# --- what is attached to the image ---------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    media_type: str
    data: bytes
    annotations: dict[str, str]


def attached(registry: Registry, ref: Reference, suffix: str) -> list[Layer]:
    body = registry.manifest(ref.repository, ref.tag_of(suffix))
    if body is None:
        return []
    manifest = json.loads(body)
    return [
        Layer(
            layer.get("mediaType", ""),
            registry.blob(ref.repository, layer["digest"]),
            layer.get("annotations", {}),
        )
        for layer in manifest.get("layers", [])
    ]


def signed_certificate(
    layer: Layer, trust: TrustRoot, expected: Expected
) -> tuple[x509.Certificate, dict[str, Any]]:
    """The layer's certificate, checked: chain, identity, log entry. Returns it and the entry."""
    try:
        cert = x509.load_pem_x509_certificate(layer.annotations[CERTIFICATE_ANNOTATION].encode())
    except (KeyError, ValueError):
        raise Refused("signed without a certificate (a key, not our workflow's identity)") from None
    if BUNDLE_ANNOTATION not in layer.annotations:
        raise Refused("the signature was never recorded in a transparency log")
    at, body = verify_log_entry(layer.annotations[BUNDLE_ANNOTATION], trust)
    verify_chain(cert, trust, at)
    check_identity(cert, expected)
    return cert, body


def verify_image_signature(
    layer: Layer, ref: Reference, trust: TrustRoot, expected: Expected
) -> None:
    if layer.media_type != SIMPLE_SIGNING:
        raise Refused(f"not a simple-signing layer: {layer.media_type}")
    cert, body = signed_certificate(layer, trust, expected)
    signature = base64.b64decode(layer.annotations.get(SIGNATURE_ANNOTATION, ""))
    verify_signature(cert.public_key(), signature, layer.data)
    spec = body.get("spec", {})
    if (
        body.get("kind") != "hashedrekord"
        or spec.get("data", {}).get("hash", {}).get("value")
        != hashlib.sha256(layer.data).hexdigest()
        or base64.b64decode(spec.get("signature", {}).get("content", "")) != signature
        or not _same_certificate(
            spec.get("signature", {}).get("publicKey", {}).get("content", ""), cert
        )
    ):
        raise Refused("the transparency log's entry is not this signature")
    critical = json.loads(layer.data).get("critical", {})
    if critical.get("type") != COSIGN_SIGNATURE_TYPE:
        raise Refused(f"not a cosign image signature: {critical.get('type')!r}")
    if critical.get("image", {}).get("docker-manifest-digest") != ref.digest:
        raise Refused(f"the signature is for {critical.get('image')}, not {ref.digest}")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding (secure-systems-lab/dsse protocol.md)."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def verify_attestation(
    layer: Layer, ref: Reference, trust: TrustRoot, expected: Expected
) -> dict[str, Any]:
    """A DSSE envelope signed by our identity, logged, whose statement names the image. Returns
    the in-toto statement."""
    if layer.media_type != DSSE_ENVELOPE:
        raise Refused(f"not a DSSE layer: {layer.media_type}")
    cert, body = signed_certificate(layer, trust, expected)
    envelope = json.loads(layer.data)
    if envelope.get("payloadType") != IN_TOTO:
        raise Refused(f"not an in-toto statement: {envelope.get('payloadType')!r}")
    payload = base64.b64decode(envelope["payload"])
    signatures = [base64.b64decode(s["sig"]) for s in envelope.get("signatures", [])]
    if not signatures:
        raise Refused("an unsigned envelope")
    for signature in signatures:
        verify_signature(cert.public_key(), signature, pae(IN_TOTO, payload))
    # cosign v2.6 logs an attestation as a "dsse" entry unless told otherwise (cmd/cosign/cli/
    # options/options.go rekorEntryTypes, attest.go); Rekor keeps the hashes of the envelope it
    # was sent and of its payload, and each signature's verifier (pkg/types/dsse/v0.0.1/entry.go).
    spec = body.get("spec", {})
    verifiers = [s.get("verifier", "") for s in spec.get("signatures", [])]
    if (
        body.get("kind") != "dsse"
        or spec.get("envelopeHash", {}).get("value") != hashlib.sha256(layer.data).hexdigest()
        or spec.get("payloadHash", {}).get("value") != hashlib.sha256(payload).hexdigest()
        or not any(_same_certificate(k, cert) for k in verifiers)
    ):
        raise Refused("the transparency log's entry is not this attestation")
    statement: dict[str, Any] = json.loads(payload)
    subjects = [s.get("digest", {}).get("sha256") for s in statement.get("subject", [])]
    if ref.digest.removeprefix("sha256:") not in subjects:
        raise Refused(f"the attestation is about {subjects}, not {ref.digest}")
    return statement


def check_provenance(statement: dict[str, Any], expected: Expected) -> None:
    """SLSA provenance v1 with GitHub's workflow build type (the predicate
    actions/attest-build-provenance writes): our workflow, our ref, this commit."""
    predicate = statement.get("predicate", {})
    workflow = (
        predicate.get("buildDefinition", {}).get("externalParameters", {}).get("workflow", {})
    )
    wanted = {"repository": expected.repository_uri, "path": expected.workflow, "ref": expected.ref}
    if {k: workflow.get(k) for k in wanted} != wanted:
        raise Refused(f"provenance names workflow {workflow}, not {wanted}")
    commits = [
        d.get("digest", {}).get("gitCommit", "")
        for d in predicate.get("buildDefinition", {}).get("resolvedDependencies", [])
        if d.get("uri", "").startswith(f"git+{expected.repository_uri}@")
    ]
    if not any(len(expected.commit) >= 7 and c.startswith(expected.commit) for c in commits):
        raise Refused(f"provenance says commit {commits or 'none'}, not {expected.commit}")


@dataclass(frozen=True)
class Verified:
    image: str
    identity: str
    commit: str
    attestations: list[str]
    seconds: float


def verify(
    image: str, expected: Expected, trust: TrustRoot, registry: Registry | None = None
) -> Verified:
    """Raises Refused, naming the first reason, unless IMAGE is signed and attested by us."""
    started = time.perf_counter()
    ref = Reference.parse(image)
    registry = registry or HttpRegistry.for_host(ref.registry)
    if registry.manifest(ref.repository, ref.digest) is None:
        raise Refused(f"no image {ref} in the registry")
    signatures = attached(registry, ref, "sig")
    if not signatures:
        raise Refused(f"{ref} is not signed (no {ref.tag_of('sig')})")
    reasons = []
    for layer in signatures:
        try:
            verify_image_signature(layer, ref, trust, expected)
            break
        except Refused as reason:
            reasons.append(str(reason))
    else:
        raise Refused(f"no valid signature of ours on {ref}: {'; '.join(reasons)}")
    found: dict[str, dict[str, Any]] = {}
    reasons = []
    for layer in attached(registry, ref, "att"):
        try:
            statement = verify_attestation(layer, ref, trust, expected)
        except Refused as reason:
            reasons.append(str(reason))
            continue
        found.setdefault(statement.get("predicateType", ""), statement)
    for wanted in (SLSA_PROVENANCE_V1, CYCLONEDX):
        if wanted not in found:
            why = f": {'; '.join(reasons)}" if reasons else ""
            raise Refused(f"{ref} has no {wanted} attestation of ours{why}")
    check_provenance(found[SLSA_PROVENANCE_V1], expected)
    return Verified(
        str(ref), expected.identity, expected.commit, sorted(found), time.perf_counter() - started
    )


def github_repository(env: str) -> str:
    """The repository the environment's deploy role trusts (deploy/aws/environments/ENV.json)."""
    path = ENVIRONMENTS / f"{env}.json"
    if not path.is_file():
        raise Refused(f"unknown environment {env!r}")
    return str(json.loads(path.read_text())["GitHubRepository"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", help="REPOSITORY@sha256:DIGEST")
    parser.add_argument("--commit", required=True, help="the commit being released")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--env", help="qa|prod: the GitHubRepository of its parameters")
    who.add_argument("--repository", help="OWNER/NAME on GitHub")
    parser.add_argument("--trust-root", type=Path, default=PUBLIC_GOOD_ROOT)
    args = parser.parse_args(argv)
    try:
        repository = args.repository or github_repository(args.env)
        expected = Expected(repository, args.commit)
        verified = verify(args.image, expected, TrustRoot.load(args.trust_root))
    except Refused as reason:
        print(f"verify: refused {args.image}: {reason}", file=sys.stderr)
        return 1
    print(
        f"verify: {verified.image} signed by {verified.identity} for {verified.commit}; "
        f"attested: {', '.join(verified.attestations)} ({verified.seconds:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
