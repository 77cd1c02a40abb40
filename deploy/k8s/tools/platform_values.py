"""Put the stacks' outputs into the cluster platform's Helm values and manifests.

deploy/k8s/platform/values/*.yaml, manifests/*.yaml and policies/*.yaml name outputs as
${OutputKey}; this writes DIR/values/<release>.yaml, DIR/manifests.yaml and DIR/policies.yaml
(applied after the charts, whose CRDs they need) with the values of OUTPUTS (the KEY=VALUE file
`release.sh outputs` prints) and of the KEY=VALUE arguments after DIR (values that are not stack
outputs: the environment's GitHubRepository). A name with no value is an error, never an empty
string.
Usage: python3 -m deploy.k8s.tools.platform_values OUTPUTS DIR [KEY=VALUE...]
(stdlib only: release.sh runs it with python3)
"""

import re
import string
import sys
from pathlib import Path

PLATFORM = Path(__file__).resolve().parents[1] / "platform"


class Outputs(string.Template):
    idpattern = r"[A-Z][A-Za-z0-9]*"
    flags = re.ASCII


def read_outputs(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def fill(path: Path, outputs: dict[str, str]) -> str:
    try:
        return Outputs(path.read_text()).substitute(outputs)
    except KeyError as missing:
        raise SystemExit(
            f"platform: {path.name} needs output {missing}, not in the outputs"
        ) from None
    except ValueError as bad:
        raise SystemExit(f"platform: {path.name}: {bad}") from None


def main(outputs_file: str, out_dir: str, *values: str) -> int:
    outputs = read_outputs(Path(outputs_file)) | dict(v.split("=", 1) for v in values)
    out = Path(out_dir)
    (out / "values").mkdir(parents=True, exist_ok=True)
    for values in sorted((PLATFORM / "values").glob("*.yaml")):
        (out / "values" / values.name).write_text(fill(values, outputs))
    manifests = [fill(m, outputs) for m in sorted((PLATFORM / "manifests").glob("*.yaml"))]
    (out / "manifests.yaml").write_text("---\n".join(manifests))
    policies = [fill(m, outputs) for m in sorted((PLATFORM / "policies").glob("*.yaml"))]
    (out / "policies.yaml").write_text("---\n".join(policies))
    print(f"platform: rendered {out}/values, {out}/manifests.yaml and {out}/policies.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
