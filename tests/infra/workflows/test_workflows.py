"""The pipelines stay thin and safe: what zizmor and actionlint do not check.

Every `run:` step is one `make` target that the Makefile defines (so a person can run it
locally), every action is pinned by commit, each workflow starts with no permissions, releases
are serialised per environment, and production sits behind its environment with a rollback job
that does not.

GitHub behaviour relied on (pinned by the tests below, each naming its source):

- Concurrency: "at most one running and one pending job in a concurrency group at any time"; a
  newly queued job replaces (cancels) the pending one; `cancel-in-progress: true` also cancels
  the running one
  (https://docs.github.com/en/actions/how-tos/write-workflows/choose-when-workflows-run/control-workflow-concurrency).
- Environments: "Deployment protection rules require specific conditions to pass before a job
  referencing the environment can proceed"; required reviewers hold every such job
  (https://docs.github.com/en/actions/reference/workflows-and-actions/deployments-and-environments).
- OIDC: a job referencing an environment gets `sub: repo:OWNER/REPO:environment:NAME`
  (https://docs.github.com/en/actions/reference/security/oidc), which the ci stack's trust
  policy matches.
- Job outputs pass values to the jobs that `need` it
  (https://docs.github.com/en/actions/how-tos/write-workflows/choose-what-workflows-do/pass-job-outputs);
  re-running failed jobs keeps the outputs of the jobs not re-run and the run's artifacts
  (https://docs.github.com/en/actions/how-tos/manage-workflow-runs/re-run-workflows-and-jobs).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
DEPLOY = REPO / ".github" / "workflows" / "deploy.yml"
ROLLBACK = REPO / ".github" / "workflows" / "rollback.yml"
ROLLBACK_SUFFIX = "-rollback"  # the ci stack's role trusts <environment> and <environment>-rollback


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    # PyYAML reads the bare key `on` as the boolean True.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def steps(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, spec in doc["jobs"].items() for step in spec["steps"]]


def make_targets() -> set[str]:
    database = subprocess.run(
        ["make", "-pRrq", "-f", "Makefile", ":"], cwd=REPO, capture_output=True, text=True
    ).stdout
    return set(re.findall(r"^([a-zA-Z][\w-]*):", database, re.M))


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "deploy.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_is_one_make_target(path: Path) -> None:
    targets = make_targets()
    for job, step in steps(load(path)):
        if "run" not in step:
            continue
        words = shlex.split(step["run"])
        assert words[0] == "make" and "\n" not in step["run"].strip(), (job, step["run"])
        named = [w for w in words[1:] if "=" not in w]
        assert len(named) == 1, (job, step["run"])
        assert named[0] in targets, f"{path.name} {job}: `make {named[0]}` is not in the Makefile"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit(path: Path) -> None:
    for job, step in steps(load(path)):
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), (job, step["uses"])


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_permissions_unless_a_job_asks(path: Path) -> None:
    doc = load(path)
    assert doc["permissions"] == {}
    for job, spec in doc["jobs"].items():
        permissions = spec.get("permissions", {})
        assert set(permissions.items()) <= {("contents", "read"), ("id-token", "write")}, job
        assert "timeout-minutes" in spec, job
    assert "AWS_ACCESS_KEY_ID" not in path.read_text()
    assert "aws-secret-access-key" not in path.read_text()


def test_deploy_goes_qa_then_approved_production_with_rollback() -> None:
    doc = load(REPO / ".github" / "workflows" / "deploy.yml")
    assert doc["on"] == {"push": {"branches": ["main"]}}
    jobs = doc["jobs"]
    assert jobs["qa"]["environment"]["name"] == "qa"
    assert jobs["production"]["needs"] == "qa"
    assert jobs["production"]["environment"]["name"] == "production"
    rollback = jobs["rollback-production"]
    assert rollback["needs"] == "production" and "failure()" in rollback["if"]
    runs = {job: [s.get("run", "") for s in spec["steps"]] for job, spec in jobs.items()}
    assert any("deploy-k8s ENV=qa" in r for r in runs["qa"])
    assert any("smoke" in r for r in runs["qa"])
    assert any("deploy-k8s ENV=prod" in r for r in runs["production"])
    assert any("rollback-k8s ENV=prod" in r for r in runs["rollback-production"])
    assert "id-token" not in jobs["build"]["permissions"], "the build needs no AWS access"
    for job in ("qa", "production", "rollback-production"):
        assert jobs[job]["permissions"]["id-token"] == "write", job
    assert jobs["rollback-production"]["environment"]["name"] == "production" + ROLLBACK_SUFFIX
    # one build; each environment publishes those bytes, then deploys them; QA signs them first
    for job, env, signing in (("qa", "qa", ["sign-image"]), ("production", "prod", [])):
        order = [r.split()[1] for r in runs[job] if r]
        assert order[:4 + len(signing)] == [
            "kubectl", "image-load", "publish-image", *signing, "deploy-k8s",
        ], order  # fmt: skip
        assert any(f"publish-image ENV={env} " in r for r in runs[job]), runs[job]


def test_qa_signs_the_digest_it_published_with_cosign_v2_before_deploying() -> None:
    """Keyless signing needs the job's OIDC token (id-token: write; docs.github.com "About
    security hardening with OpenID Connect"); cosign v2 writes the sha256-<hex>.sig/.att tags
    policy-controller 0.13 reads, where cosign v3 writes OCI referrers (sigstore/cosign v3
    release notes; falcosecurity/plugins#1211). Production signs nothing: it copies QA's
    signatures with the manifest (deploy/image/publish.py)."""
    jobs = load(REPO / ".github" / "workflows" / "deploy.yml")["jobs"]
    steps = jobs["qa"]["steps"]
    (installer,) = [s for s in steps if s.get("uses", "").startswith("sigstore/cosign-installer@")]
    assert re.fullmatch(r"sigstore/cosign-installer@[0-9a-f]{40}", installer["uses"])
    assert re.fullmatch(r"v2\.\d+\.\d+", installer["with"]["cosign-release"])
    (sign,) = [s for s in steps if "make sign-image" in s.get("run", "")]
    assert sign["run"] == 'make sign-image ENV=qa IMAGE="$REPOSITORY@$DIGEST" TAG="$GITHUB_SHA"'
    assert sign["env"] == {
        "REPOSITORY": "${{ steps.publish.outputs.repository }}",
        "DIGEST": "${{ steps.publish.outputs.digest }}",
    }
    assert steps.index(installer) < steps.index(sign)
    production = " ".join(str(s) for s in jobs["production"]["steps"])
    assert "cosign" not in production and "sign-image" not in production
    assert "COPY_FROM=" in production


def test_ci_runs_on_pull_requests_and_main() -> None:
    doc = load(REPO / ".github" / "workflows" / "ci.yml")
    assert "pull_request" in doc["on"] and doc["on"]["push"] == {"branches": ["main"]}
    runs = " ".join(s.get("run", "") for _, s in steps(doc))
    for target in (
        "lint", "facts-check", "test", "verify-aws", "verify-k8s", "verify-workflows",
        "verify-signing",
    ):  # fmt: skip
        assert re.search(rf"make {target}\b", runs), target
    for target in ("image", "e2e", "sbom"):
        assert re.search(rf"make {target}\b", runs), target


# ---- concurrency, environments, the tested digest, the cluster's endpoint ---------------------


def environment_names(job: dict[str, Any], inputs: dict[str, list[str]]) -> set[str]:
    """The environment names a job can reference, `${{ inputs.X }}` expanded over its options."""
    name = job.get("environment", {}).get("name")
    if name is None:
        return set()
    match = re.search(r"\$\{\{\s*inputs\.(\w+)\s*\}\}", name)
    if not match:
        return {name}
    return {name.replace(match[0], option) for option in inputs[match[1]]}


def dispatch_options(doc: dict[str, Any]) -> dict[str, list[str]]:
    dispatch = (doc["on"] or {}).get("workflow_dispatch") or {}
    return {k: v.get("options", []) for k, v in (dispatch.get("inputs") or {}).items()}


def expand(value: str, inputs: dict[str, list[str]]) -> list[str]:
    match = re.search(r"\$\{\{\s*inputs\.(\w+)\s*\}\}", value)
    if not match:
        return [value]
    return [value.replace(match[0], option) for option in inputs[match[1]]]


def release_jobs() -> list[tuple[str, str, dict[str, Any], dict[str, list[str]]]]:
    """(workflow, job id, job, dispatch inputs) for every job that references an environment."""
    found = []
    for path in WORKFLOWS:
        doc = load(path)
        for job_id, job in doc["jobs"].items():
            if "environment" in job:
                found.append((path.name, job_id, job, dispatch_options(doc)))
    return found


def github_environments() -> set[str]:
    """The GitHub environments the ci stacks' deploy roles trust (deploy/aws/environments), and
    the bootstrap stack's infrastructure role (deploy/aws/bootstrap.yaml: `infrastructure-<env>`
    for its Environment, one of the environments)."""
    names = set()
    for path in (REPO / "deploy" / "aws" / "environments").glob("*.json"):
        name = json.loads(path.read_text())["GitHubEnvironment"]
        names |= {name, name + ROLLBACK_SUFFIX, f"infrastructure-{path.stem}"}
    return names


def test_every_environment_is_one_a_deploy_role_trusts() -> None:
    """A job naming an environment no role trusts gets no AWS session: its first step fails."""
    trusted = github_environments()
    used = set()
    for _, _, job, inputs in release_jobs():
        used |= environment_names(job, inputs)
    assert used and used <= trusted, used - trusted
    assert {"qa", "production", "production" + ROLLBACK_SUFFIX} <= used


def test_no_workflow_wide_group_where_environments_are_changed() -> None:
    """A workflow-level group holds a whole run, so QA of a newer commit waited for the older
    run's production approval, and commits queued in between were cancelled as pending."""
    for path in (DEPLOY, ROLLBACK):
        assert "concurrency" not in load(path), path.name


def test_each_release_job_has_its_environments_group_and_is_never_cancelled() -> None:
    """One running and one pending per group: a group per environment and kind (deploy or
    rollback). `cancel-in-progress` stays false: a migration or canary is never cut half-way."""
    for workflow, job_id, job, inputs in release_jobs():
        concurrency = job.get("concurrency")
        assert concurrency, f"{workflow} {job_id}: no concurrency group"
        assert concurrency["cancel-in-progress"] is False, (workflow, job_id)
        groups = set(expand(concurrency["group"], inputs))
        environments = environment_names(job, inputs)
        assert len(groups) == len(environments), (workflow, job_id, groups)


def groups_by_job() -> dict[tuple[str, str], set[str]]:
    return {
        (workflow, job_id): set(expand(job["concurrency"]["group"], inputs))
        for workflow, job_id, job, inputs in release_jobs()
    }


def test_qa_never_waits_behind_production() -> None:
    groups = groups_by_job()
    assert groups[("deploy.yml", "qa")].isdisjoint(groups[("deploy.yml", "production")])


def test_rollbacks_never_wait_behind_a_deploy() -> None:
    """The group a deploy job holds while its environment's reviewers decide is never a
    rollback's group, and rollbacks of one environment (automatic, manual) share one group."""
    groups = groups_by_job()
    deploy_groups = groups[("deploy.yml", "qa")] | groups[("deploy.yml", "production")]
    automatic = groups[("deploy.yml", "rollback-production")]
    manual = groups[("rollback.yml", "rollback")]
    assert automatic.isdisjoint(deploy_groups) and manual.isdisjoint(deploy_groups)
    assert automatic <= manual, "the manual production rollback queues with the automatic one"


def test_rollbacks_reference_only_rollback_environments() -> None:
    """Reviewers of `production` would hold a rollback job as they hold the deploy: every
    rollback job runs in `<environment>-rollback` instead (no reviewers, main only)."""
    for workflow, job_id, job, inputs in release_jobs():
        names = environment_names(job, inputs)
        if "rollback" in job_id:
            assert all(n.endswith(ROLLBACK_SUFFIX) for n in names), (workflow, job_id, names)
        else:
            assert not any(n.endswith(ROLLBACK_SUFFIX) for n in names), (workflow, job_id, names)
        runs = " ".join(s.get("run", "") for s in job["steps"])
        assert ("rollback-k8s" in runs) == ("rollback" in job_id), (workflow, job_id)
        assert "deploy-k8s" not in runs or "rollback" not in job_id, (workflow, job_id)


def step(job: dict[str, Any], target: str) -> dict[str, Any]:
    (found,) = [s for s in job["steps"] if s.get("run", "").split()[1:2] == [target]]
    return found


def test_production_deploys_the_digest_qa_deployed() -> None:
    """QA's job outputs the digest it published and deployed; production's publish step must
    find exactly that digest under the commit's tag before deploy-k8s runs (publish.py fails
    otherwise: tests/infra/workflows/test_publish_image.py)."""
    jobs = load(DEPLOY)["jobs"]
    qa, production = jobs["qa"], jobs["production"]
    assert step(qa, "publish-image")["id"] == "publish"
    assert qa["outputs"]["digest"] == "${{ steps.publish.outputs.digest }}"
    publish = step(production, "publish-image")
    assert 'EXPECT_DIGEST="$QA_DIGEST"' in publish["run"]
    assert publish["env"]["QA_DIGEST"] == "${{ needs.qa.outputs.digest }}"
    # R15: copied from QA's repository by digest, not pushed again (test_publish_image.py).
    assert 'COPY_FROM="$QA_REPOSITORY"' in publish["run"]
    assert publish["env"]["QA_REPOSITORY"] == "${{ needs.qa.outputs.repository }}"
    assert qa["outputs"]["repository"] == "${{ steps.publish.outputs.repository }}"
    assert '--copy-from "111.dkr"' in publish_recipe(
        "EXPECT_DIGEST=sha256:" + "c" * 64, "COPY_FROM=111.dkr"
    )
    assert production["needs"] == "qa"
    order = [s.get("run", "").split()[1:2] for s in production["steps"]]
    assert order.index(["publish-image"]) < order.index(["deploy-k8s"])


def publish_recipe(*extra: str) -> str:
    return " ".join(
        subprocess.run(
            ["make", "-n", "publish-image", "ENV=prod", "TAG=abc1234", *extra],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.replace("\\\n", " ")
        .split()
    )


@pytest.mark.parametrize("digest", ["sha256:" + "c" * 64, ""])
def test_publish_image_hands_the_expected_digest_to_the_publisher(digest: str) -> None:
    """Even an empty one (a missing job output): publish.py refuses it, the check is not skipped."""
    recipe = publish_recipe(f"EXPECT_DIGEST={digest}")
    publisher = 'deploy.image.publish "$repository" registro:abc1234'
    assert f'{publisher} --expect-digest "{digest}"' in recipe
    assert "--expect-digest" not in publish_recipe()


def test_automatic_rollback_only_after_the_release_reached_production() -> None:
    """A rejected approval also fails the job; with no digest output, nothing reached the
    Rollout (release.sh's own check would look the tag up in an ECR that never had it)."""
    rollback = load(DEPLOY)["jobs"]["rollback-production"]
    assert "needs.production.outputs.digest != ''" in rollback["if"]
    assert load(DEPLOY)["jobs"]["production"]["outputs"]["digest"] == (
        "${{ steps.publish.outputs.digest }}"
    )


CIDR = re.compile(r"\b\d{1,3}(\.\d{1,3}){3}/\d{1,2}\b")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_workflow_assumes_an_endpoint_allow_list(path: Path) -> None:
    """Hosted runners' addresses are GitHub's thousands of ranges, beyond EKS's allow-list limit;
    GitHub advises against IP allow-lists for them
    (https://docs.github.com/en/actions/using-github-hosted-runners/about-github-hosted-runners#ip-addresses).
    The pipelines reach the public endpoint authenticated by IAM only
    (docs/decisions/pipeline-cluster-access.md): nothing here names or changes CIDRs."""
    text = path.read_text()
    for needle in ("PublicEndpointCidrs", "publicAccessCidrs", "update-cluster-config", "/meta"):
        assert needle not in text, (path.name, needle)
    assert not CIDR.search(text), (path.name, CIDR.search(text))
    for job_id, job in load(path)["jobs"].items():
        runs = " ".join(s.get("run", "") for s in job["steps"])
        if re.search(r"make (deploy-k8s|rollback-k8s|publish-image)\b", runs):
            credentials = [
                s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")
            ]
            assert len(credentials) == 1, job_id
            assert set(credentials[0]["with"]) == {"role-to-assume", "aws-region"}, job_id
            assert job["permissions"]["id-token"] == "write", job_id


def test_the_infrastructure_job_has_the_tools_verify_k8s_needs() -> None:
    """R14: verify-k8s needs promtool and amtool (tools/tools.txt), which GitHub's ubuntu-24.04
    runner image does not include (actions/runner-images images/ubuntu/Ubuntu2404-Readme.md lists
    no Prometheus tools): a job that runs verify-k8s fetches them first."""
    tools = {
        line.split("|")[0].strip(): line.split("|")[1]
        for line in (REPO / "tools" / "tools.txt").read_text().splitlines()
        if "|" in line and not line.startswith(("#", "@"))
    }
    assert "verify-k8s" in tools["promtool"] and "verify-k8s" in tools["amtool"]
    for path in WORKFLOWS:
        for job, spec in load(path)["jobs"].items():
            runs = [s["run"] for s in spec["steps"] if "run" in s]
            verify = [i for i, r in enumerate(runs) if r.split()[:2] == ["make", "verify-k8s"]]
            if verify:
                fetched = [i for i, r in enumerate(runs) if r == "make prometheus-tools"]
                assert fetched and fetched[0] < verify[0], (path.name, job)


def test_every_job_that_needs_kubectl_installs_the_clusters_own_first() -> None:
    """A GitHub-hosted runner ships the kubectl of the newest stable minor when its image was
    built (actions/runner-images images/ubuntu/scripts/build/install-kubernetes-tools.sh: the
    minor of dl.k8s.io/release/stable.txt). That leaves the one minor of skew kubectl supports
    with the clusters (https://kubernetes.io/releases/version-skew-policy/#kubectl) once
    Kubernetes releases the minor after next, and every verb whose group needs kubectl
    (tools/tools.txt) would stop. A job that runs one runs `make kubectl` (the pinned one) first."""
    lines = (REPO / "tools" / "tools.txt").read_text().splitlines()
    groups = {
        g.strip(): set(t.split())
        for g, t in (line[1:].split("|") for line in lines if line.startswith("@"))
    }
    kubectl = next(line for line in lines if line.split("|")[0].strip() == "kubectl")
    needing = {g for g in kubectl.split("|")[1].strip().split(",") if not g.endswith("?")}
    assert needing == {"verify-k8s", "deploy"}
    targets = set().union(*(groups[g] for g in needing))
    checked = 0
    for path in WORKFLOWS:
        for job, spec in load(path)["jobs"].items():
            runs = [s["run"].split() for s in spec["steps"] if "run" in s]
            uses = [i for i, r in enumerate(runs) if r[:1] == ["make"] and r[1] in targets]
            if uses:
                checked += 1
                installed = [i for i, r in enumerate(runs) if r == ["make", "kubectl"]]
                assert installed and installed[0] < uses[0], (path.name, job)
    assert checked == 6
