"""A local stand-in for Sigstore's Fulcio and Rekor, and a signer writing what `cosign sign` and
`cosign attest` attach to an image: for the signing drill (make verify-signing) and the tests.

- LocalSigstore is a certificate authority that issues a short-lived code-signing certificate to
  an identity (the SAN and Fulcio's extensions, sigstore/fulcio docs/oid-info.md) and a log that
  signs entry timestamps (Rekor's SET). Its trusted_root.json has the layout of Sigstore's
  (protobuf-specs TrustedRoot), so deploy/image/verify.py reads it as it reads the real one.
- What it cannot be: Fulcio checks an OIDC token before it issues; this issues to whatever
  identity it is told. Rekor appends to a public Merkle tree that monitors watch and returns an
  inclusion proof; this only signs a timestamp. docs/decisions/image-signing.md says more.
- The layout written (cosign specs/SIGNATURE_SPEC.md, specs/ATTESTATION_SPEC.md): the manifest
  tagged sha256-<hex>.sig holds a simple-signing payload layer with the signature, certificate
  and log bundle as annotations; sha256-<hex>.att holds one DSSE envelope layer per attestation.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from deploy.image import verify as v

CERTIFICATE_MINUTES = 10  # Fulcio's certificates are valid for ten minutes


def utf8_der(value: str) -> bytes:
    data = value.encode()
    if len(data) < 0x80:
        return bytes([0x0C, len(data)]) + data
    length = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(length)]) + length + data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Signer:
    """An ephemeral key and the certificate issued for it (what cosign holds while it signs)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class LocalSigstore:
    name: str = "registro local drill"
    ca_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    log_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    log_index: int = 0

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name} CA")])
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self.ca_key, hashes.SHA256())
        )

    @property
    def log_id(self) -> bytes:
        der = self.log_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).digest()

    def trusted_root(self) -> dict[str, Any]:
        """Sigstore's TrustedRoot layout (as deploy/image/sigstore-trusted-root.json)."""
        start = self.ca.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        log_der = self.log_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [
                {
                    "baseUrl": "local",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": _b64(log_der),
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        "validFor": {"start": start},
                    },
                    "logId": {"keyId": _b64(self.log_id)},
                }
            ],
            "certificateAuthorities": [
                {
                    "subject": {"commonName": f"{self.name} CA"},
                    "uri": "local",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(self.ca.public_bytes(serialization.Encoding.DER))}
                        ]
                    },
                    "validFor": {"start": start},
                }
            ],
        }

    def write_trusted_root(self, path: Path) -> Path:
        path.write_text(json.dumps(self.trusted_root(), indent=2))
        return path

    def issue(
        self,
        identity: v.Expected,
        runner: str = "github-hosted",
        not_before: dt.datetime | None = None,
    ) -> Signer:
        """What Fulcio issues for a GitHub Actions OIDC token of this workflow run."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        extensions = {
            v.OID_ISSUER: identity.issuer,
            v.OID_RUNNER_ENVIRONMENT: runner,
            v.OID_SOURCE_REPOSITORY_URI: identity.repository_uri,
            v.OID_SOURCE_REPOSITORY_DIGEST: identity.commit,
            v.OID_SOURCE_REPOSITORY_REF: identity.ref,
        }
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(minutes=CERTIFICATE_MINUTES))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.identity)]),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
        )
        for oid, value in extensions.items():
            builder = builder.add_extension(
                x509.UnrecognizedExtension(oid, utf8_der(value)), critical=False
            )
        return Signer(key, builder.sign(self.ca_key, hashes.SHA256()))

    def log(self, body: dict[str, Any], at: dt.datetime | None = None) -> str:
        """Rekor's answer as cosign stores it: the bundle annotation with its signed timestamp."""
        payload = {
            "body": _b64(json.dumps(body).encode()),
            "integratedTime": int((at or dt.datetime.now(dt.UTC)).timestamp()),
            "logIndex": self.log_index,
            "logID": self.log_id.hex(),
        }
        self.log_index += 1
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        timestamp = self.log_key.sign(canonical, ec.ECDSA(hashes.SHA256()))
        return json.dumps({"SignedEntryTimestamp": _b64(timestamp), "Payload": payload})

    def signature_layer(
        self, signer: Signer, digest: str, docker_reference: str, at: dt.datetime | None = None
    ) -> v.Layer:
        """`cosign sign`: the simple-signing payload of DIGEST, signed, logged as hashedrekord."""
        payload = json.dumps(
            {
                "critical": {
                    "identity": {"docker-reference": docker_reference},
                    "image": {"docker-manifest-digest": digest},
                    "type": v.COSIGN_SIGNATURE_TYPE,
                },
                "optional": None,
            }
        ).encode()
        signature = signer.sign(payload)
        body = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}
                },
                "signature": {
                    "content": _b64(signature),
                    "publicKey": {"content": _b64(signer.pem.encode())},
                },
            },
        }
        return v.Layer(
            v.SIMPLE_SIGNING,
            payload,
            {
                v.SIGNATURE_ANNOTATION: _b64(signature),
                v.CERTIFICATE_ANNOTATION: signer.pem,
                v.BUNDLE_ANNOTATION: self.log(body, at),
            },
        )

    def attestation_layer(
        self, signer: Signer, digest: str, name: str, predicate_type: str, predicate: dict[str, Any]
    ) -> v.Layer:
        """`cosign attest`: an in-toto statement about DIGEST in a DSSE envelope, logged as a
        dsse entry (cosign v2.6's default)."""
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}],
            "predicateType": predicate_type,
            "predicate": predicate,
        }
        payload = json.dumps(statement).encode()
        signature = signer.sign(v.pae(v.IN_TOTO, payload))
        envelope = {
            "payloadType": v.IN_TOTO,
            "payload": _b64(payload),
            "signatures": [{"keyid": "", "sig": _b64(signature)}],
        }
        data = json.dumps(envelope).encode()
        body = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": _sha256(data)},
                "payloadHash": {"algorithm": "sha256", "value": _sha256(payload)},
                "signatures": [
                    {"signature": _b64(signature), "verifier": _b64(signer.pem.encode())}
                ],
            },
        }
        return v.Layer(
            v.DSSE_ENVELOPE,
            data,
            {
                v.SIGNATURE_ANNOTATION: "",
                v.CERTIFICATE_ANNOTATION: signer.pem,
                v.BUNDLE_ANNOTATION: self.log(body),
                "predicateType": predicate_type,
            },
        )


def artifact_manifest(layers: list[tuple[v.Layer, str]], config: bytes) -> bytes:
    """The OCI manifest of a .sig or .att tag; LAYERS pairs each layer with its blob digest."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": len(config),
            "digest": v.sha256(config),
        },
        "layers": [
            {
                "mediaType": layer.media_type,
                "size": len(layer.data),
                "digest": digest,
                "annotations": layer.annotations,
            }
            for layer, digest in layers
        ],
    }
    return json.dumps(manifest).encode()


def artifact_config(layers: list[v.Layer]) -> bytes:
    return json.dumps(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [v.sha256(layer.data) for layer in layers]},
        }
    ).encode()
