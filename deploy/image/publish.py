"""Publish a local image to an ECR repository whose tags are immutable, idempotently.

    python3 -m deploy.image.publish REPOSITORY_URI IMAGE [--expect-digest sha256:...]

IMAGE is `name:TAG` in the local Docker; it is pushed as REPOSITORY_URI:TAG. ECR refuses a push
to a tag that exists (ImageTagAlreadyExistsException), even of the same image, so a re-run job
would fail: instead, when TAG is already there, this succeeds if it holds the same image (the
same layers, compared through the image's config) and fails loudly if it holds another one.

--expect-digest: the manifest digest the repository must end up holding for TAG (production
passes the digest QA deployed: the bytes QA tested); any other digest fails, pushed or found.

--copy-from SOURCE_REPOSITORY_URI (with --expect-digest): instead of pushing the local image
again, copy the manifest SOURCE@DIGEST and its blobs to REPOSITORY_URI:TAG with
`skopeo copy --all --preserve-digests` (SKOPEO, default `skopeo`): a second `docker push` of the
same image may compress its layers anew and so produce another manifest digest than QA's; a copy
keeps the manifest's bytes, and so its digest, or fails (skopeo-copy(1), --preserve-digests).
Then its signatures and attestations travel with it: cosign keeps them under the tags
sha256-<hex>.sig and .att beside the image (cosign specs/SIGNATURE_SPEC.md), copied the same way
on every run (a re-run completes a copy that stopped half-way; ECR lets those tags move,
deploy/aws/templates/cluster.yaml), and an image QA holds no signature of is not promoted.
Registry logins go through a temporary auth file, never the command line.

Prints the digest; under GitHub Actions also writes `digest=...` to $GITHUB_OUTPUT. Needs the
AWS CLI (credentials for the repository's account) and Docker (DOCKER, default `docker`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

NOT_FOUND = "ImageNotFoundException"
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
# Asked for explicitly, so that ECR returns the manifest as pushed (not converted).
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    *INDEX_TYPES,
)


class PublishError(Exception):
    """The repository holds, or would hold, something other than the image being published."""


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)


def checked(*args: str, stdin: str | None = None) -> str:
    done = run(*args, stdin=stdin)
    if done.returncode != 0:
        raise PublishError(f"{args[0]} {args[1]} {args[2]}: {done.stderr.strip()}")
    return done.stdout


class Repository:
    def __init__(self, uri: str) -> None:
        host, _, self.name = uri.partition("/")
        # <account>.dkr.ecr.<region>.amazonaws.com
        parts = host.split(".")
        if len(parts) < 6 or parts[1:3] != ["dkr", "ecr"] or not self.name:
            raise PublishError(f"not an ECR repository URI: {uri!r}")
        self.uri, self.host, self.region = uri, host, parts[3]

    def ecr(self, *args: str) -> list[str]:
        return ["aws", "ecr", *args, "--region", self.region, "--repository-name", self.name]

    def digest(self, tag: str) -> str | None:
        """The manifest digest TAG points at, or None if no image has that tag."""
        done = run(
            *self.ecr("describe-images", "--image-ids", f"imageTag={tag}", "--output", "json")
        )
        if done.returncode != 0:
            # Only "no such image" means absent: throttling or expired credentials are errors.
            if NOT_FOUND in done.stderr:
                return None
            raise PublishError(f"aws ecr describe-images: {done.stderr.strip()}")
        details = json.loads(done.stdout)["imageDetails"]
        return str(details[0]["imageDigest"]) if details else None

    def manifest(self, digest: str) -> dict[str, Any]:
        out = checked(
            *self.ecr(
                "batch-get-image",
                "--image-ids",
                f"imageDigest={digest}",
                "--accepted-media-types",
                *MANIFEST_TYPES,
                "--output",
                "json",
            )
        )
        (image,) = json.loads(out)["images"]
        manifest: dict[str, Any] = json.loads(image["imageManifest"])
        return manifest

    def layers(self, digest: str) -> list[str]:
        """The uncompressed layer digests (config `rootfs.diff_ids`) of the image at DIGEST."""
        manifest = self.manifest(digest)
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            # An index: the image is its one platform manifest (attestations are unknown/unknown).
            (child,) = [
                m for m in manifest["manifests"] if m.get("platform", {}).get("os") != "unknown"
            ]
            manifest = self.manifest(child["digest"])
        config_digest = manifest["config"]["digest"]
        url = checked(
            *self.ecr(
                "get-download-url-for-layer",
                "--layer-digest",
                config_digest,
                "--query",
                "downloadUrl",
                "--output",
                "text",
            )
        ).strip()
        config = fetch(url)
        if "sha256:" + hashlib.sha256(config).hexdigest() != config_digest:
            raise PublishError(f"the config blob of {self.uri}@{digest} does not match its digest")
        return list(json.loads(config)["rootfs"]["diff_ids"])


def fetch(url: str) -> bytes:
    if not url.startswith("https://"):
        raise PublishError(f"refusing to download the image config from {url!r}")
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (https only, above)
        body: bytes = response.read()
    return body


def local_layers(docker: str, image: str) -> list[str]:
    out = checked(docker, "image", "inspect", "--format", "{{json .RootFS.Layers}}", image)
    return list(json.loads(out))


def push(docker: str, repository: Repository, image: str, tag: str) -> None:
    password = checked("aws", "ecr", "get-login-password", "--region", repository.region)
    checked(
        docker, "login", "--username", "AWS", "--password-stdin", repository.host, stdin=password
    )
    checked(docker, "tag", image, f"{repository.uri}:{tag}")
    checked(docker, "push", f"{repository.uri}:{tag}")


# cosign's tags for what it attaches to an image: its signatures and its attestations.
ATTACHED = ("sig", "att")


def attached_tags(digest: str) -> list[str]:
    return [f"{digest.replace(':', '-')}.{suffix}" for suffix in ATTACHED]


def copy(
    skopeo: str, source: Repository, target: Repository, references: list[tuple[str, str]]
) -> None:
    """Each (source reference, target tag) from SOURCE to TARGET, manifest bytes (so digest)
    preserved."""
    auths = {}
    for registry in (source, target):
        password = checked("aws", "ecr", "get-login-password", "--region", registry.region)
        token = base64.b64encode(f"AWS:{password.strip()}".encode()).decode()
        auths[registry.host] = {"auth": token}
    with tempfile.TemporaryDirectory() as work:
        authfile = Path(work) / "auth.json"
        authfile.touch(mode=0o600)
        authfile.write_text(json.dumps({"auths": auths}))
        for reference, tag in references:
            checked(
                skopeo, "copy", "--all", "--preserve-digests", "--authfile", str(authfile),
                f"docker://{source.uri}{reference}", f"docker://{target.uri}:{tag}",
            )  # fmt: skip


def publish(
    repository: Repository,
    image: str,
    docker: str,
    expected: str | None,
    source: Repository | None = None,
    skopeo: str = "skopeo",
) -> str:
    tag = image.rpartition(":")[2]
    found = repository.digest(tag)
    if found is None and source is not None and expected is not None:
        copy(skopeo, source, repository, [(f"@{expected}", tag)])
        found = repository.digest(tag)
        if found is None:
            raise PublishError(f"copied to {repository.uri}:{tag} but ECR does not list it")
        print(f"copied {source.uri}@{expected} to {repository.uri}:{tag} ({found})")
    elif found is None:
        push(docker, repository, image, tag)
        found = repository.digest(tag)
        if found is None:
            raise PublishError(f"pushed {repository.uri}:{tag} but ECR does not list it")
        print(f"pushed {repository.uri}:{tag} ({found})")
    elif expected is None:
        if repository.layers(found) != local_layers(docker, image):
            raise PublishError(
                f"{repository.uri}:{tag} already holds another image ({found}); tags are "
                "immutable: this build cannot be published under that tag"
            )
        print(f"{repository.uri}:{tag} already holds this image ({found}): nothing to push")
    if expected is not None and found != expected:
        raise PublishError(
            f"{repository.uri}:{tag} holds {found}, not {expected} (the image QA deployed): "
            "refusing to release bytes that were not tested"
        )
    if source is not None and expected is not None:
        copy(skopeo, source, repository, [(f":{t}", t) for t in attached_tags(expected)])
        print(f"copied the signatures and attestations of {expected} from {source.uri}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repository", help="the ECR repository URI")
    parser.add_argument("image", help="the local image, name:TAG")
    parser.add_argument("--expect-digest", help="the digest TAG must hold (sha256:...)")
    parser.add_argument(
        "--copy-from", help="copy EXPECT_DIGEST from this ECR repository instead of pushing"
    )
    args = parser.parse_args(argv)
    if args.copy_from and args.expect_digest is None:
        print("publish: --copy-from needs --expect-digest (the digest to copy)", file=sys.stderr)
        return 2
    if args.expect_digest is not None and not args.expect_digest.startswith("sha256:"):
        print(
            f"publish: --expect-digest must be sha256:..., got {args.expect_digest!r}",
            file=sys.stderr,
        )
        return 2
    try:
        digest = publish(
            Repository(args.repository),
            args.image,
            os.environ.get("DOCKER", "docker"),
            args.expect_digest,
            Repository(args.copy_from) if args.copy_from else None,
            os.environ.get("SKOPEO", "skopeo"),
        )
    except PublishError as error:
        print(f"publish: {error}", file=sys.stderr)
        return 1
    print(digest)
    if output := os.environ.get("GITHUB_OUTPUT"):
        with open(output, "a", encoding="utf-8") as file:
            file.write(f"digest={digest}\nrepository={args.repository}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
