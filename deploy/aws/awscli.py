"""The AWS CLI, called one way, and the one rule for the region it works in.

    python -m deploy.aws.awscli region
        the region, worked out as the AWS CLI does; none: NO_REGION on stderr, exit 1
    python -m deploy.aws.awscli retrying [--backoff SECONDS] [--errors FILE] ARGS...
        `aws ARGS...`, retried with exponential back-off while AWS throttles; then its output,
        its errors (into FILE if given) and its exit code, as they are

Python callers use `call` (JSON answers, AwsError) and `export_region`. Standard library only:
release.sh runs this with the python3 it finds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

NO_REGION = "no AWS region: set AWS_REGION (e.g. AWS_REGION=eu-west-1) or run 'aws configure'"
THROTTLED = re.compile(r"Throttling|Rate exceeded|TooManyRequests")
ATTEMPTS = 6
BACKOFF_SECONDS = 2.0


class AwsError(Exception):
    """awscli failed; the message is its last error line."""


def profile_region(environ: Mapping[str, str]) -> str:
    """The `region` of the profile awscli uses (AWS_PROFILE, else default) in its config file
    (AWS_CONFIG_FILE, else ~/.aws/config): `aws configure get region` reads exactly that. No
    awscli: no region either."""
    try:
        done = subprocess.run(
            ["aws", "configure", "get", "region"],
            env=dict(environ), capture_output=True, text=True, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        return ""
    return done.stdout.strip()


def region(
    environ: Mapping[str, str] = os.environ,
    configured: Callable[[Mapping[str, str]], str] = profile_region,
) -> str:
    """The region an AWS CLI call without --region uses, "" when there is none. The AWS CLI's
    precedence (https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-envvars.html,
    AWS_REGION: "overrides the values for the environment variable AWS_DEFAULT_REGION and the
    profile setting region"; .../cli-configure-files.html, `region`): the --region option, then
    AWS_REGION, then AWS_DEFAULT_REGION, then the profile's `region`. Nothing here passes
    --region, so the rule starts at AWS_REGION; an empty variable counts as unset."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if environ.get(name):
            return environ[name]
    return configured(environ)


def export_region() -> str:
    """The region, exported as both variables for every later call: the pinned awscli v1
    (botocore's configprovider) reads AWS_DEFAULT_REGION only, other SDKs AWS_REGION."""
    found = region()
    if found:
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = found
    return found


def run_retrying(
    args: list[str],
    backoff: float = BACKOFF_SECONDS,
    notice: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> subprocess.CompletedProcess[str]:
    """`aws ARGS`, again after backoff, 2 x backoff, ... seconds while its error says AWS
    throttled it (ATTEMPTS in all); any other error is the caller's (expired credentials are not
    "no stack")."""
    delay = backoff
    for attempt in range(1, ATTEMPTS + 1):
        done = subprocess.run(["aws", *args], capture_output=True, text=True, check=False)
        if done.returncode == 0 or not THROTTLED.search(done.stderr) or attempt == ATTEMPTS:
            return done
        notice(f"   throttled (attempt {attempt}), retrying in {delay:g}s")
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def call(*args: str) -> Any:
    """awscli's JSON answer ({} for none), throttling retried; AwsError when it fails."""
    done = run_retrying([*args, "--output", "json"])
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise AwsError(lines[-1] if lines else f"aws {' '.join(args[:2])} exited {done.returncode}")
    return json.loads(done.stdout) if done.stdout.strip() else {}


def main(argv: list[str]) -> int:
    match argv:
        case ["region"]:
            found = region()
            if not found:
                print(NO_REGION, file=sys.stderr)
                return 1
            print(found)
            return 0
        case ["retrying", *rest]:
            backoff, errors = BACKOFF_SECONDS, None
            while rest[:1] in (["--backoff"], ["--errors"]) and len(rest) > 1:
                if rest[0] == "--backoff":
                    backoff = float(rest[1])
                else:
                    errors = rest[1]
                rest = rest[2:]
            done = run_retrying(rest, backoff)
            sys.stdout.write(done.stdout)
            if errors is None:
                sys.stderr.write(done.stderr)
            else:
                with open(errors, "w") as file:
                    file.write(done.stderr)
            return done.returncode
        case _:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
