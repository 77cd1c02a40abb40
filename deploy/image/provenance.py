"""The SLSA provenance v1 predicate of an image built by a GitHub Actions workflow run.

    python -m deploy.image.provenance > provenance.json   (in the workflow: from GITHUB_* )

The layout is GitHub's workflow build type (https://actions.github.io/buildtypes/workflow/v1),
as actions/attest-build-provenance writes it: which repository, ref, workflow file and commit,
which runner and run. The build job passes it to `cosign attest --type slsaprovenance1`; the
drill builds one from a simulated run. Every value comes from the default variables GitHub sets
for the run (docs.github.com "Variables reference", Default environment variables); it says
what the job claims: deploy/image/verify.py checks it against the certificate, whose values
Fulcio took from the OIDC token, not from the job.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"
REQUIRED = (
    "GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_REF", "GITHUB_SHA", "GITHUB_WORKFLOW_REF",
    "GITHUB_EVENT_NAME", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "RUNNER_ENVIRONMENT",
)  # fmt: skip


def predicate(env: Mapping[str, str]) -> dict[str, Any]:
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise SystemExit(f"provenance: not in a GitHub Actions run ({', '.join(missing)} unset)")
    server, repository = env["GITHUB_SERVER_URL"], env["GITHUB_REPOSITORY"]
    # GITHUB_WORKFLOW_REF: OWNER/NAME/.github/workflows/FILE@REF
    path = env["GITHUB_WORKFLOW_REF"].removeprefix(f"{repository}/").split("@", 1)[0]
    run = f"{server}/{repository}/actions/runs/{env['GITHUB_RUN_ID']}"
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "workflow": {
                    "ref": env["GITHUB_REF"],
                    "repository": f"{server}/{repository}",
                    "path": path,
                }
            },
            "internalParameters": {
                "github": {
                    "event_name": env["GITHUB_EVENT_NAME"],
                    "repository_id": env.get("GITHUB_REPOSITORY_ID", ""),
                    "repository_owner_id": env.get("GITHUB_REPOSITORY_OWNER_ID", ""),
                    "runner_environment": env["RUNNER_ENVIRONMENT"],
                }
            },
            "resolvedDependencies": [
                {
                    "uri": f"git+{server}/{repository}@{env['GITHUB_REF']}",
                    "digest": {"gitCommit": env["GITHUB_SHA"]},
                }
            ],
        },
        "runDetails": {
            "builder": {"id": f"{server}/{env['GITHUB_WORKFLOW_REF']}"},
            "metadata": {"invocationId": f"{run}/attempts/{env['GITHUB_RUN_ATTEMPT']}"},
        },
    }


def main() -> int:
    json.dump(predicate(os.environ), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
