"""moto's server with what the rehearsal needs from CloudFormation that moto 5.2 lacks.

    python -m tests.infra.first_deploy.standins.moto_server PORT   serve on 127.0.0.1:PORT

- The smoke test's stand-ins for the types moto cannot create (EKS, ACM, WAFv2, ...) and its
  fixes of moto's models (tests/infra/aws/test_moto_smoke.py: one definition of both).
- Change sets as CloudFormation runs them: moto's execute-change-set neither resolves imports nor
  publishes outputs/exports, and has no rollback. Here a failing CREATE ends in ROLLBACK_COMPLETE
  with a CREATE_FAILED event carrying the reason, a failing UPDATE in UPDATE_ROLLBACK_COMPLETE
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/stack-failure-options.html).
- Templates read as CloudFormation reads them (cfn-lint's decoder: moto's YAML reader splits
  `!GetAtt A.B.C` wrongly).
- EKS deletes the cluster security group it made, and a deleted NAT gateway releases its network
  interface, as the real services do (moto keeps both, which would hold the VPC).
- RDS point-in-time restore: moto copies the source's settings and then applies only the truthy
  overrides, so `--no-multi-az` / `--no-deletion-protection` are lost; here they apply, as on RDS,
  whose restore is single-AZ unless asked
  (https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreDBInstanceToPointInTime.html).
  moto also copies the managed master secret, which RDS does not do for PostgreSQL
  (ManageMasterUserPassword on restore "applies to RDS for Oracle only"): removed here. moto still
  ignores RestoreTime (no data, no window: restore.py checks the window itself, and aws.py answers
  the automated backups' RestoreWindow).
- The amazon-cloudwatch-observability add-on creates its Container Insights log groups, as its
  Fluent Bit does (`auto_create_group true`,
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-setup-logs-FluentBit.html),
  so a template creating the same names fails as it would on AWS.
- Stack updates as CloudFormation runs them: a modified resource is updated after every resource
  it depends on (DependsOn, Ref, Fn::GetAtt, Fn::Sub;
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-dependson.html),
  where moto updates in template order; each resource whose properties change gets its
  UPDATE_IN_PROGRESS and UPDATE_COMPLETE events with its new properties, as DescribeStackEvents
  shows them. The stand-ins update in place (moto would set them to None: they have no update,
  and the next Fn::GetAtt of one fails with "references undefined resource").
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
from typing import Any

from cfnlint.decode import decode_str
from moto.cloudformation import models as cfn
from moto.cloudformation import parsing
from moto.ec2.models import ec2_backends
from moto.ec2.models.nat_gateways import NatGateway, NatGatewayBackend
from moto.ec2.models.route_tables import RouteTable
from moto.logs.models import logs_backends
from moto.rds.models import RDSBackend
from moto.server import ThreadedMotoServer
from tests.infra.aws import test_moto_smoke as smoke

CONTAINER_INSIGHTS_GROUPS = ("application", "dataplane", "host", "performance")


def as_cloudformation_reads_it(template: str) -> dict[str, Any]:
    decoded, matches = decode_str(template)
    if decoded is None:
        raise ValueError(f"template does not parse: {matches}")
    return json.loads(json.dumps(decoded, default=str))


def parse_change_set_template(self: Any) -> None:
    self.template_dict = as_cloudformation_reads_it(self.template)


def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
    change_set = self.describe_change_set(change_set_name)
    stack = self.stacks[change_set.stack_id]
    body = json.dumps(change_set.template_dict)
    change_set.execution_status = "EXECUTE_COMPLETE"
    if change_set.change_set_type == "CREATE":
        stack._add_stack_event("CREATE_IN_PROGRESS", resource_status_reason="User Initiated")
        stack.template, stack.template_dict = body, change_set.template_dict
        stack.cross_stack_resources = self.exports
        try:
            stack.resource_map = stack._create_resource_map()
            stack.create_resources()
            stack.output_map = stack._create_output_map()
            exports = list(stack.exports)
        except Exception as error:
            stack._add_stack_event("CREATE_FAILED", resource_status_reason=str(error))
            with contextlib.suppress(Exception):  # a rollback deletes what it can
                stack.resource_map.delete()
            stack.output_map = cfn.OutputMap(stack.resource_map, {}, stack.stack_id)
            stack.status = "ROLLBACK_COMPLETE"
            stack._add_stack_event("ROLLBACK_COMPLETE")
            return
        stack.status = "CREATE_COMPLETE"
    else:
        try:
            stack.update(body, parameters=change_set.parameters)
            exports = list(stack.exports)
        except Exception as error:
            stack._add_stack_event("UPDATE_FAILED", resource_status_reason=str(error))
            stack.status = "UPDATE_ROLLBACK_COMPLETE"
            return
    for export in exports:
        self.exports[export.name] = export


def with_log_groups(stand_in: type) -> None:
    create = stand_in.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_addon(cls, name, template, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        properties = template.get("Properties", {})
        if properties.get("AddonName") == "amazon-cloudwatch-observability":
            logs = logs_backends[account_id][region_name]
            for group in CONTAINER_INSIGHTS_GROUPS:
                name = f"/aws/containerinsights/{properties['ClusterName']}/{group}"
                if name not in logs.groups:  # Fluent Bit creates only what is missing
                    logs.create_log_group(name, tags={})
        return create(cls, name, template, account_id, region_name, **kwargs)

    stand_in.create_from_cloudformation_json = classmethod(create_addon)  # type: ignore[attr-defined]


def references(node: Any) -> set[str]:
    """The logical ids a resource's JSON names (Ref, Fn::GetAtt, Fn::Sub's ${X} and ${X.Y})."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text)}
            found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def dependency_order(resources: dict[str, Any]) -> list[str]:
    """Every logical id after those it depends on, through the resources left unchanged too."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        depends_on = resources[name].get("DependsOn", [])
        depends_on = [depends_on] if isinstance(depends_on, str) else depends_on
        for dependency in sorted((set(depends_on) | references(resources[name])) & set(resources)):
            if dependency != name:
                visit(dependency)
        order.append(name)

    for name in resources:
        visit(name)
    return order


def modified_in_dependency_order(original: Any) -> Any:
    def diff(self: Any, other_template: dict[str, Any], parameters: Any = None) -> Any:
        actions = original(self, other_template, parameters)
        modified = set(actions["Modify"])
        order = dependency_order(other_template["Resources"])
        actions["Modify"] = [name for name in order if name in modified]
        return actions

    return diff


def updated_in_place(stand_ins: list[type]) -> None:
    """The stand-ins' update: new properties on the same resource, with the stack's events."""
    for stand_in in stand_ins:

        def update(cls, original_resource, new_resource_name, cloudformation_json, account_id,  # type: ignore[no-untyped-def]
                   region_name):  # fmt: skip
            original_resource.properties = cloudformation_json.get("Properties", {})
            return original_resource

        stand_in.update_from_cloudformation_json = classmethod(update)  # type: ignore[attr-defined]
    original = parsing.parse_and_update_resource

    def parse_and_update(logical_id: str, resource_json: dict[str, Any], resources_map: Any,
                         account_id: str, region_name: str) -> Any:  # fmt: skip
        old = getattr(resources_map._parsed_resources.get(logical_id), "properties", None)
        resource = original(logical_id, resource_json, resources_map, account_id, region_name)
        if type(resource) not in stand_ins or resource.properties == old:
            return resource  # CloudFormation leaves a resource whose properties are the same
        stack = cfn.cloudformation_backends[account_id][region_name].stacks[resources_map.stack_id]
        for status in ("UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"):
            stack.events.append(cfn.Event(
                stack.stack_id, stack.name, logical_id, resource.physical_resource_id,
                resource_json["Type"], status, None, json.dumps(resource.properties),
            ))  # fmt: skip
        return resource

    parsing.parse_and_update_resource = parse_and_update


def with_cluster_security_group_deleted(stand_in: type) -> None:
    """EKS deletes the cluster security group it created with the cluster
    (https://docs.aws.amazon.com/eks/latest/userguide/sec-group-reqs.html); so does the stand-in,
    or the VPC could never be deleted."""

    def delete(self: Any, account_id: str, region_name: str) -> None:
        if self.security_group_id:
            ec2_backends[account_id][region_name].delete_security_group(
                group_id=self.security_group_id
            )

    stand_in.delete = delete  # type: ignore[attr-defined]


def delete_nat_gateway_with_its_interface(original: Any) -> Any:
    """Deleting a NAT gateway releases its network interface
    (https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-working-with.html#nat-gateway-deleting);
    moto keeps it, and the interface would hold the VPC. (moto's CloudFormation does not delete
    NAT gateways at all: NatGateway.delete below.)"""

    def delete(self: Any, nat_gateway_id: str) -> Any:
        gateway = original(self, nat_gateway_id)
        for address in self.addresses:
            if address.eni is gateway._eni:
                address.eni, address.association_id = None, None
        self.enis.pop(gateway._eni.id, None)
        return gateway

    return delete


def delete_route_table(self: Any, account_id: str, region_name: str) -> None:
    """moto's CloudFormation does not delete route tables (nor their subnet associations), which
    CloudFormation does with their stack; left, they hold the VPC."""
    self._associations.clear()
    ec2_backends[account_id][region_name].delete_route_table(self.id)


def restore_with_false_overrides(original: Any) -> Any:
    """RestoreDBInstanceToPointInTime as RDS does it for PostgreSQL: MultiAZ and
    DeletionProtection applied even when false, no managed master secret."""

    def restore(self: Any, source: str, target: str, overrides: dict[str, Any]) -> Any:
        restored = original(self, source, target, overrides)
        for name in ("multi_az", "deletion_protection"):
            if name in overrides:
                setattr(restored, name, bool(overrides[name]))
        restored.update(manage_master_user_password=False)
        return restored

    return restore


def main(port: int) -> None:
    # The smoke test's fixtures, entered and held open for the server's life.
    held = [smoke.stand_ins._get_wrapped_function()(), smoke.moto_fixes._get_wrapped_function()()]
    for fixture in held:
        next(fixture)
    with_log_groups(parsing.get_model_map()["AWS::EKS::Addon"])
    with_cluster_security_group_deleted(parsing.get_model_map()["AWS::EKS::Cluster"])
    updated_in_place([parsing.get_model_map()[name] for name in smoke.STAND_INS])
    parsing.ResourceMap.build_resource_diff = modified_in_dependency_order(
        parsing.ResourceMap.build_resource_diff
    )
    NatGatewayBackend.delete_nat_gateway = delete_nat_gateway_with_its_interface(
        NatGatewayBackend.delete_nat_gateway
    )
    NatGateway.delete = lambda self, account_id, region_name: ec2_backends[account_id][  # type: ignore[attr-defined]
        region_name
    ].delete_nat_gateway(self.id)
    RouteTable.delete = delete_route_table  # type: ignore[attr-defined]
    RDSBackend.restore_db_instance_to_point_in_time = restore_with_false_overrides(
        RDSBackend.restore_db_instance_to_point_in_time
    )
    cfn.ChangeSet._parse_template = parse_change_set_template
    cfn.CloudFormationBackend.execute_change_set = execute_change_set
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"moto on 127.0.0.1:{port}", flush=True)
    threading.Event().wait()
    del held


if __name__ == "__main__":
    main(int(sys.argv[1]))
