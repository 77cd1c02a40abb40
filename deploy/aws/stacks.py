"""The one reader of `stacks` and `environments/<env>.json`: deploy.sh, teardown.sh, the tests.
Run from the repository root as `python -m deploy.aws.stacks ...`:

    layers                              layers in dependency order
    environments                        the environments (environments/*.json)
    stack-name ENV LAYER                e.g. registro-qa-network
    value ENV KEY                       the environment's value of KEY ("" when it has none)
    outputs ENV                         KEY=VALUE of every output of the environment's stacks,
                                        and AwsRegion (deploy.aws.awscli's region rule)
    status ENV LAYER                    the stack's StackStatus, NONE when it does not exist
    output ENV LAYER KEY                the stack's output KEY, "" when the stack or the output
                                        does not exist
                                        (status, output: any other failure of the call, e.g.
                                        expired credentials, exits 1 saying why)
    parameters ENV LAYER [NAME=VALUE ...]
                                        CloudFormation --parameters JSON for that stack
    guard-parameters ENV                the environment's values for cfn-guard
    plan ENV DIR [NAME=VALUE ...]       writes DIR/<layer>.json, prints one line per step:
                                        "<layer> <stack> [<layer> <stack> ...]"
    service-accounts                    "<output> <namespace>/<name>" of each IRSA role a chart
                                        uses (service-accounts.json)

An environment file holds every parameter of every stack once; a stack receives the ones its
template declares, plus `<Layer>Stack` (the name of each stack it imports from).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

from deploy.aws import awscli

HERE = Path(__file__).resolve().parent
ENVIRONMENTS = tuple(sorted(p.stem for p in (HERE / "environments").glob("*.json")))
# The network stack's private subnets, one per Availability Zone; the cluster stack runs one
# managed node group in each (NodeGroupA..C), sized by the Node*SizePerZone values.
ZONES = 3


def steps() -> list[list[str]]:
    """The layers in dependency order, grouped: the layers of one step import nothing from each
    other, so deploy.sh creates them side by side."""
    lines = (HERE / "stacks").read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.startswith("#")]


def layers() -> list[str]:
    return [layer for step in steps() for layer in step]


def template_path(layer: str) -> Path:
    return HERE / "templates" / f"{layer}.yaml"


def environment(env: str) -> dict[str, str]:
    if env not in ENVIRONMENTS:
        raise SystemExit(f"unknown environment {env!r}; expected one of {', '.join(ENVIRONMENTS)}")
    values: dict[str, str] = json.loads((HERE / "environments" / f"{env}.json").read_text())
    return values


def node_counts(env: str) -> tuple[int, int, int]:
    """The environment's nodes over all zones: (minimum, desired, maximum)."""
    values = environment(env)
    return (
        ZONES * int(values["NodeMinSizePerZone"]),
        ZONES * int(values["NodeDesiredSizePerZone"]),
        ZONES * int(values["NodeMaxSizePerZone"]),
    )


def service_accounts() -> list[dict[str, Any]]:
    """The service accounts the IRSA roles trust: stack, role, output, namespace, name."""
    accounts: list[dict[str, Any]] = json.loads((HERE / "service-accounts.json").read_text())[
        "service_accounts"
    ]
    return accounts


def stack_name(env: str, layer: str) -> str:
    return f"{environment(env)['App']}-{env}-{layer}"


def describe(env: str, layer: str) -> dict[str, Any] | None:
    """The environment's stack of that layer as DescribeStacks describes it, None when it does
    not exist: CloudFormation answers a stack name it does not know (never created, or deleted)
    with ValidationError "Stack with id NAME does not exist"
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html,
    Errors; the AWS CLI prints it as "An error occurred (ValidationError) when calling the
    DescribeStacks operation: Stack with id NAME does not exist"). Any other failure (expired
    credentials, no access, throttling past awscli's retries) is awscli.AwsError: it is not
    "no stack"."""
    stack = stack_name(env, layer)
    try:
        answer = awscli.call("cloudformation", "describe-stacks", "--stack-name", stack)
    except awscli.AwsError as error:
        if f"Stack with id {stack} does not exist" in str(error):
            return None
        raise
    described: dict[str, Any] = answer["Stacks"][0]
    return described


def outputs(env: str, layer: str) -> dict[str, str]:
    """The outputs of the environment's stack of that layer; awscli.AwsError when it cannot be
    read (not deployed, no access)."""
    stack = stack_name(env, layer)
    answer = awscli.call("cloudformation", "describe-stacks", "--stack-name", stack)
    return output_values(answer["Stacks"][0])


def output_values(described: dict[str, Any]) -> dict[str, str]:
    """OutputKey -> OutputValue of a stack as DescribeStacks describes it."""
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def described_or_exit(env: str, layer: str) -> dict[str, Any] | None:
    """describe(), or SystemExit naming the stack and why it cannot be read."""
    try:
        return describe(env, layer)
    except awscli.AwsError as error:
        raise SystemExit(f"cannot read stack {stack_name(env, layer)}: {error}") from None


def all_outputs(env: str) -> dict[str, str]:
    """Every output of every stack of the environment, and AwsRegion (the region they are in);
    SystemExit naming the stack that cannot be read."""
    region = awscli.export_region()
    if not region:
        raise SystemExit(awscli.NO_REGION)
    found = {}
    for layer in layers():
        try:
            found |= outputs(env, layer)
        except awscli.AwsError as error:
            raise SystemExit(
                f"cannot read the outputs of stack {stack_name(env, layer)}"
                f" (deployed? make deploy-aws ENV={env}): {error}"
            ) from None
    return found | {"AwsRegion": region}


@functools.cache
def _template_loader(long_forms: bool) -> Any:
    """A SafeLoader for templates. Short-form tags (!Ref, !FindInMap...) become their long forms
    ({"Ref": X}, {"Fn::FindInMap": [...]}: what CloudFormation reads, with no cfn-lint import at
    deploy time), or None where only the plain structure matters. PyYAML is imported here: the
    names and outputs above are read by release.sh with a bare python3."""
    import yaml

    def long_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
        if isinstance(node, yaml.SequenceNode):
            return {name: loader.construct_sequence(node, deep=True)}
        if isinstance(node, yaml.MappingNode):
            return {name: loader.construct_mapping(node, deep=True)}
        return {name: loader.construct_scalar(node)}  # type: ignore[arg-type]

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", long_form if long_forms else lambda *_: None)
    return Loader


def _load_template(layer: str, long_forms: bool) -> dict[str, Any]:
    import yaml

    loader = _template_loader(long_forms)
    template: dict[str, Any] = yaml.load(template_path(layer).read_text(), Loader=loader)  # noqa: S506 (SafeLoader)
    return template


def read_template(layer: str) -> dict[str, Any]:
    """The template with its short forms in their long forms."""
    return _load_template(layer, long_forms=True)


def plain_template(layer: str) -> dict[str, Any]:
    """The template's plain structure: short-form tags read as None."""
    return _load_template(layer, long_forms=False)


def addon_pins(kubernetes_version: str) -> list[tuple[str, str | None]]:
    """(AddonName, AddonVersion) of each AWS::EKS::Addon of the cluster template at that
    Kubernetes version, read from the mapping its AddonVersion finds by KubernetesVersion; None
    where that mapping has no row for the version, or the add-on pins no version that way."""
    template = read_template("cluster")
    pins: list[tuple[str, str | None]] = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::EKS::Addon":
            continue
        properties = resource["Properties"]
        version = properties.get("AddonVersion")
        pin = None
        if isinstance(version, dict) and "Fn::FindInMap" in version:
            mapping, row, key = version["Fn::FindInMap"]
            if row == {"Ref": "KubernetesVersion"}:
                pin = template["Mappings"][mapping].get(kubernetes_version, {}).get(key)
        pins.append((properties["AddonName"], pin))
    return pins


def load_template(layer: str) -> dict[str, Any]:
    """The template as CloudFormation sees it: short forms expanded, line marks kept (cfn-lint)."""
    from cfnlint.decode import decode  # slow to import; only the tests need it

    template, matches = decode(str(template_path(layer)))
    if template is None:
        raise SystemExit(f"{template_path(layer)}: {matches}")
    return template


def template_parameters(layer: str) -> list[str]:
    return list(plain_template(layer).get("Parameters", {}))


def load_balancer_name_problem(env: str, full_name: str) -> str | None:
    """The ALB's name is pinned to <App>-<env> by the Ingress's load-balancer-name annotation, so
    the alarms' dimension app/<name>/<id> names that ALB; another name means the annotation is
    missing (the controller then names it k8s-<namespace>-<ingress>-<hash>)."""
    if not full_name:
        return None
    expected = f"{environment(env)['App']}-{env}"
    name = full_name.split("/")[1] if full_name.count("/") == 2 else ""
    if name != expected:
        return (
            f"the ALB {full_name!r} is not named {expected!r}: pin it with the Ingress annotation"
            f" alb.ingress.kubernetes.io/load-balancer-name: {expected}"
        )
    return None


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
        case ["environments"]:
            print("\n".join(ENVIRONMENTS))
        case ["stack-name", env, layer]:
            print(stack_name(env, layer))
        case ["value", env, key]:
            print(environment(env).get(key, ""))
        case ["outputs", env]:
            print("\n".join(f"{k}={v}" for k, v in all_outputs(env).items()))
        case ["status", env, layer]:
            stack = described_or_exit(env, layer)
            print(stack["StackStatus"] if stack else "NONE")
        case ["output", env, layer, key]:
            stack = described_or_exit(env, layer)
            print(output_values(stack or {}).get(key, ""))
        case ["parameters", env, layer, *assignments]:
            overrides = dict(a.split("=", 1) for a in assignments)
            chosen = parameters(env, layer, overrides)
            pairs = [{"ParameterKey": k, "ParameterValue": v} for k, v in chosen.items()]
            print(json.dumps(pairs, indent=2))
        case ["plan", env, directory, *assignments]:
            overrides = dict(a.split("=", 1) for a in assignments)
            problem = load_balancer_name_problem(env, overrides.get("LoadBalancerFullName", ""))
            if problem:
                raise SystemExit(f"stacks.py: {problem}")
            for step in steps():
                for layer in step:
                    chosen = parameters(env, layer, overrides)
                    pairs = [{"ParameterKey": k, "ParameterValue": v} for k, v in chosen.items()]
                    (Path(directory) / f"{layer}.json").write_text(json.dumps(pairs, indent=2))
                print(" ".join(f"{layer} {stack_name(env, layer)}" for layer in step))
        case ["service-accounts"]:
            for account in service_accounts():
                if account["output"]:
                    print(account["output"], f"{account['namespace']}/{account['name']}")
        case ["guard-parameters", env]:
            # Guard rules read them under EnvironmentParameters (e.g. the prod-only rules).
            print(
                json.dumps(
                    {"EnvironmentParameters": dict(environment(env), Environment=env)}, indent=2
                )
            )
        case _:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
