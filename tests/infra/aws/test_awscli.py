"""deploy/aws/awscli.py: the one region rule and the one AWS CLI call, which deploy.sh,
teardown.sh, release.sh, preflight and restore all use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from deploy.aws import awscli

ROOT = Path(__file__).resolve().parents[3]


def profile(region: str) -> Callable[[Mapping[str, str]], str]:
    def configured(environ: Mapping[str, str]) -> str:
        return region

    return configured


@pytest.mark.parametrize(
    ("environ", "configured", "expected"),
    [
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-1"}, "ap-south-1", "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "us-east-1"}, "ap-south-1", "us-east-1"),
        ({"AWS_REGION": "", "AWS_DEFAULT_REGION": "us-east-1"}, "ap-south-1", "us-east-1"),
        ({}, "ap-south-1", "ap-south-1"),
        ({}, "", ""),
    ],
)
def test_the_region_follows_the_aws_clis_precedence(
    environ: dict[str, str], configured: str, expected: str
) -> None:
    """The AWS CLI's order (https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-envvars.html:
    AWS_REGION "overrides the values for the environment variable AWS_DEFAULT_REGION and the
    profile setting region"; a variable overrides the profile's config file, the --region option
    overrides both): AWS_REGION, AWS_DEFAULT_REGION, then the profile's `region`."""
    assert awscli.region(environ, profile(configured)) == expected


def test_the_profile_region_is_the_config_file_of_aws_profile(tmp_path: Path) -> None:
    """`aws configure get region` reads the region of the profile AWS_PROFILE names in the file
    AWS_CONFIG_FILE names (awscli customizations/configure/get.py; the pinned awscli 1.46)."""
    config = tmp_path / "config"
    config.write_text("[default]\nregion = us-east-2\n[profile ops]\nregion = eu-north-1\n")
    # the pinned awscli: the one in this test's environment (.venvs/aws)
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    environ = {"PATH": path, "AWS_CONFIG_FILE": str(config)}
    assert awscli.region(environ) == "us-east-2"
    assert awscli.region({**environ, "AWS_PROFILE": "ops"}) == "eu-north-1"
    assert awscli.region({**environ, "AWS_DEFAULT_REGION": "sa-east-1"}) == "sa-east-1"


def run_module(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "deploy.aws.awscli", *args],
        cwd=ROOT, env={**keep, **environ}, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_bash_asks_the_module_for_the_region(tmp_path: Path) -> None:
    """`python -m deploy.aws.awscli region`: the region on stdout, or the one line saying how to
    set one, exit 1 (deploy.sh and teardown.sh print it as their own)."""
    (tmp_path / "config").write_text("")
    done = run_module("region", AWS_DEFAULT_REGION="eu-west-3")
    assert (done.returncode, done.stdout, done.stderr) == (0, "eu-west-3\n", "")
    done = run_module("region", AWS_CONFIG_FILE=str(tmp_path / "config"))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip() == awscli.NO_REGION


def fake_aws(tmp_path: Path, throttled: int) -> dict[str, str]:
    """An `aws` that answers Throttling (as CloudFormation does to bursts) `throttled` times, then
    {"ok": <args>}; every call logged."""
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "aws"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib, sys\n"
        f"log = pathlib.Path({str(tmp_path / 'calls')!r})\n"
        "calls = log.read_text().count('\\n') if log.exists() else 0\n"
        "log.open('a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"if calls < {throttled}:\n"
        "    sys.exit('An error occurred (Throttling) when calling the DescribeStacks operation:"
        " Rate exceeded')\n"
        "print(json.dumps({'ok': sys.argv[1:]}))\n"
    )
    fake.chmod(0o755)
    return {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}


def test_throttling_is_retried_with_doubling_back_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in fake_aws(tmp_path, throttled=3).items():
        monkeypatch.setenv(name, value)
    slept: list[float] = []
    monkeypatch.setattr(awscli.time, "sleep", slept.append)
    assert awscli.call("cloudformation", "describe-stacks") == {
        "ok": ["cloudformation", "describe-stacks", "--output", "json"]
    }
    assert slept == [2.0, 4.0, 8.0]


def test_throttling_without_end_is_an_error_after_the_last_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in fake_aws(tmp_path, throttled=99).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(awscli.time, "sleep", lambda seconds: None)
    with pytest.raises(awscli.AwsError, match="Rate exceeded"):
        awscli.call("cloudformation", "describe-stacks")
    assert (tmp_path / "calls").read_text().count("\n") == awscli.ATTEMPTS


def test_the_retrying_command_passes_output_errors_and_exit_code_through(tmp_path: Path) -> None:
    """What deploy.sh's aws_retrying runs: the notices on stderr, awscli's own errors where
    --errors says, its output and exit code as they are."""
    environ = fake_aws(tmp_path, throttled=2)
    errors = tmp_path / "errors"
    done = run_module("retrying", "--backoff", "0", "--errors", str(errors), "s3", "ls", **environ)
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"ok": ["s3", "ls"]}
    assert done.stderr.count("throttled") == 2 and errors.read_text() == ""


def test_what_release_sh_asks_needs_only_the_standard_library() -> None:
    """release.sh runs `python3 -m deploy.aws.stacks outputs` with whatever python3 the machine
    has (no PyYAML on a CI runner's or the toolbox's): names, values and outputs import no YAML."""
    blocked = "import sys; sys.modules['yaml'] = None; "
    done = subprocess.run(
        [sys.executable, "-c", blocked + "from deploy.aws import awscli, stacks; "
         "print(stacks.stack_name('qa', 'network'), stacks.layers()[0])"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.split()[0] == "registro-qa-network"
