"""deploy/image/publish.py (make publish-image) against stand-ins for `aws ecr` and `docker`.

The stand-ins answer as the documented services do:

- ECR with tag immutability returns ImageTagAlreadyExistsException "if you push an image with a
  tag that is already in the repository", whatever the image
  (https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html): so the
  stand-in's push refuses an existing tag, even for the same bytes.
- DescribeImages fails with ImageNotFoundException for a tag that is not there
  (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImages.html); any other
  error (throttling, expired credentials) is not "absent".
- Re-running a job runs it again with the same GITHUB_SHA, so with the same TAG; jobs not re-run
  keep their outputs and the run keeps its artifacts
  (https://docs.github.com/en/actions/managing-workflow-runs-and-deployments/managing-workflow-runs/re-running-workflows-and-jobs):
  a re-run publishes the same image under a tag it may already have pushed.
- An image's config lists its uncompressed layers (`rootfs.diff_ids`) and is addressed by its
  sha256 (https://github.com/opencontainers/image-spec/blob/main/config.md): the same diff_ids
  are the same filesystem bytes, however each push compressed them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from deploy.image import publish as publish_module

REPO = Path(__file__).resolve().parents[3]
URI = "000000000000.dkr.ecr.eu-west-1.amazonaws.com/registro-qa"
TAG = "0123456789abcdef0123456789abcdef01234567"
LAYERS = ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
OTHER_LAYERS = ["sha256:" + "1" * 64, "sha256:" + "3" * 64]
DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64


AWS_STUB = r"""
import hashlib, json, os, sys
path = os.environ["STUB_STATE"]; state = json.load(open(path)); args = sys.argv[1:]
state["calls"].append(["aws", *args])
def save(): json.dump(state, open(path, "w"))
def value(flag): return args[args.index(flag) + 1]
def config(layers): return json.dumps({"rootfs": {"type": "layers", "diff_ids": layers}})
if args[:2] == ["ecr", "get-login-password"]:
    save(); print("stub-password"); sys.exit(0)
if state.get("error"):
    save(); print(f"An error occurred ({state['error']}) when calling the API", file=sys.stderr)
    sys.exit(254)
images = state["images"]
if args[:2] == ["ecr", "describe-images"]:
    tag = value("--image-ids").split("=", 1)[1]; save()
    if tag not in images:
        print("An error occurred (ImageNotFoundException) when calling the DescribeImages "
              f"operation: The image with imageId {{imageTag:'{tag}'}} does not exist",
              file=sys.stderr)
        sys.exit(254)
    print(json.dumps({"imageDetails": [{"imageDigest": images[tag]["digest"]}]})); sys.exit(0)
by_digest = {i["digest"]: i for i in images.values()}
by_digest |= {i["child"]: {"layers": i["layers"]} for i in images.values() if "child" in i}
if args[:2] == ["ecr", "batch-get-image"]:
    assert "application/vnd.docker.distribution.manifest.v2+json" in args, "may come converted"
    image = by_digest[value("--image-ids").split("=", 1)[1]]
    if "child" in image:  # an OCI index: the image and an attestation manifest
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{"digest": image["child"], "platform": {"os": "linux"}},
                               {"digest": "sha256:" + "e" * 64, "platform": {"os": "unknown"}}]}
        save(); print(json.dumps({"images": [{"imageManifest": json.dumps(index)}]})); sys.exit(0)
    blob = config(image["layers"]).encode(); digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    state["blobs"][digest] = blob.decode(); save()
    manifest = {"schemaVersion": 2, "config": {"digest": digest}, "layers": []}
    print(json.dumps({"images": [{"imageManifest": json.dumps(manifest)}]})); sys.exit(0)
if args[:2] == ["ecr", "get-download-url-for-layer"]:
    save(); print("https://stand-in.invalid/" + value("--layer-digest")); sys.exit(0)
sys.exit(f"aws stand-in: unexpected {args}")
"""

DOCKER_STUB = r"""
import json, os, sys
path = os.environ["STUB_STATE"]; state = json.load(open(path)); args = sys.argv[1:]
state["calls"].append(["docker", *args])
def save(): json.dump(state, open(path, "w"))
if args[:2] == ["image", "inspect"]:
    save(); print(json.dumps(state["local_layers"])); sys.exit(0)
if args[0] == "login":
    assert sys.stdin.read().strip() == "stub-password"; save(); sys.exit(0)
if args[0] == "tag":
    save(); sys.exit(0)
if args[0] == "push":
    tag = args[1].rsplit(":", 1)[1]
    if tag in state["images"]:
        save(); print(f"tag invalid: The image tag '{tag}' already exists and cannot be "
                      "overwritten because the repository is immutable.", file=sys.stderr)
        sys.exit(1)
    state["images"][tag] = {"digest": state["push_digest"], "layers": state["local_layers"]}
    save(); sys.exit(0)
sys.exit(f"docker stand-in: unexpected {args}")
"""


SKOPEO_STUB = r"""
import base64, json, os, sys
path = os.environ["STUB_STATE"]; state = json.load(open(path)); args = sys.argv[1:]
state["calls"].append(["skopeo", *args])
def save(): json.dump(state, open(path, "w"))
assert args[:1] == ["copy"], args
auths = json.load(open(args[args.index("--authfile") + 1]))["auths"]
for ref in args[-2:]:
    host = ref.removeprefix("docker://").split("/", 1)[0]
    assert base64.b64decode(auths[host]["auth"]).decode() == "AWS:stub-password", host
target = args[-1].rsplit(":", 1)[1]
if target.startswith("sha256-"):  # cosign's .sig/.att tags: mutable (cluster.yaml's exclusion)
    source = args[-2].rsplit(":", 1)[1]
    if source not in state.get("signed", []):
        save(); print(f"reading manifest {source}: manifest unknown", file=sys.stderr); sys.exit(1)
    state.setdefault("attached", {})[target] = source; save(); sys.exit(0)
source = args[-2].split("@", 1)[1]
if target in state["images"]:
    save(); print("tag invalid: immutable", file=sys.stderr); sys.exit(1)
# --preserve-digests: the manifest's bytes, so its digest, as they are in the source.
state["images"][target] = {"digest": source, "layers": state["local_layers"]}
save()
"""


class StandIns:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, publish: ModuleType) -> None:
        self.path = tmp / "state.json"
        self.output = tmp / "github-output"
        self.state: dict[str, Any] = {
            "images": {},
            "local_layers": LAYERS,
            "push_digest": DIGEST,
            "error": None,
            "calls": [],
            "blobs": {},
            # The tags cosign wrote beside QA's image (its signature and attestations).
            "signed": [f"{DIGEST.replace(':', '-')}.sig", f"{DIGEST.replace(':', '-')}.att"],
        }
        self.save()
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        for name, body in (("aws", AWS_STUB), ("docker", DOCKER_STUB), ("skopeo", SKOPEO_STUB)):
            (bin_dir / name).write_text(f"#!{sys.executable}\n{body}")
            (bin_dir / name).chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("STUB_STATE", str(self.path))
        monkeypatch.setenv("GITHUB_OUTPUT", str(self.output))
        monkeypatch.delenv("DOCKER", raising=False)
        monkeypatch.delenv("SKOPEO", raising=False)
        monkeypatch.setattr(publish, "fetch", self.fetch)

    def save(self) -> None:
        self.path.write_text(json.dumps(self.state))

    def load(self) -> dict[str, Any]:
        self.state = json.loads(self.path.read_text())
        return self.state

    def fetch(self, url: str) -> bytes:
        blob: str = self.load()["blobs"][url.rsplit("/", 1)[1]]
        return blob.encode()

    def pushes(self) -> list[list[str]]:
        return [c for c in self.load()["calls"] if c[:2] == ["docker", "push"]]


@pytest.fixture
def publish() -> ModuleType:
    return publish_module


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, publish: ModuleType) -> StandIns:
    return StandIns(tmp_path, monkeypatch, publish)


def run(publish: ModuleType, *extra: str) -> int:
    code: int = publish.main([URI, f"registro:{TAG}", *extra])
    return code


def test_first_push_publishes_and_outputs_the_digest(
    publish: ModuleType, stand_ins: StandIns
) -> None:
    assert run(publish) == 0
    assert stand_ins.pushes() == [["docker", "push", f"{URI}:{TAG}"]]
    assert stand_ins.output.read_text() == f"digest={DIGEST}\nrepository={URI}\n"


def test_rerun_with_the_same_image_succeeds_without_pushing(
    publish: ModuleType, stand_ins: StandIns
) -> None:
    stand_ins.state["images"][TAG] = {"digest": DIGEST, "layers": LAYERS}
    stand_ins.save()
    assert run(publish) == 0
    assert stand_ins.pushes() == []
    assert stand_ins.output.read_text() == f"digest={DIGEST}\nrepository={URI}\n"


def test_rerun_finds_the_image_inside_an_index(publish: ModuleType, stand_ins: StandIns) -> None:
    """Docker's containerd image store may push an index with an attestation beside the image."""
    stand_ins.state["images"][TAG] = {"digest": DIGEST, "child": "sha256:" + "d" * 64}
    stand_ins.state["images"][TAG]["layers"] = LAYERS
    stand_ins.save()
    assert run(publish) == 0
    assert stand_ins.pushes() == []


def test_tag_holding_another_image_fails_loudly(
    publish: ModuleType, stand_ins: StandIns, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_ins.state["images"][TAG] = {"digest": OTHER_DIGEST, "layers": OTHER_LAYERS}
    stand_ins.save()
    assert run(publish) == 1
    assert "already holds another image" in capsys.readouterr().err
    assert stand_ins.pushes() == []
    assert not stand_ins.output.exists()


def test_the_stand_in_refuses_an_existing_tag_as_ecr_does(stand_ins: StandIns) -> None:
    """So a publish that pushed blindly would fail here, as the old `make publish-image` did."""
    stand_ins.state["images"][TAG] = {"digest": DIGEST, "layers": LAYERS}
    stand_ins.save()
    done = subprocess.run(
        ["docker", "push", f"{URI}:{TAG}"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1 and "immutable" in done.stderr


@pytest.mark.parametrize("error", ["ThrottlingException", "ExpiredTokenException"])
def test_an_ecr_error_is_not_taken_for_absent(
    publish: ModuleType, stand_ins: StandIns, error: str
) -> None:
    stand_ins.state["error"] = error
    stand_ins.save()
    assert run(publish) == 1
    assert stand_ins.pushes() == []


def test_production_accepts_the_digest_qa_deployed(
    publish: ModuleType, stand_ins: StandIns
) -> None:
    assert run(publish, "--expect-digest", DIGEST) == 0
    assert stand_ins.output.read_text() == f"digest={DIGEST}\nrepository={URI}\n"


def test_an_empty_expected_digest_is_refused_before_anything(
    publish: ModuleType, stand_ins: StandIns
) -> None:
    assert run(publish, "--expect-digest", "") == 2
    assert stand_ins.load()["calls"] == []


def test_production_refuses_a_push_that_is_not_the_digest_qa_deployed(
    publish: ModuleType, stand_ins: StandIns, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same layers compressed differently would be other bytes: prod refuses to deploy them."""
    assert run(publish, "--expect-digest", OTHER_DIGEST) == 1
    assert "not " + OTHER_DIGEST in capsys.readouterr().err
    assert not stand_ins.output.exists()


def test_production_refuses_a_tag_already_holding_another_digest(
    publish: ModuleType, stand_ins: StandIns
) -> None:
    stand_ins.state["images"][TAG] = {"digest": OTHER_DIGEST, "layers": LAYERS}
    stand_ins.save()
    assert run(publish, "--expect-digest", DIGEST) == 1
    assert stand_ins.pushes() == []
    assert not stand_ins.output.exists()


def test_rerun_in_production_with_the_tested_digest_succeeds(
    publish: ModuleType, stand_ins: StandIns
) -> None:
    stand_ins.state["images"][TAG] = {"digest": DIGEST, "layers": LAYERS}
    stand_ins.save()
    assert run(publish, "--expect-digest", DIGEST) == 0
    assert stand_ins.pushes() == []


def test_config_blob_is_checked_against_its_digest(
    publish: ModuleType, stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_ins.state["images"][TAG] = {"digest": DIGEST, "layers": LAYERS}
    stand_ins.save()
    monkeypatch.setattr(publish, "fetch", lambda url: json.dumps({"rootfs": {}}).encode())
    assert run(publish) == 1


def test_fetch_downloads_over_https_only(publish: ModuleType) -> None:
    with pytest.raises(publish.PublishError):
        publish.fetch("http://example.invalid/config")
    with pytest.raises(publish.PublishError):
        publish.fetch("file:///etc/passwd")


QA_URI = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/registro-qa"


def test_production_copies_the_manifest_qa_deployed_instead_of_pushing_again(
    publish: ModuleType, stand_ins: StandIns
) -> None:
    """R15: a second `docker push` of the loaded image may compress its layers anew, so another
    manifest digest than QA's (here: push_digest), and production would refuse to release. The
    manifest is copied instead, by digest, with `skopeo copy --preserve-digests`, which keeps the
    manifest's bytes or fails (containers/skopeo docs/skopeo-copy.1.md, --preserve-digests)."""
    stand_ins.state["push_digest"] = OTHER_DIGEST
    stand_ins.save()
    assert run(publish, "--expect-digest", DIGEST, "--copy-from", QA_URI) == 0
    assert stand_ins.pushes() == []
    copy, *signatures = [c for c in stand_ins.load()["calls"] if c[0] == "skopeo"]
    assert "--preserve-digests" in copy
    assert copy[-2:] == [f"docker://{QA_URI}@{DIGEST}", f"docker://{URI}:{TAG}"]
    assert len(signatures) == 2
    assert stand_ins.output.read_text() == f"digest={DIGEST}\nrepository={URI}\n"
    assert not [c for c in stand_ins.load()["calls"] if "stub-password" in " ".join(c)]


def test_a_copy_rerun_finds_the_tested_digest_and_copies_only_the_signatures(
    publish: ModuleType, stand_ins: StandIns
) -> None:
    stand_ins.state["images"][TAG] = {"digest": DIGEST, "layers": LAYERS}
    stand_ins.save()
    assert run(publish, "--expect-digest", DIGEST, "--copy-from", QA_URI) == 0
    copies = [c[-1] for c in stand_ins.load()["calls"] if c[0] == "skopeo"]
    assert copies == [f"docker://{URI}:{t}" for t in stand_ins.state["signed"]]  # not the image


def test_the_signatures_and_attestations_travel_with_the_image(
    publish: ModuleType, stand_ins: StandIns
) -> None:
    """cosign stores an image's signatures under the tag sha256-<hex>.sig and its attestations
    under sha256-<hex>.att, in the image's repository (sigstore/cosign specs/SIGNATURE_SPEC.md,
    "Tag based discovery"; ATTESTATION_SPEC.md): production's copy of the digest verifies
    (make deploy-k8s, deploy/image/verify.py) only if they are copied to production too."""
    assert run(publish, "--expect-digest", DIGEST, "--copy-from", QA_URI) == 0
    skopeo = [c for c in stand_ins.load()["calls"] if c[0] == "skopeo"]
    hex_digest = DIGEST.removeprefix("sha256:")
    for suffix in ("sig", "att"):
        tag = f"sha256-{hex_digest}.{suffix}"
        (call,) = [c for c in skopeo if c[-1].endswith(tag)]
        assert call[1:5] == ["copy", "--all", "--preserve-digests", "--authfile"]
        assert call[-2:] == [f"docker://{QA_URI}:{tag}", f"docker://{URI}:{tag}"]
    assert stand_ins.state["attached"] == {t: t for t in stand_ins.state["signed"]}


def test_an_image_qa_holds_no_signature_of_is_not_promoted(
    publish: ModuleType, stand_ins: StandIns, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_ins.state["signed"] = []
    stand_ins.save()
    assert run(publish, "--expect-digest", DIGEST, "--copy-from", QA_URI) == 1
    assert "manifest unknown" in capsys.readouterr().err


def test_a_copy_needs_the_digest_to_copy(publish: ModuleType, stand_ins: StandIns) -> None:
    assert run(publish, "--copy-from", QA_URI) == 2
    assert stand_ins.load()["calls"] == []
