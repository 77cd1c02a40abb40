"""restore.py offline: what it relies on in the RDS API as the pinned awscli models it (botocore's
service and waiter models), its names, and the check Job it derives from the rendered Rollout.
The calls themselves are rehearsed against moto in test_rehearsal.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore import xform_name
from deploy.aws import restore

ROOT = Path(__file__).resolve().parents[3]

RDS = botocore.session.get_session().get_service_model("rds")
# RDS's rule for DB instance identifiers (API_RestoreDBInstanceToPointInTime.html,
# TargetDBInstanceIdentifier): 1-63 letters, digits, hyphens; a letter first; no "--" nor "-" last.
IDENTIFIER = re.compile(r"^(?!.*--)[a-zA-Z][a-zA-Z0-9-]{0,62}(?<!-)$")
SOURCE = {
    "DBInstanceIdentifier": "registro-prod", "DBInstanceClass": "db.m7g.large",
    "DBSubnetGroup": {"DBSubnetGroupName": "registro-prod-dbsubnetgroup-abc"},
    "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-2"}, {"VpcSecurityGroupId": "sg-1"}],
    "DBParameterGroups": [{"DBParameterGroupName": "registro-prod-dbparametergroup-abc"}],
    "StorageType": "gp3", "BackupRetentionPeriod": 14, "DeletionProtection": True,
    "MaxAllocatedStorage": 500, "IAMDatabaseAuthenticationEnabled": True,
}  # fmt: skip


def test_the_failure_states_are_those_of_the_db_instance_available_waiter() -> None:
    """restore.py polls itself (a bound of its own, no 30-minute waiter) but stops on the same
    states as `aws rds wait db-instance-available`
    (https://docs.aws.amazon.com/cli/latest/reference/rds/wait/db-instance-available.html,
    botocore data/rds/2014-10-31/waiters-2.json)."""
    waiter = (
        botocore.session.get_session().get_waiter_model("rds").get_waiter("DBInstanceAvailable")
    )
    failures = {a.expected for a in waiter.acceptors if a.state == "failure"}
    successes = {a.expected for a in waiter.acceptors if a.state == "success"}
    assert failures == set(restore.FAILED_STATES)
    assert successes == {"available"}


def test_the_earliest_restorable_time_is_in_the_automated_backups_only() -> None:
    """DescribeDBInstances gives LatestRestorableTime but no earliest time
    (https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DBInstance.html); the window is
    DescribeDBInstanceAutomatedBackups' RestoreWindow
    (https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreWindow.html)."""
    instance = RDS.shape_for("DBInstance").members
    assert "LatestRestorableTime" in instance
    assert not [name for name in instance if name.startswith("Earliest")]
    assert set(RDS.shape_for("RestoreWindow").members) == {"EarliestTime", "LatestTime"}
    assert "RestoreWindow" in RDS.shape_for("DBInstanceAutomatedBackup").members


def test_the_restore_passes_what_rds_would_otherwise_default_with_real_options() -> None:
    """A restore gets "the default security group, the default subnet group, and the default DB
    parameter group" and is single-AZ by default
    (https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreDBInstanceToPointInTime.html):
    each is passed, and every option is a parameter of the pinned awscli's operation."""
    moment = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    arguments = restore.restore_arguments(SOURCE, "registro-prod-restore-x", moment, {"a": "b"})
    assert arguments[:2] == ["rds", "restore-db-instance-to-point-in-time"]
    options = {a.removeprefix("--no-") if a.startswith("--no-") else a[2:]
               for a in arguments if a.startswith("--")}  # fmt: skip
    members = RDS.operation_model("RestoreDBInstanceToPointInTime").input_shape.members
    assert options <= {xform_name(name, "-") for name in members}
    for option, value in [("--db-subnet-group-name", "registro-prod-dbsubnetgroup-abc"),
                          ("--db-parameter-group-name", "registro-prod-dbparametergroup-abc"),
                          ("--restore-time", "2026-12-01T10:00:00Z")]:  # fmt: skip
        assert arguments[arguments.index(option) + 1] == value
    groups = arguments.index("--vpc-security-group-ids")
    assert arguments[groups + 1 : groups + 3] == ["sg-1", "sg-2"]
    assert {"--no-multi-az", "--deletion-protection", "--no-publicly-accessible"} <= set(arguments)


@pytest.mark.parametrize("env", ["qa", "prod"])
def test_the_longest_names_are_valid_identifiers(env: str) -> None:
    """The App parameter allows 21 characters (templates/data.yaml); the instance's name and the
    check Job's (a label value: at most 63) must fit."""
    source = f"{'a' * 21}-{env}"
    name = restore.instance_name(source, datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert IDENTIFIER.match(name), name
    assert len(f"{name}-check") <= 63


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("2026-12-01T10:00:00Z", None),
        ("2026-12-01T10:00:01Z", "is in the future"),
        ("2026-12-01T10:00:00", "is not ISO 8601 UTC"),
        ("2026-12-01T10:00:00+01:00", "is not ISO 8601 UTC"),
        ("2026-12-01 10:00", "is not ISO 8601 UTC"),
        ("2026-12-01T10:00:00.5Z", "is not ISO 8601 UTC"),
        ("2026-13-01T10:00:00Z", "is not a date"),
    ],
)
def test_a_time_is_utc_to_the_second_and_not_in_the_future(text: str, refused: str | None) -> None:
    """RestoreTime "must be a time in Universal Coordinated Time (UTC) format", e.g.
    2009-09-07T23:45:00Z (API_RestoreDBInstanceToPointInTime.html)."""
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    if refused is None:
        assert restore.parse_time(text, now) == now
        return
    with pytest.raises(restore.Refused, match=refused):
        restore.parse_time(text, now)


def test_the_window_includes_its_ends() -> None:
    earliest = datetime(2026, 11, 17, 2, 0, tzinfo=UTC)
    latest = earliest + timedelta(days=14)
    for moment in (earliest, latest):
        restore.check_window(moment, earliest, latest, "registro-prod")
    with pytest.raises(restore.Refused, match="outside registro-prod's restorable window"):
        restore.check_window(latest + timedelta(seconds=1), earliest, latest, "registro-prod")


@pytest.mark.parametrize(
    ("outcome", "log", "refused"),
    [
        ("Complete", "schema is current (0004)\nnewest change: 2026-12-01T09:59:59+00:00", None),
        ("Complete", "schema is current (0004)\nnewest change: none", None),
        ("Complete", "newest change: 2026-12-01T10:00:01.5+00:00", "is after TIME"),
        ("Complete", "schema is current (0004)", "printed no 'newest change:' line"),
        ("Failed", "schema is at 0003, latest is 0004: run `registro migrate`", "failed"),
    ],
)
def test_the_verdict_on_the_check_jobs_log(outcome: str, log: str, refused: str | None) -> None:
    """restore_check.py's lines (tests/integration/test_restore_check.py runs it): the newest
    audit entry must not be after TIME, or the copy is not of TIME."""
    moment = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    problems = restore.verdict("job", outcome, log, moment)
    if refused is None:
        assert problems == []
    else:
        (problem,) = problems
        assert refused in problem


def rendered(env: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / env)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_the_check_job_is_the_rollouts_pod_with_the_egress_to_the_database() -> None:
    """The Job reuses the server pod's image, login and security settings, and its labels put it
    under the egress policy that opens PostgreSQL (deploy/k8s/base/network-policy.yaml), not
    under the server's ingress policy or selector (it must take no traffic)."""
    objects = rendered("prod")
    (rollout,) = [o for o in objects if o["kind"] == "Rollout"]
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "NetworkPolicy"}
    job = restore.check_job(rollout, "registro-prod-restore-20261201-100000-check", "db.internal")
    pod, server = job["spec"]["template"], rollout["spec"]["template"]
    (container,), (serving,) = pod["spec"]["containers"], server["spec"]["containers"]
    labels = pod["metadata"]["labels"]
    assert selects(policies["registro-egress"]["spec"]["podSelector"], labels)
    assert not selects(policies["registro-ingress"]["spec"]["podSelector"], labels)
    assert not selects(rollout["spec"]["selector"], labels)
    for key in ("securityContext", "serviceAccountName", "volumes", "automountServiceAccountToken"):
        assert pod["spec"][key] == server["spec"][key], key
    for key in ("image", "envFrom", "securityContext", "volumeMounts", "resources"):
        assert container[key] == serving[key], key
    assert {"name": "RESTORED_ADDRESS", "value": "db.internal"} in container["env"]
    assert not {"ports", "readinessProbe", "livenessProbe", "startupProbe"} & set(container)
    assert pod["spec"]["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    assert json.loads(json.dumps(job)) == job  # what kubectl apply -f receives


def test_a_bad_duration_is_refused_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deploy.aws.restore", "qa", "2026-12-01T10:00:00Z"], cwd=ROOT,
        env={"RESTORE_TIMEOUT": "3h", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "restore.py: RESTORE_TIMEOUT='3h' must be a whole number of seconds"
    ]


def test_no_region_is_refused_in_one_line_before_any_call(tmp_path: Path) -> None:
    """The same line as preflight's (awscli.NO_REGION); awscli finds no region in an empty
    configuration."""
    (tmp_path / "config").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "deploy.aws.restore", "qa", "2026-12-01T10:00:00Z"], cwd=ROOT,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
             "AWS_CONFIG_FILE": str(tmp_path / "config")},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"restore.py: {restore.awscli.NO_REGION}"]
