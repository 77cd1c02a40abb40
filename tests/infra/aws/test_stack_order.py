"""What the stacks pass each other: the database and the cluster need nothing from each other, and
values that change are not exports."""

from __future__ import annotations

from typing import Any

from test_templates import IMPORT, exports, walk


def imported_layers(template: dict[str, Any]) -> set[str]:
    layers = set()
    for node in walk(template):
        if isinstance(node, dict) and "Fn::ImportValue" in node:
            match = IMPORT.match(node["Fn::ImportValue"].get("Fn::Sub", ""))
            assert match, node
            layers.add(match["layer"].lower())
    return layers


def test_database_and_cluster_can_be_created_side_by_side(templates: dict[str, Any]) -> None:
    """Multi-AZ RDS takes 15-25 minutes and EKS 10-15: neither stack imports from the other, so
    they can be created at the same time once security and network exist. The database's
    security group is the network stack's; the cluster stack opens it to its nodes."""
    assert imported_layers(templates["data"]) <= {"security", "network"}
    assert imported_layers(templates["cluster"]) <= {"security", "network"}
    (rule,) = [
        r
        for r in templates["cluster"]["Resources"].values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress"
    ]
    port = int(templates["data"]["Resources"]["Database"]["Properties"]["Port"])
    assert (rule["Properties"]["FromPort"], rule["Properties"]["ToPort"]) == (port, port)
    assert rule["Properties"]["GroupId"] == {
        "Fn::ImportValue": {"Fn::Sub": "${NetworkStack}-DbSecurityGroupId"}
    }
    database = templates["data"]["Resources"]["Database"]["Properties"]
    assert database["VPCSecurityGroups"] == [rule["Properties"]["GroupId"]]


def test_the_database_endpoint_is_not_an_export(templates: dict[str, Any]) -> None:
    """CloudFormation refuses to change an export another stack imports ("Exporting stack output
    values": "You can't modify or remove an output value that is referenced by another stack",
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-stack-exports.html).
    The endpoint changes when the database is restored to a new instance: it is an output,
    read from the stack (deploy/k8s/release.sh), not an export."""
    assert {"DbEndpoint", "DbPort"} <= set(templates["data"]["Outputs"])
    assert not {"DbEndpoint", "DbPort"} & exports(templates["data"])
