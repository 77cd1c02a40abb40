"""deploy/k8s/release.sh and its helper, on what they can be run against here.

A cluster and AWS cannot run here, so `aws` and `kubectl` are stubs: `aws` answers list-exports as
the real CLI does with --query/--output text; `kubectl` records its calls and plays a migration
that succeeds or fails and a Rollout that ends Healthy or Degraded. They check the order and the
stops of a release, nothing about IAM, the API server or the controllers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from k8s_support import K8S, TEST_IMAGE, Manifests

RELEASE = K8S / "release.sh"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RELEASE), *args], capture_output=True, text=True, env=env)


LAYERS = "network cluster data edge"


def fake_aws(tmp_path: Path, stacks: dict[str, dict[str, str]]) -> dict[str, str]:
    """An `aws` on PATH that answers `cloudformation describe-stacks --stack-name S` with S's
    outputs as the real CLI prints them with --query ...[OutputKey,OutputValue] --output text."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    table = tmp_path / "stacks.json"
    table.write_text(json.dumps(stacks))
    script = bin_dir / "aws"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"stacks = json.load(open({str(table)!r}))\n"
        "name = sys.argv[sys.argv.index('--stack-name') + 1]\n"
        "if name not in stacks:\n"
        "    sys.exit(f'An error occurred: Stack with id {name} does not exist')\n"
        "for key, value in stacks[name].items():\n"
        "    print(f'{key}\\t{value}')\n"
    )
    script.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "AWS_REGION": "eu-central-1",
        "STACK_LAYERS": LAYERS,
    }


def committed_outputs(env: str) -> dict[str, str]:
    lines = (K8S / "overlays" / env / "cloudformation-outputs.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def spread(env: str, keys: list[str]) -> dict[str, dict[str, str]]:
    """The keys' outputs spread over the environment's stacks, with some outputs nobody reads."""
    layers = LAYERS.split()
    stacks: dict[str, dict[str, str]] = {
        f"registro-{env}-{layer}": {"Unrelated": "x"} for layer in layers
    }
    for i, key in enumerate(keys):
        stacks[f"registro-{env}-{layers[i % len(layers)]}"][key] = f"value-of-{key}"
    return stacks


def test_outputs_are_read_from_the_environments_stacks(tmp_path: Path) -> None:
    wanted = [k for k in committed_outputs("prod") if k != "AwsRegion"]
    stacks = spread("prod", wanted)
    stacks["registro-qa-edge"] = {"CertificateArn": "the wrong environment"}
    result = run("outputs", "prod", env=fake_aws(tmp_path, stacks))
    assert result.returncode == 0, result.stderr
    got = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert got == {**{k: f"value-of-{k}" for k in wanted}, "AwsRegion": "eu-central-1"}
    (tmp_path / "again").mkdir()
    one = run("output", "prod", "RepositoryUri", env=fake_aws(tmp_path / "again", stacks))
    assert one.stdout.strip() == "value-of-RepositoryUri"


def test_a_missing_output_stops_the_release(tmp_path: Path) -> None:
    wanted = [k for k in committed_outputs("qa") if k not in {"AwsRegion", "WebAclArn"}]
    result = run("outputs", "qa", env=fake_aws(tmp_path, spread("qa", wanted)))
    assert result.returncode != 0
    assert "no stack of registro-qa outputs WebAclArn" in result.stderr


def test_a_missing_stack_stops_the_release(tmp_path: Path) -> None:
    stacks = spread("qa", list(committed_outputs("qa")))
    del stacks["registro-qa-data"]
    result = run("outputs", "qa", env=fake_aws(tmp_path, stacks))
    assert result.returncode != 0
    assert "registro-qa-data does not exist" in result.stderr


@pytest.mark.parametrize(
    "image",
    [
        "000000000000.dkr.ecr.eu-west-1.amazonaws.com/registro",
        "000000000000.dkr.ecr.eu-west-1.amazonaws.com/registro:latest",
        "000000000000.dkr.ecr.eu-west-1.amazonaws.com/registro:abc1234",
        "registro@sha256:" + "ab" * 32,
    ],
)
def test_render_refuses_an_image_not_pinned_by_digest(tmp_path: Path, image: str) -> None:
    outputs = K8S / "overlays" / "qa" / "cloudformation-outputs.env"
    result = run("render", "qa", image, str(outputs), str(tmp_path / "out"))
    assert result.returncode != 0
    assert "must be repository@sha256" in result.stderr


def test_render_leaves_the_source_tree_alone(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.env"
    outputs.write_text(
        (K8S / "overlays" / "qa" / "cloudformation-outputs.env")
        .read_text()
        .replace("eu-west-1", "us-east-2")
    )
    before = subprocess.run(
        ["git", "status", "--porcelain", str(K8S)], capture_output=True, text=True
    ).stdout
    result = run("render", "qa", TEST_IMAGE, str(outputs), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    rendered = (tmp_path / "out" / "manifests.yaml").read_text()
    assert "region: us-east-2" in rendered and "eu-west-1" not in rendered.replace(TEST_IMAGE, "")
    after = subprocess.run(
        ["git", "status", "--porcelain", str(K8S)], capture_output=True, text=True
    ).stdout
    assert before == after


def replica_set(revision: int, image: str, owner: str = "rollout-uid") -> dict[str, object]:
    return {
        "kind": "ReplicaSet",
        "metadata": {
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
            "ownerReferences": [{"uid": owner}],
        },
        "spec": {
            "template": {
                "metadata": {
                    "labels": {"app": "registro", "rollouts-pod-template-hash": f"h{revision}"}
                },
                "spec": {"containers": [{"name": "registro", "image": image}]},
            }
        },
    }


def previous_template(items: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["python3", str(K8S / "tools" / "previous_template.py")],
        input=json.dumps({"items": items}),
        capture_output=True,
        text=True,
    )


def test_rollback_patch_goes_to_the_previous_revision() -> None:
    rollout = {
        "kind": "Rollout",
        "metadata": {"uid": "rollout-uid", "annotations": {"rollout.argoproj.io/revision": "7"}},
    }
    items = [
        rollout,
        replica_set(7, "img@sha256:new"),
        replica_set(6, "img@sha256:previous"),
        replica_set(5, "img@sha256:older"),
        replica_set(9, "img@sha256:someone-else", owner="other"),
    ]
    result = previous_template(items)
    assert result.returncode == 0, result.stderr
    template = json.loads(result.stdout)["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "img@sha256:previous"
    assert template["metadata"]["labels"] == {"app": "registro"}


def test_rollback_refuses_when_there_is_nothing_before() -> None:
    rollout = {
        "kind": "Rollout",
        "metadata": {"uid": "rollout-uid", "annotations": {"rollout.argoproj.io/revision": "1"}},
    }
    result = previous_template([rollout, replica_set(1, "img@sha256:only")])
    assert result.returncode != 0


def selects(selector: str, labels: dict[str, str]) -> bool:
    """kubectl's label selectors, for the two forms release.sh uses: `k=v` and `k notin (a,b)`."""
    notin = re.fullmatch(r"([\w./-]+) notin \(([^)]*)\)", selector)
    if notin:
        return labels.get(notin.group(1)) not in notin.group(2).split(",")
    key, value = selector.split("=")
    return labels.get(key) == value


def test_apply_phases_cover_every_object_once(manifests: Manifests) -> None:
    """Namespace at bootstrap; then config, then only the Job, then only the Rollout: each object
    in exactly one phase, so that nothing is applied twice or never."""
    selectors = re.findall(r"--selector '([^']+)'", RELEASE.read_text())
    config, migration, server, namespace = selectors
    expected = {"Namespace": namespace, "Job": migration, "Rollout": server}
    for doc in manifests.docs:
        labels = doc["metadata"].get("labels", {})
        chosen = [p for p in selectors if selects(p, labels)]
        assert chosen == [expected.get(doc["kind"], config)], (doc["kind"], doc["metadata"]["name"])


def fake_kubectl(tmp_path: Path, migration_ok: bool, phase: str) -> dict[str, str]:
    """A `kubectl` that records its calls and answers like a cluster where the migration Job
    succeeds or fails and the Rollout ends in `phase` (it cannot see anything real)."""
    calls = tmp_path / "calls"
    script = tmp_path / "kubectl"
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {calls}\n'
        'case "$*" in\n'
        f"  *'wait job/registro-migrate'*) exit {0 if migration_ok else 1} ;;\n"
        f"  *'get rollout registro'*) echo '{phase}|4|4|message' ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    return {**os.environ, "KUBECTL": str(script)}


def applied(tmp_path: Path) -> list[str]:
    calls = (tmp_path / "calls").read_text().splitlines()
    return [c.split("--selector ")[1] for c in calls if c.startswith("apply")]


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    outputs = K8S / "overlays" / "prod" / "cloudformation-outputs.env"
    result = run("render", "prod", TEST_IMAGE, str(outputs), str(tmp_path / "release"))
    assert result.returncode == 0, result.stderr
    return tmp_path / "release"


def test_apply_runs_config_then_migration_then_rollout(tmp_path: Path, rendered: Path) -> None:
    result = run(
        "apply", str(rendered), env=fake_kubectl(tmp_path, migration_ok=True, phase="Healthy")
    )
    assert result.returncode == 0, result.stderr
    phases = re.findall(r"--selector '([^']+)'", RELEASE.read_text())
    assert applied(tmp_path) == phases[:3]  # not the namespace: bootstrap's
    calls = (tmp_path / "calls").read_text()
    assert calls.index("delete job registro-migrate") < calls.index("component=migration")


def test_a_failed_migration_never_touches_the_rollout(tmp_path: Path, rendered: Path) -> None:
    result = run(
        "apply", str(rendered), env=fake_kubectl(tmp_path, migration_ok=False, phase="Healthy")
    )
    assert result.returncode != 0
    assert "migration failed" in result.stderr
    assert not any("component=server" in a for a in applied(tmp_path))


def test_an_aborted_canary_fails_the_release(tmp_path: Path, rendered: Path) -> None:
    result = run(
        "apply", str(rendered), env=fake_kubectl(tmp_path, migration_ok=True, phase="Degraded")
    )
    assert result.returncode != 0
    assert "rollout degraded" in result.stderr
