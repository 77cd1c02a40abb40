"""The one reader of `stacks` and `environments/<env>.json`, used by deploy.sh, teardown.sh and the tests.

    python stacks.py layers                      layers in dependency order
    python stacks.py stack-name ENV LAYER        e.g. registro-qa-network
    python stacks.py parameters ENV LAYER [NAME=VALUE ...]
                                                 CloudFormation --parameters JSON for that stack
    python stacks.py guard-parameters ENV        the environment's values for cfn-guard (--input-params)

An environment file holds every parameter of every stack once; a stack receives the ones its
template declares, plus `<Layer>Stack` (the name of each stack it imports from).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

HERE = Path(__file__).resolve().parent
ENVIRONMENTS = ("qa", "prod")


def layers() -> list[str]:
    lines = (HERE / "stacks").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def template_path(layer: str) -> Path:
    return HERE / "templates" / f"{layer}.yaml"


def environment(env: str) -> dict[str, str]:
    if env not in ENVIRONMENTS:
        raise SystemExit(f"unknown environment {env!r}; expected one of {', '.join(ENVIRONMENTS)}")
    values: dict[str, str] = json.loads((HERE / "environments" / f"{env}.json").read_text())
    return values


def stack_name(env: str, layer: str) -> str:
    return f"{environment(env)['App']}-{env}-{layer}"


def load_template(layer: str) -> dict[str, Any]:
    template, matches = decode(str(template_path(layer)))
    if template is None:
        raise SystemExit(f"{template_path(layer)}: {matches}")
    return template


def template_parameters(layer: str) -> list[str]:
    return list(load_template(layer).get("Parameters", {}))


def parameters(env: str, layer: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    values = dict(environment(env), Environment=env) | (overrides or {})
    values |= {f"{other.capitalize()}Stack": stack_name(env, other) for other in layers()}
    declared = template_parameters(layer)
    missing = [name for name in declared if name not in values]
    if missing:
        # Defaults are not used for environment choices: every value is stated in environments/.
        raise SystemExit(f"{layer}: environments/{env}.json lacks {', '.join(missing)}")
    return {name: str(values[name]) for name in declared}


def main(argv: list[str]) -> None:
    match argv:
        case ["layers"]:
            print("\n".join(layers()))
        case ["stack-name", env, layer]:
            print(stack_name(env, layer))
        case ["parameters", env, layer, *assignments]:
            overrides = dict(a.split("=", 1) for a in assignments)
            chosen = parameters(env, layer, overrides)
            pairs = [{"ParameterKey": k, "ParameterValue": v} for k, v in chosen.items()]
            print(json.dumps(pairs, indent=2))
        case ["guard-parameters", env]:
            # Guard rules read them under EnvironmentParameters (e.g. the prod-only rules).
            print(json.dumps({"EnvironmentParameters": dict(environment(env), Environment=env)}, indent=2))
        case _:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
