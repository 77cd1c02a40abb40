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
import sys
from pathlib import Path

import pytest
import yaml
from deploy.aws import stacks as aws_stacks
from k8s_support import CHARTS, K8S, REPO, TEST_IMAGE, Manifests

RELEASE = K8S / "release.sh"


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RELEASE), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


LAYERS = aws_stacks.layers()


def fake_aws(tmp_path: Path, stacks: dict[str, dict[str, str]]) -> dict[str, str]:
    """An `aws` on PATH that answers `cloudformation describe-stacks --stack-name S` with S's
    outputs as the real CLI prints them with --output json (DescribeStacks: Stacks[].Outputs[]
    of OutputKey, OutputValue)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    table = tmp_path / "stacks.json"
    table.write_text(json.dumps(stacks))
    script = bin_dir / "aws"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"stacks = json.load(open({str(table)!r}))\n"
        "if '--stack-name' not in sys.argv:\n"
        "    sys.exit(0)  # aws eks update-kubeconfig, ...\n"
        "name = sys.argv[sys.argv.index('--stack-name') + 1]\n"
        "if name not in stacks:\n"
        "    sys.exit(f'An error occurred: Stack with id {name} does not exist')\n"
        "outputs = [{'OutputKey': k, 'OutputValue': v} for k, v in stacks[name].items()]\n"
        "print(json.dumps({'Stacks': [{'StackName': name, 'Outputs': outputs}]}))\n"
    )
    script.chmod(0o755)
    return {
        **os.environ,
        # python3 is this environment's own: a pyenv shim would put its own bin (and any aws
        # there) before the stand-in on the PATH of the python3 that release.sh runs.
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "AWS_REGION": "eu-central-1",
    }


def committed_outputs(env: str) -> dict[str, str]:
    lines = (K8S / "overlays" / env / "cloudformation-outputs.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def spread(env: str, keys: list[str]) -> dict[str, dict[str, str]]:
    """The keys' outputs spread over the environment's stacks, with some outputs nobody reads."""
    layers = LAYERS
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


def test_the_region_is_the_aws_clis_own(tmp_path: Path) -> None:
    """AwsRegion is the region the AWS CLI itself would use (deploy/aws/awscli.py, the one rule):
    AWS_DEFAULT_REGION alone is enough, as it is for the CLI."""
    stacks = spread("qa", [k for k in committed_outputs("qa") if k != "AwsRegion"])
    environ = {k: v for k, v in fake_aws(tmp_path, stacks).items() if k != "AWS_REGION"}
    result = run("outputs", "qa", env={**environ, "AWS_DEFAULT_REGION": "ap-southeast-2"})
    assert "AwsRegion=ap-southeast-2" in result.stdout.splitlines(), result.stderr


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
    (line,) = result.stderr.splitlines()  # its own line, naming the stack (issue 8)
    assert line.startswith("release.sh: cannot read the outputs of stack registro-qa-data")
    assert "registro-qa-data does not exist" in line


def test_outputs_leave_no_temporary_file_behind_whether_the_stacks_are_read_or_not(
    tmp_path: Path,
) -> None:
    """outputs() keeps the AWS CLI's error in a mktemp(1) file (created in TMPDIR) to say why a
    stack cannot be read; the file goes when the stacks are read and when they cannot be."""
    stacks = spread("qa", [k for k in committed_outputs("qa") if k != "AwsRegion"])
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**fake_aws(tmp_path, stacks), "TMPDIR": str(temporary)}
    assert run("outputs", "qa", env=env).returncode == 0
    assert list(temporary.iterdir()) == []
    del stacks["registro-qa-data"]
    (tmp_path / "stacks.json").write_text(json.dumps(stacks))
    result = run("outputs", "qa", env=env)
    assert result.returncode != 0
    assert "cannot read the outputs of stack registro-qa-data" in result.stderr
    assert list(temporary.iterdir()) == []


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
            "labels": {"rollouts-pod-template-hash": f"h{revision}"},
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
        ["python3", "-m", "deploy.k8s.tools.previous_template"],
        cwd=REPO,
        input=json.dumps({"items": items}),
        capture_output=True,
        text=True,
    )


def rollout_at(revision: int, stable: int | None = None) -> dict[str, object]:
    """A Rollout at `revision` whose status.stableRS is revision `stable`'s hash (default: the
    current one, a fully promoted release)."""
    return {
        "kind": "Rollout",
        "metadata": {
            "uid": "rollout-uid",
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
        },
        "status": {"currentPodHash": f"h{revision}", "stableRS": f"h{stable or revision}"},
    }


def test_rollback_patch_goes_to_the_previous_revision() -> None:
    rollout = rollout_at(7)
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
    result = previous_template([rollout_at(1), replica_set(1, "img@sha256:only")])
    assert result.returncode != 0


@pytest.mark.parametrize("current", [6, 7])
def test_rollback_during_or_after_an_aborted_canary_goes_to_the_stable_revision(
    current: int,
) -> None:
    """Argo Rollouts keeps the revision last promoted in status.stableRS; an abort sends traffic
    back to it, and "updating the spec.template back to the previous version will fully revert
    the rollout" (argoproj/argo-rollouts pkg/kubectl-argo-rollouts/cmd/abort/abort.go, and
    docs/features/rollback.md). Release 6 was aborted, release 7 is a canary in progress: the
    highest revision below 7 is the bad 6, the stable one is 5."""
    items = [
        rollout_at(current, stable=5),
        replica_set(7, "img@sha256:canary"),
        replica_set(6, "img@sha256:aborted"),
        replica_set(5, "img@sha256:stable"),
        replica_set(4, "img@sha256:older"),
    ]
    result = previous_template(items)
    assert result.returncode == 0, result.stderr
    template = json.loads(result.stdout)["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "img@sha256:stable"


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


# The ALB the prod overlay's Ingress names (load-balancer-name: ClusterName), as ELBv2 gives it.
ALB_ARN = (
    "arn:aws:elasticloadbalancing:eu-west-1:000000000000:loadbalancer/app/registro-prod/"
    "50dc6c495c0c9188"
)


def fake_elbv2(tmp_path: Path, answers: list[str], web_acls: list[str] | None = None) -> Path:
    """An `aws` whose `elbv2 describe-load-balancers` answers, call after call, from `answers`:
    an ARN (printed, as --query ...LoadBalancerArn --output text prints it) or an error (on
    stderr, a non-zero status); the last answer repeats. `wafv2 get-web-acl-for-resource` answers
    likewise from `web_acls` (default: prod's committed WebAclArn; None is what --query
    WebACL.ARN --output text prints for a null WebACL). Its calls go to aws-calls."""
    bin_dir = tmp_path / "awsbin"
    bin_dir.mkdir(exist_ok=True)
    table = {"elbv2": answers, "wafv2": web_acls or [committed_outputs("prod")["WebAclArn"]]}
    (tmp_path / "aws-answers.json").write_text(json.dumps(table))
    script = bin_dir / "aws"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"calls = {str(tmp_path / 'aws-calls')!r}\n"
        "log = open(calls, 'a')\n"
        "log.write(' '.join(sys.argv[1:]) + '\\n'); log.close()\n"
        f"answers = json.load(open({str(tmp_path / 'aws-answers.json')!r}))[sys.argv[1]]\n"
        "seen = sum(1 for line in open(calls) if line.startswith(sys.argv[1] + ' ')) - 1\n"
        "answer = answers[min(seen, len(answers) - 1)]\n"
        "if answer.startswith('arn:') or answer == 'None':\n"
        "    print(answer)\n"
        "else:\n"
        "    sys.exit(answer)  # to stderr, status 1\n"
    )
    script.chmod(0o755)
    return bin_dir


def fake_kubectl(
    tmp_path: Path,
    migration_ok: bool,
    phase: str,
    message: str = "message",
    albs: list[str] | None = None,
    web_acls: list[str] | None = None,
) -> dict[str, str]:
    """A `kubectl` that records its calls and answers like a cluster where both ExternalSecrets
    refresh when annotated, the migration Job ends Complete or Failed (with its reason), and the
    Rollout ends in `phase` with `message` (it cannot see anything real); an `aws` that finds the
    ALB (fake_elbv2, `albs`: its answers) and its web ACL (`web_acls`)."""
    aws_bin = fake_elbv2(tmp_path, albs or [ALB_ARN], web_acls)
    calls = tmp_path / "calls"
    script = tmp_path / "kubectl"
    job = {"type": "Complete", "status": "True"}
    if not migration_ok:
        job = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
               "message": "Job has reached the specified backoff limit"}  # fmt: skip
    ready = {"type": "Ready", "status": "True", "reason": "SecretSynced"}
    secret = {"status": {"refreshTime": "2026-12-06T03:00:01Z", "conditions": [ready]}}
    job_json = json.dumps({"status": {"conditions": [job]}})
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {calls}\n'
        'case "$*" in\n'
        f"  *'get job registro-migrate -o json'*) echo '{job_json}' ;;\n"
        "  *'get externalsecret'*'jsonpath={.status.refreshTime}'*) echo 2026-12-06T03:00:00Z ;;\n"
        f"  *'get externalsecret'*'-o json'*) echo '{json.dumps(secret)}' ;;\n"
        f"  *'get rollout registro'*) echo '{phase}|4|4|{message}' ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    return {
        **os.environ, "KUBECTL": str(script), "RELEASE_TRAFFIC_RATE": "0", "ROLLOUT_TIMEOUT": "0",
        "JOB_POLL_SECONDS": "0", "PATH": f"{aws_bin}:{os.environ['PATH']}",
        "ALB_POLL_SECONDS": "0", "WAF_POLL_SECONDS": "0",
    }  # fmt: skip


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
    assert "migration Failed BackoffLimitExceeded" in result.stderr
    assert not any("component=server" in a for a in applied(tmp_path))


def test_a_failed_migration_stops_at_once_not_at_the_timeout(
    tmp_path: Path, rendered: Path
) -> None:
    """R6: a Job ends Complete or Failed (https://kubernetes.io/docs/concepts/workloads/controllers/job/#terminal-job-conditions);
    `kubectl wait --for=condition=Complete` ignores Failed and waits out its timeout. The release
    reads both conditions and stops on the first look at a Failed Job."""
    env = fake_kubectl(tmp_path, migration_ok=False, phase="Healthy")
    result = run("apply", str(rendered), env=env | {"MIGRATION_TIMEOUT": "600"}, timeout=60)
    assert result.returncode != 0
    job_reads = [c for c in calls(tmp_path) if "registro-migrate" in c and " get " in f" {c}"]
    assert len(job_reads) == 1, job_reads
    assert not [c for c in calls(tmp_path) if c.startswith("-n registro wait job")]


def test_both_external_secrets_are_refreshed_before_the_migration(
    tmp_path: Path, rendered: Path
) -> None:
    """R5: External Secrets re-reads an ExternalSecret whose annotations change (external-secrets.io
    FAQ, "Can I manually trigger a secret refresh?"): both are annotated force-sync, and their new
    refreshTime waited for, before the migration Job (which reads the owner's password)."""
    result = run("apply", str(rendered), env=fake_kubectl(tmp_path, True, "Healthy"))
    assert result.returncode == 0, result.stderr
    made = calls(tmp_path)
    migration = next(i for i, c in enumerate(made) if "component=migration" in c)
    for name in ("registro-database", "registro-database-owner"):
        annotate = next(
            i for i, c in enumerate(made) if f"annotate externalsecret {name} force-sync=" in c
        )
        assert annotate < migration, name
        assert f"externalsecret/{name}: read from Secrets Manager" in result.stdout


def test_an_inconclusive_analysis_fails_the_release_at_once(tmp_path: Path, rendered: Path) -> None:
    """R1: Argo Rollouts pauses a Rollout whose AnalysisRun is Inconclusive (argo-rollouts
    docs/features/analysis.md, "Inconclusive Runs"), phase Paused with the reason
    InconclusiveAnalysisRun as its message (utils/rollout/rolloututil.go CalculateRolloutPhase);
    the release says so instead of waiting out ROLLOUT_TIMEOUT."""
    env = fake_kubectl(tmp_path, True, "Paused", "InconclusiveAnalysisRun")
    result = run("apply", str(rendered), env=env | {"ROLLOUT_TIMEOUT": "600"}, timeout=60)
    assert result.returncode != 0
    assert "rollout paused: an analysis was inconclusive" in result.stderr


def test_a_timed_pause_step_is_waited_through(tmp_path: Path, rendered: Path) -> None:
    """The canary's own `pause: {duration}` steps also show phase Paused (reason CanaryPauseStep):
    not a reason to stop."""
    env = fake_kubectl(tmp_path, True, "Paused", "CanaryPauseStep")
    result = run("apply", str(rendered), env=env)
    assert result.returncode != 0
    assert "rollout not healthy after 0 s" in result.stderr


def test_an_aborted_canary_fails_the_release(tmp_path: Path, rendered: Path) -> None:
    result = run(
        "apply", str(rendered), env=fake_kubectl(tmp_path, migration_ok=True, phase="Degraded")
    )
    assert result.returncode != 0
    assert "rollout degraded" in result.stderr


def fake_cluster(tmp_path: Path, phase: str, rollout_json: dict[str, object]) -> dict[str, str]:
    """`kubectl` and `helm` that record their calls; kubectl answers the Rollout's phase and the
    `get rollout,replicaset -o json` list of a rollback (it cannot see anything real)."""
    calls = tmp_path / "calls"
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps(rollout_json))
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "kubectl $*" >> {calls}\n'
        'case "$*" in\n'
        f"  *'get rollout,replicaset'*) cat {listing} ;;\n"
        f"  *'jsonpath={{.status.phase}}|'*) echo '{phase}|4|4|message' ;;\n"
        f"  *'jsonpath={{.status.phase}}'*) echo '{phase}' ;;\n"
        "esac\n"
    )
    helm = tmp_path / "helm"
    helm.write_text(f'#!/usr/bin/env bash\necho "helm $*" >> {calls}\n')
    for tool in (kubectl, helm):
        tool.chmod(0o755)
    # the committed placeholder outputs, well-formed, spread over the stacks
    stacks = spread("prod", [])
    layers = list(stacks)
    for i, (key, value) in enumerate(committed_outputs("prod").items()):
        if key != "AwsRegion":
            stacks[layers[i % len(layers)]][key] = value
    (tmp_path / "aws").mkdir()
    return {
        **fake_aws(tmp_path / "aws", stacks),
        "KUBECTL": str(kubectl),
        "HELM": str(helm),
        "RELEASE_WORK": str(tmp_path / "work"),
        "ROLLOUT_TIMEOUT": "0",  # the stub Rollout never changes: one look, then give up
    }


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def test_abort_patches_the_status_subresource(tmp_path: Path) -> None:
    """The Rollout CRD has a status subresource, so the API server ignores `status` in a patch of
    the Rollout itself; the abort patch goes to the subresource, as `kubectl argo rollouts abort`
    does (argoproj/argo-rollouts pkg/kubectl-argo-rollouts/cmd/abort/abort.go: merge patch
    {"status":{"abort":true}} with subresource "status"; kubectl >= 1.24 has --subresource)."""
    listing = {
        "items": [
            rollout_at(6, stable=5),
            replica_set(6, "img@sha256:bad"),
            replica_set(5, "img@sha256:good"),
        ]
    }
    env = fake_cluster(tmp_path, "Paused", listing)
    result = run("rollback", "prod", env=env)
    assert result.returncode != 0  # the stub Rollout never turns Healthy
    made = calls(tmp_path)
    abort = [c for c in made if "patch rollout registro" in c and '"abort"' in c]
    assert abort == [
        "kubectl -n registro patch rollout registro --subresource=status --type merge "
        '-p {"status":{"abort":true}}'
    ]
    revert = [c for c in made if "--patch-file" in c]
    assert len(revert) == 1 and made.index(abort[0]) < made.index(revert[0])
    patch = json.loads((tmp_path / "work" / "rollback-patch.json").read_text())
    assert patch["spec"]["template"]["spec"]["containers"][0]["image"] == "img@sha256:good"


def test_a_healthy_rollout_is_not_aborted(tmp_path: Path) -> None:
    listing = {"items": [rollout_at(6), replica_set(6, "img@sha256:b"), replica_set(5, "a")]}
    env = fake_cluster(tmp_path, "Healthy", listing)
    result = run("rollback", "prod", env=env)
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls(tmp_path) if "--subresource" in c]


def test_bootstrap_installs_the_platform_in_order(tmp_path: Path) -> None:
    """Namespace first, then the platform's manifests, then each chart waited for, in the order
    deploy/k8s/platform/charts lists (controllers and CRDs before anything that needs them),
    then the image policies (policy-controller's ClusterImagePolicy CRD comes with its chart)."""
    env = fake_cluster(tmp_path, "Healthy", {"items": []})
    result = run("bootstrap", "prod", env=env)
    assert result.returncode == 0, result.stderr
    made = [c for c in calls(tmp_path) if c.startswith(("kubectl apply", "helm"))]
    work = tmp_path / "work" / "prod-bootstrap"
    assert made[0] == (
        f"kubectl apply -f {work}/manifests.yaml --selector app.kubernetes.io/component=namespace"
    )
    assert made[1] == f"kubectl apply -f {work}/platform/manifests.yaml"
    assert made[-1] == f"kubectl apply -f {work}/platform/policies.yaml"
    helm = made[2:-1]
    assert [c.split()[3] for c in helm] == [c.release for c in CHARTS]
    for call, chart in zip(helm, CHARTS, strict=True):
        assert call.startswith(f"helm upgrade --install {chart.release} {chart.release} "), call
        for part in (
            f"--repo {chart.repository}",
            f"--version {chart.version}",
            f"--namespace {chart.namespace}",
            f"--values {work}/platform/values/{chart.release}.yaml",
            "--wait",
            "--timeout 10m",
        ):
            assert part in call, (chart.release, part)
        values = (work / "platform" / "values" / f"{chart.release}.yaml").read_text()
        assert "${" not in values
    # The environment's GitHub repository, which is no stack output, reached the policies.
    policies = (work / "platform" / "policies.yaml").read_text()
    assert "${" not in policies
    assert f"https://github.com/{aws_stacks.environment('prod')['GitHubRepository']}/" in policies


NOT_FOUND = (
    "An error occurred (LoadBalancerNotFound) when calling the DescribeLoadBalancers operation: "
    "One or more load balancers not found"
)


def test_the_rollout_applied_names_the_albs_cloudwatch_dimension(
    tmp_path: Path, rendered: Path
) -> None:
    """R4: the canary's load-balancer-errors metric reads CloudWatch's AWS/ApplicationELB in
    dimension LoadBalancer = app/<name>/<id>, the end of the ALB's ARN (Elastic Load Balancing,
    "CloudWatch metrics for your Application Load Balancer"). The release finds the ALB by the
    name the Ingress pins (https://docs.aws.amazon.com/cli/latest/reference/elbv2/describe-load-balancers.html),
    waiting while the controller has not created it yet (LoadBalancerNotFound), and the Rollout
    it applies passes that dimension to every analysis step."""
    env = fake_kubectl(tmp_path, True, "Healthy", albs=[NOT_FOUND, NOT_FOUND, ALB_ARN])
    result = run("apply", str(rendered), env=env)
    assert result.returncode == 0, result.stderr
    lookups = [c for c in (tmp_path / "aws-calls").read_text().splitlines() if c[:6] == "elbv2 "]
    assert len(lookups) == 3
    assert all("elbv2 describe-load-balancers --names registro-prod" in c for c in lookups)
    workload = [d for d in yaml.safe_load_all((rendered / "workload.yaml").read_text()) if d]
    (rollout,) = [d for d in workload if d["kind"] == "Rollout"]
    steps = [
        s["analysis"] for s in rollout["spec"]["strategy"]["canary"]["steps"] if "analysis" in s
    ]
    assert steps
    for step in steps:
        assert {"name": "load-balancer", "value": "app/registro-prod/50dc6c495c0c9188"} in step[
            "args"
        ]
    assert "load-balancer-full-name" not in (rendered / "workload.yaml").read_text()
    server = [c for c in calls(tmp_path) if c.startswith("apply") and "component=server" in c]
    assert server and all(str(rendered / "workload.yaml") in c for c in server)


def test_no_alb_stops_the_release_before_the_migration(tmp_path: Path, rendered: Path) -> None:
    """Without the ALB the analysis could only be inconclusive: the release stops, naming it,
    after ALB_TIMEOUT, and has run no migration; any other error (AccessDenied) stops it at once."""
    env = fake_kubectl(tmp_path, True, "Healthy", albs=[NOT_FOUND]) | {"ALB_TIMEOUT": "0"}
    result = run("apply", str(rendered), env=env)
    assert result.returncode != 0
    assert "no ALB registro-prod after 0 s" in result.stderr
    assert not any("component=migration" in a for a in applied(tmp_path))

    denied = "An error occurred (AccessDenied) when calling the DescribeLoadBalancers operation"
    other = tmp_path / "denied"
    other.mkdir()
    env = fake_kubectl(other, True, "Healthy", albs=[denied]) | {"ALB_TIMEOUT": "600"}
    result = run("apply", str(rendered), env=env, timeout=60)
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr
    assert len((other / "aws-calls").read_text().splitlines()) == 1


OTHER_WEB_ACL = (
    "arn:aws:wafv2:eu-west-1:000000000000:regional/webacl/registro-qa/"
    "00000000-0000-0000-0000-000000000000"
)


@pytest.mark.parametrize(("answer", "shown"), [("None", "none"), (OTHER_WEB_ACL, OTHER_WEB_ACL)])
def test_an_alb_without_the_edge_stacks_web_acl_stops_the_release_before_the_migration(
    tmp_path: Path, rendered: Path, answer: str, shown: str
) -> None:
    """R12: an ALB the controller could not associate serves without WAF. GetWebACLForResource
    answers a null WebACL for a resource with none (AWS WAFv2 API reference,
    https://docs.aws.amazon.com/waf/latest/APIReference/API_GetWebACLForResource.html), which the
    CLI prints as None; the Ingress asks for the edge stack's WebAclArn
    (alb.ingress.kubernetes.io/wafv2-acl-arn, aws-load-balancer-controller v3.5.0
    docs/guide/ingress/annotations.md). The release waits WAF_TIMEOUT for the controller, then
    stops naming both, before any migration."""
    env = fake_kubectl(tmp_path, True, "Healthy", web_acls=[answer]) | {"WAF_TIMEOUT": "0"}
    result = run("apply", str(rendered), env=env)
    assert result.returncode != 0
    assert f"serves with web ACL '{shown}', not the edge stack's" in result.stderr, result.stderr
    assert committed_outputs("prod")["WebAclArn"] in result.stderr
    assert not any("component=migration" in a for a in applied(tmp_path))
    waf = [c for c in (tmp_path / "aws-calls").read_text().splitlines() if c[:6] == "wafv2 "]
    assert waf == [f"wafv2 get-web-acl-for-resource --resource-arn {ALB_ARN} --query WebACL.ARN "
                   "--output text"]  # fmt: skip


def test_the_release_waits_for_the_controller_to_associate_the_web_acl(
    tmp_path: Path, rendered: Path
) -> None:
    """The controller associates the web ACL after it has created the ALB (annotations.md,
    "wafv2-acl-arn"): the release asks again until it is there, then goes on."""
    expected = committed_outputs("prod")["WebAclArn"]
    env = fake_kubectl(tmp_path, True, "Healthy", web_acls=["None", "None", expected])
    result = run("apply", str(rendered), env=env)
    assert result.returncode == 0, result.stderr
    waf = [c for c in (tmp_path / "aws-calls").read_text().splitlines() if c[:6] == "wafv2 "]
    assert len(waf) == 3
    assert f"waf: ALB served behind {expected}" in result.stdout
    assert any("component=migration" in a for a in applied(tmp_path))
