"""The signing drill (make verify-signing): sign an image in a local registry and show that
deploy/image/verify.py, the code make deploy-k8s runs, admits it and refuses every other case.

    python -m deploy.image.signing_drill [--publish]

It starts Debian's docker-registry on a free port of 127.0.0.1 (its own configuration and storage
under .work/signing), pushes small OCI images built from files with skopeo, signs and attests one
with a local stand-in for Fulcio and Rekor (deploy/image/local_sigstore.py: a CA issuing a
ten-minute certificate to our release workflow's identity, a log signing entry timestamps),
promotes it to a second repository with skopeo, digests preserved, signatures with it, and runs
the verification on each case. Timings and outcomes go to .work/signing/drill.json; --publish
also writes them into docs/supply-chain.md. Exit status 1 if any case ends otherwise than
expected. Needs docker-registry and skopeo (make packages GROUPS=verify-signing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.image import verify as v
from deploy.image.local_sigstore import LocalSigstore, Signer, artifact_config, artifact_manifest
from deploy.image.provenance import predicate

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".work" / "signing"
DOC = ROOT / "docs" / "supply-chain.md"
BEGIN, END = "<!-- signing-drill:begin -->", "<!-- signing-drill:end -->"
REPOSITORY = "example-org/registro"  # deploy/aws/environments/*.json GitHubRepository
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


class PushRegistry(v.HttpRegistry):
    """The registry API's push side (distribution-spec: a monolithic POST-then-PUT upload)."""

    def _send(self, method: str, url: str, data: bytes = b"", content_type: str = "") -> str:
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (127.0.0.1)
        if content_type:
            request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (127.0.0.1)
            return str(response.headers.get("Location", ""))

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = v.sha256(data)
        location = self._send("POST", f"{self.base}/v2/{repository}/blobs/uploads/")
        if location.startswith("/"):
            location = self.base + location
        separator = "&" if "?" in location else "?"
        self._send("PUT", f"{location}{separator}digest={digest}", data, "application/octet-stream")
        return digest

    def push_manifest(self, repository: str, tag: str, body: bytes, media_type: str) -> None:
        self._send("PUT", f"{self.base}/v2/{repository}/manifests/{tag}", body, media_type)

    def attach(self, ref: v.Reference, suffix: str, layers: list[v.Layer]) -> None:
        """Add LAYERS to the image's .sig/.att manifest, as cosign appends to it."""
        existing = v.attached(self, ref, suffix)
        everything = existing + layers
        pairs = [(layer, self.push_blob(ref.repository, layer.data)) for layer in everything]
        config = artifact_config(everything)
        self.push_blob(ref.repository, config)
        manifest = artifact_manifest(pairs, config)
        self.push_manifest(
            ref.repository,
            ref.tag_of(suffix),
            manifest,
            "application/vnd.oci.image.manifest.v1+json",
        )

    def digest_of(self, repository: str, tag: str) -> str:
        body = self.manifest(repository, tag)
        if body is None:
            raise SystemExit(f"drill: {repository}:{tag} is not in the registry")
        return v.sha256(body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_registry(work: Path) -> Iterator[str]:
    """docker-registry serving WORK/storage on 127.0.0.1:<free port>; stopped on the way out."""
    port = free_port()
    storage = work / "storage"
    shutil.rmtree(storage, ignore_errors=True)
    storage.mkdir(parents=True)
    config = work / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    log = (work / "registry.log").open("w")
    process = subprocess.Popen(
        [os.environ.get("DOCKER_REGISTRY", "docker-registry"), "serve", str(config)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"drill: docker-registry did not start: see {log.name}"
                    ) from None
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def oci_layout(directory: Path, content: str) -> Path:
    """A one-layer OCI image layout made from files (image-spec image-layout.md), no Docker."""
    shutil.rmtree(directory, ignore_errors=True)
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> str:
        digest = v.sha256(data)
        (blobs / digest.removeprefix("sha256:")).write_bytes(data)
        return digest

    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as archive:
        data = content.encode()
        info = tarfile.TarInfo("srv/registro/release.txt")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        archive.addfile(info, io.BytesIO(data))
    layer = gzip.compress(tar.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [v.sha256(tar.getvalue())]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": len(config),
                "digest": blob(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "size": len(layer),
                    "digest": blob(layer),
                }
            ],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": len(manifest),
                "digest": blob(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "drill"},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return directory


def skopeo(*args: str) -> None:
    done = subprocess.run(
        [os.environ.get("SKOPEO", "skopeo"), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"drill: skopeo {args[0]}: {done.stderr.strip()}")


def push_layout(layout: Path, registry: str, repository: str, tag: str) -> None:
    skopeo(
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        f"oci:{layout}:drill",
        f"docker://{registry}/{repository}:{tag}",
    )


def sign_and_attest(
    sigstore: LocalSigstore,
    signer: Signer,
    registry: PushRegistry,
    ref: v.Reference,
    run: dict[str, str],
) -> None:
    """What the build job does after pushing: cosign sign, then cosign attest twice."""
    name = f"{ref.registry}/{ref.repository}"
    registry.attach(ref, "sig", [sigstore.signature_layer(signer, ref.digest, name)])
    sbom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [{"type": "file", "name": "release.txt"}],
    }
    registry.attach(
        ref,
        "att",
        [
            sigstore.attestation_layer(
                signer, ref.digest, name, v.SLSA_PROVENANCE_V1, predicate(run)
            ),
            sigstore.attestation_layer(signer, ref.digest, name, v.CYCLONEDX, sbom),
        ],
    )


def github_run(repository: str, commit: str) -> dict[str, str]:
    """The variables GitHub sets for a run of deploy.yml on main (simulated: no runner here)."""
    return {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": repository,
        "GITHUB_REF": v.RELEASE_REF,
        "GITHUB_SHA": commit,
        "GITHUB_WORKFLOW_REF": f"{repository}/{v.RELEASE_WORKFLOW}@{v.RELEASE_REF}",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_RUN_ID": "1",
        "GITHUB_RUN_ATTEMPT": "1",
        "RUNNER_ENVIRONMENT": "github-hosted",
    }


@dataclass
class Case:
    name: str
    image: str
    expected: str  # "verified" or "refused"
    outcome: str
    reason: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.outcome == self.expected


def check(name: str, image: str, expected: str, run: Callable[[], v.Verified]) -> Case:
    started = time.perf_counter()
    try:
        verified = run()
        outcome, reason = (
            "verified",
            f"signed by {verified.identity}; attested: {', '.join(verified.attestations)}",
        )
    except v.Refused as refused:
        outcome, reason = "refused", str(refused)
    case = Case(name, image, expected, outcome, reason, round(time.perf_counter() - started, 4))
    mark = "ok  " if case.passed else "FAIL"
    print(f"{mark} {name}: {outcome} ({case.seconds:.3f} s): {reason}")
    return case


def drill(work: Path) -> dict[str, object]:
    work.mkdir(parents=True, exist_ok=True)
    ours = v.Expected(REPOSITORY, COMMIT)
    sigstore = LocalSigstore()
    trust = v.TrustRoot.load(sigstore.write_trusted_root(work / "trusted_root.json"))
    timings: dict[str, float] = {}
    cases: list[Case] = []
    with local_registry(work) as host:
        registry = PushRegistry(f"http://{host}")
        qa, prod = "registro-qa", "registro-prod"
        good = oci_layout(work / "layouts" / "good", f"registro {COMMIT}\n")
        push_layout(good, host, qa, COMMIT)
        signed = v.Reference(host, qa, registry.digest_of(qa, COMMIT))

        started = time.perf_counter()
        signer = sigstore.issue(ours)
        sign_and_attest(sigstore, signer, registry, signed, github_run(REPOSITORY, COMMIT))
        timings["sign_and_attest_seconds"] = round(time.perf_counter() - started, 4)

        def verifying(image: str, expected: v.Expected = ours) -> Callable[[], v.Verified]:
            return lambda: v.verify(image, expected, trust, registry)

        cases.append(
            check("signed image, by digest", str(signed), "verified", verifying(str(signed)))
        )
        cases.append(
            check(
                "signed image, another commit being released", str(signed), "refused",
                verifying(str(signed), v.Expected(REPOSITORY, OTHER_COMMIT)),
            )
        )  # fmt: skip
        tagged = f"{host}/{qa}:{COMMIT}"
        cases.append(check("signed image, by tag", tagged, "refused", verifying(tagged)))

        # Tampered: other bytes pushed under the same tag; the tag now resolves to their digest.
        push_layout(
            oci_layout(work / "layouts" / "tampered", f"registro {COMMIT} + backdoor\n"),
            host,
            qa,
            COMMIT,
        )
        tampered = v.Reference(host, qa, registry.digest_of(qa, COMMIT))
        cases.append(
            check(
                "tampered image (same tag, other digest)",
                str(tampered),
                "refused",
                verifying(str(tampered)),
            )
        )

        unsigned_layout = oci_layout(work / "layouts" / "unsigned", "registro unsigned\n")
        push_layout(unsigned_layout, host, qa, "unsigned")
        unsigned = v.Reference(host, qa, registry.digest_of(qa, "unsigned"))
        cases.append(check("unsigned image", str(unsigned), "refused", verifying(str(unsigned))))

        # Signed by another identity: a fork's workflow, with the same (trusted) authority.
        push_layout(
            oci_layout(work / "layouts" / "fork", "registro from a fork\n"), host, qa, "fork"
        )
        fork = v.Reference(host, qa, registry.digest_of(qa, "fork"))
        fork_run = v.Expected("someone-else/registro", COMMIT)
        sign_and_attest(
            sigstore,
            sigstore.issue(fork_run),
            registry,
            fork,
            github_run(fork_run.repository, COMMIT),
        )
        cases.append(
            check("image signed by another identity", str(fork), "refused", verifying(str(fork)))
        )

        # Signed with our identity by an authority we do not trust (a self-made "Fulcio").
        push_layout(
            oci_layout(work / "layouts" / "rogue", "registro rogue CA\n"), host, qa, "rogue"
        )
        rogue = v.Reference(host, qa, registry.digest_of(qa, "rogue"))
        impostor = LocalSigstore("impostor", log_key=sigstore.log_key)
        sign_and_attest(
            impostor, impostor.issue(ours), registry, rogue, github_run(REPOSITORY, COMMIT)
        )
        cases.append(
            check(
                "image signed outside our trust root", str(rogue), "refused", verifying(str(rogue))
            )
        )

        # Promotion: the manifest, its signature and attestations copied, digests preserved.
        started = time.perf_counter()
        for tag in (COMMIT, signed.tag_of("sig"), signed.tag_of("att")):
            source = (
                f"{signed.registry}/{qa}@{signed.digest}" if tag == COMMIT else f"{host}/{qa}:{tag}"
            )
            skopeo(
                "copy", "--quiet", "--all", "--preserve-digests", "--src-tls-verify=false",
                "--dest-tls-verify=false", f"docker://{source}", f"docker://{host}/{prod}:{tag}",
            )  # fmt: skip
        timings["promote_seconds"] = round(time.perf_counter() - started, 4)
        promoted = v.Reference(host, prod, registry.digest_of(prod, COMMIT))
        kept = "kept" if promoted.digest == signed.digest else "CHANGED"
        cases.append(
            check(
                f"promoted to {prod} (digest {kept})", str(promoted), "verified",
                verifying(str(promoted)),
            )
        )  # fmt: skip
    verified = [c.seconds for c in cases if c.outcome == "verified"]
    return {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tools": {
            "docker-registry": tool_version("docker-registry"),
            "skopeo": tool_version("skopeo"),
        },
        "identity": ours.identity,
        "commit": COMMIT,
        **timings,
        "verify_seconds_max": max(verified, default=0.0),
        "cases": [asdict(c) | {"passed": c.passed} for c in cases],
        "passed": all(c.passed for c in cases),
    }


def tool_version(name: str) -> str:
    done = subprocess.run([name, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 else "?"


def markdown(report: dict[str, object]) -> str:
    cases = report["cases"]
    assert isinstance(cases, list)
    rows = "\n".join(
        f"| {c['name']} | {c['outcome']} | {c['seconds']:.3f} | {c['reason'].replace('|', '/')} |"
        for c in cases
    )
    return (
        f"{BEGIN}\n"
        f"Run of `make verify-signing` at {report['when']} ({report['tools']['docker-registry']};"  # type: ignore[index]
        f" {report['tools']['skopeo']}); identity `{report['identity']}`, commit"  # type: ignore[index]
        f" `{str(report['commit'])[:12]}`. Signing and attesting (certificate, one signature, two"
        f" attestations, each logged, pushed): **{report['sign_and_attest_seconds']} s**;"
        f" promotion (three skopeo copies): {report['promote_seconds']} s.\n\n"
        "| case | outcome | verification (s) | reason |\n| --- | --- | --- | --- |\n"
        f"{rows}\n{END}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--publish", action="store_true", help="write the figures into docs/supply-chain.md"
    )
    args = parser.parse_args(argv)
    report = drill(WORK)
    (WORK / "drill.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"drill: report in {WORK / 'drill.json'}")
    if args.publish:
        text = DOC.read_text()
        start, end = text.index(BEGIN), text.index(END) + len(END)
        DOC.write_text(text[:start] + markdown(report) + text[end:])
        print(f"drill: figures written into {DOC.relative_to(ROOT)}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
