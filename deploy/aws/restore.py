"""Restore an environment's database to a point in time, into a new instance, and check it
(make restore-aws ENV=qa|prod TIME=2026-12-01T10:00:00Z; docs/runbooks/restore-aws.md).

    python -m deploy.aws.restore ENV TIME

1. Refuses, creating nothing, with one line: an unknown ENV; a TIME that is not ISO 8601 UTC
   (YYYY-MM-DDTHH:MM:SSZ), is in the future, or is outside the source's restorable window
   (its automated backups' RestoreWindow: DescribeDBInstances has no earliest time).
2. Restores the data stack's instance (output DbInstanceId) as <source>-restore-<date>-<time>:
   the name is the time, so a re-run finds that instance rather than creating a second. RDS
   would give a restore its default subnet group, security group and parameter group: the
   source's are passed, with its class, storage, deletion protection and backup settings. Single-AZ,
   because it is a copy to check (a standby doubles the cost and adds nothing to a check; the
   runbook turns Multi-AZ on at cut-over). Tagged restored-from / restore-time.
3. Waits until it is `available` (RESTORE_TIMEOUT seconds, polled every RESTORE_POLL_SECONDS),
   failing at once on the states the db-instance-available waiter treats as failures.
4. Checks it against the source: status, endpoint, encryption and KMS key, engine version,
   class, network and parameter group. Then the data, from inside the VPC (the database is in
   private subnets, reachable only from the cluster's nodes): a Job in the environment's cluster,
   the running Rollout's own pod (image, login, security settings) with restore_check.py as its
   program: `registro migrate --check` and the newest audit entry, which must not be after TIME.
5. Prints the endpoint and the cut-over steps.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploy.aws import awscli, stacks
from deploy.aws.awscli import AwsError
from deploy.aws.restore_check import NEWEST

HERE = Path(__file__).resolve().parent
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TIME_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# The db-instance-available waiter's failure states (botocore data/rds/2014-10-31/waiters-2.json).
FAILED_STATES = ("deleted", "deleting", "failed", "incompatible-restore", "incompatible-parameters")


def seconds(name: str, default: int) -> int:
    """A duration from the environment, or one line saying why it is not one."""
    value = os.environ.get(name, str(default))
    if not value.isdigit():
        raise SystemExit(f"restore.py: {name}={value!r} must be a whole number of seconds")
    return int(value)


TIMEOUT = seconds("RESTORE_TIMEOUT", 10800)  # a large PITR replays hours of WAL
POLL = seconds("RESTORE_POLL_SECONDS", 30)  # the db-instance-available waiter's own delay
CHECK_TIMEOUT = seconds("RESTORE_CHECK_TIMEOUT", 600)
NAMESPACE, ROLLOUT = "registro", "registro"
kubectl = os.environ.get("KUBECTL", "kubectl")


class Refused(Exception):
    """A one-line reason to stop; nothing more is created."""


def parse_time(text: str, now: datetime) -> datetime:
    if not TIME_PATTERN.match(text):
        raise Refused(f"TIME={text!r} is not ISO 8601 UTC: give it as 2026-12-01T10:00:00Z")
    try:
        moment = datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as error:
        raise Refused(f"TIME={text!r} is not a date: {error}") from None
    if moment > now:
        raise Refused(f"TIME={text} is in the future (now {now.strftime(TIME_FORMAT)})")
    return moment


def instance_name(source: str, moment: datetime) -> str:
    """<source>-restore-YYYYMMDD-HHMMSS: 1-63 letters, digits, single hyphens (RDS's rule)."""
    return f"{source}-restore-{moment:%Y%m%d-%H%M%S}"


def outputs(env: str, layer: str) -> dict[str, str]:
    try:
        return stacks.outputs(env, layer)
    except AwsError as error:
        stack = stacks.stack_name(env, layer)
        raise Refused(f"cannot read stack {stack} (deployed? make deploy-aws): {error}") from None


def instance(identifier: str) -> dict[str, Any] | None:
    try:
        answer = awscli.call("rds", "describe-db-instances", "--db-instance-identifier", identifier)
    except AwsError as error:
        if "DBInstanceNotFound" in str(error):
            return None
        raise
    found: dict[str, Any] = answer["DBInstances"][0]
    return found


def restore_window(source: str) -> tuple[datetime, datetime]:
    answer = awscli.call(
        "rds", "describe-db-instance-automated-backups", "--db-instance-identifier", source
    )
    windows = [
        b["RestoreWindow"]
        for b in answer.get("DBInstanceAutomatedBackups", [])
        if b.get("Status") == "active" and b.get("RestoreWindow", {}).get("EarliestTime")
    ]
    if not windows:
        raise Refused(f"{source} has no automated backups to restore from")
    return _time(windows[0]["EarliestTime"]), _time(windows[0]["LatestTime"])


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def check_window(moment: datetime, earliest: datetime, latest: datetime, source: str) -> None:
    if not earliest <= moment <= latest:
        raise Refused(
            f"TIME={moment.strftime(TIME_FORMAT)} is outside {source}'s restorable window"
            f" {earliest.strftime(TIME_FORMAT)} .. {latest.strftime(TIME_FORMAT)}"
        )


def restore_tags(app: str, env: str, source: str, moment: datetime) -> dict[str, str]:
    return {
        "app": app,
        "environment": env,
        "restored-from": source,
        "restore-time": moment.strftime(TIME_FORMAT),
    }


def restore_arguments(source: dict[str, Any], target: str, moment: datetime,
                      tags: dict[str, str]) -> list[str]:  # fmt: skip
    """restore-db-instance-to-point-in-time with the source's settings where RDS would pick its
    defaults (subnet group, security group, parameter group) or its own (class, storage)."""
    arguments = [
        "rds", "restore-db-instance-to-point-in-time",
        "--source-db-instance-identifier", source["DBInstanceIdentifier"],
        "--target-db-instance-identifier", target,
        "--restore-time", moment.strftime(TIME_FORMAT),
        "--db-instance-class", source["DBInstanceClass"],
        "--db-subnet-group-name", source["DBSubnetGroup"]["DBSubnetGroupName"],
        "--vpc-security-group-ids", *security_groups(source),
        "--db-parameter-group-name", *parameter_groups(source),
        "--storage-type", source["StorageType"],
        "--backup-retention-period", str(source["BackupRetentionPeriod"]),
        "--no-multi-az", "--no-publicly-accessible",
        "--deletion-protection" if source["DeletionProtection"] else "--no-deletion-protection",
        "--copy-tags-to-snapshot",
        "--tags", *[f"Key={k},Value={v}" for k, v in tags.items()],
    ]  # fmt: skip
    if source.get("MaxAllocatedStorage"):
        arguments += ["--max-allocated-storage", str(source["MaxAllocatedStorage"])]
    if source.get("IAMDatabaseAuthenticationEnabled"):
        arguments.append("--enable-iam-database-authentication")
    return arguments


def security_groups(db: dict[str, Any]) -> list[str]:
    return sorted(g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", []))


def parameter_groups(db: dict[str, Any]) -> list[str]:
    return [g["DBParameterGroupName"] for g in db.get("DBParameterGroups", [])]


def tags_of(db: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in db.get("TagList", [])}


def until(probe: Callable[[], str | None], timeout: float, why: Callable[[], str]) -> str:
    """Poll probe() until it answers (not None); after timeout seconds, Refused saying why()."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer is not None:
            return answer
        if time.monotonic() >= deadline:
            raise Refused(f"{why()} after {timeout:g} s")
        time.sleep(POLL)


def wait_available(target: str) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def status() -> str | None:
        found = instance(target)
        if found is None:
            raise Refused(f"{target} disappeared while being restored")
        last.update(found)
        state = str(found["DBInstanceStatus"])
        if state in FAILED_STATES:
            raise Refused(f"{target} is {state}: the restore failed (aws rds describe-events)")
        return state if state == "available" else None

    until(status, TIMEOUT, lambda: f"{target} is still {last['DBInstanceStatus']}, not available,")
    return last


def differences(source: dict[str, Any], restored: dict[str, Any]) -> list[str]:
    """What makes the restored instance unfit to stand in for the source; empty when fit."""
    found = []
    if restored["DBInstanceStatus"] != "available":
        found.append(f"status is {restored['DBInstanceStatus']}, not available")
    if not restored.get("Endpoint", {}).get("Address"):
        found.append("it has no endpoint")
    same = {
        "encryption": lambda db: (db.get("StorageEncrypted", False), db.get("KmsKeyId")),
        "engine": lambda db: (db["Engine"], db["EngineVersion"]),
        "instance class": lambda db: db["DBInstanceClass"],
        "subnet group": lambda db: db["DBSubnetGroup"]["DBSubnetGroupName"],
        "security groups": security_groups,
        "parameter group": parameter_groups,
        "port": lambda db: db.get("Endpoint", {}).get("Port"),
    }
    for name, read in same.items():
        if read(restored) != read(source):
            found.append(f"{name} is {read(restored)}, the source's is {read(source)}")
    return found


def check_job(rollout: dict[str, Any], name: str, address: str) -> dict[str, Any]:
    """The Rollout's pod as a one-off Job: same image, login, network policy and security
    settings; restore_check.py points the login's DATABASE_URL at the restored address."""
    pod = copy.deepcopy(rollout["spec"]["template"])
    spec = pod["spec"]
    spec.pop("topologySpreadConstraints", None)
    spec["restartPolicy"] = "Never"
    (container,) = spec["containers"]
    for serving in ("ports", "startupProbe", "readinessProbe", "livenessProbe", "lifecycle"):
        container.pop(serving, None)
    program = (HERE / "restore_check.py").read_text()
    container.update(name="restore-check", command=["python", "-c", program])
    container["env"] = [*container.get("env", []), {"name": "RESTORED_ADDRESS", "value": address}]
    labels = {"app.kubernetes.io/name": "registro", "app.kubernetes.io/component": "restore-check"}
    pod["metadata"] = {"labels": labels}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": CHECK_TIMEOUT,
                 "ttlSecondsAfterFinished": 86400, "template": pod},
    }  # fmt: skip


def run(*command: str) -> str:
    """The command's output; Refused with its last error line when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise Refused(f"{' '.join(command[:3])}: {last}")
    return done.stdout


def k(*args: str) -> str:
    return run(kubectl, "-n", NAMESPACE, *args)


def job_outcome(name: str) -> str | None:
    conditions = json.loads(k("get", f"job/{name}", "-o", "json")).get("status", {})
    for condition in conditions.get("conditions", []):
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return str(condition["type"])
    return None


def data_check(env: str, target: str, address: str, moment: datetime) -> list[str]:
    """Run the check Job against the restored address; print its log; its verdict."""
    run("aws", "eks", "update-kubeconfig", "--name", outputs(env, "cluster")["ClusterName"])
    name = f"{target}-check"
    job = check_job(json.loads(k("get", "rollout", ROLLOUT, "-o", "json")), name, address)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as manifest:
        json.dump(job, manifest)
        manifest.flush()
        k("delete", "job", name, "--ignore-not-found")  # a Job's pod template is immutable
        k("apply", "-f", manifest.name)
    outcome = until(
        lambda: job_outcome(name), CHECK_TIMEOUT, lambda: f"check Job {name} is unfinished"
    )
    log = k("logs", f"job/{name}")
    print("   " + log.strip().replace("\n", "\n   "))
    return verdict(name, outcome, log, moment)


def verdict(name: str, outcome: str, log: str, moment: datetime) -> list[str]:
    """Empty when the Job completed (the schema suits the running release) and the newest audit
    entry it printed is not after TIME."""
    if outcome != "Complete":
        return [f"check Job {name} failed (its log above)"]
    newest = [line for line in log.splitlines() if line.startswith(NEWEST)]
    if not newest:
        return [f"check Job {name} printed no '{NEWEST}' line"]
    stamp = newest[-1].removeprefix(NEWEST).strip()
    if stamp != "none" and _time(stamp) > moment:
        return [f"its newest audit entry ({stamp}) is after TIME: not a restore to TIME"]
    return []


def restore(env: str, text: str, now: datetime) -> int:
    values = stacks.environment(env)
    moment = parse_time(text, now)
    if not awscli.export_region():
        raise Refused(awscli.NO_REGION)
    name = outputs(env, "data")["DbInstanceId"]
    source = instance(name)
    if source is None:
        raise Refused(f"the data stack's instance {name} does not exist")
    check_window(moment, *restore_window(name), name)
    target = instance_name(name, moment)
    tags = restore_tags(values["App"], env, name, moment)
    found = instance(target)
    if found is None:
        print(f"== restoring {name} to {text} as {target}")
        awscli.call(*restore_arguments(source, target, moment, tags))
    elif {key: tags_of(found).get(key) for key in tags} != tags:
        raise Refused(f"{target} exists but is not tagged as the restore of {name} at {text}")
    else:
        print(f"== {target} exists: the restore of {name} at {text}; checking it")
    restored = wait_available(target)
    problems = differences(source, restored)
    if not problems:
        address = restored["Endpoint"]["Address"]
        print(f"== {target} is available at {address}; checking its data from the cluster")
        problems = data_check(env, target, address, moment)
    for problem in problems:
        print(f"restore.py: {target}: {problem}", file=sys.stderr)
    if problems:
        return 1
    address = restored["Endpoint"]["Address"]
    print(CUT_OVER.format(target=target, address=address, source=name, env=env,
                          replaced=f"{name}-replaced-{now:%Y%m%d-%H%M}"))  # fmt: skip
    return 0


CUT_OVER = """
restored and checked: {target} at {address}
To cut over (docs/runbooks/restore-aws.md, "Cut over"), the restored instance takes the source's
name, so the service's endpoint, secrets and stacks stay as they are:
   aws rds modify-db-instance --db-instance-identifier {source} \\
     --new-db-instance-identifier {replaced} --apply-immediately
   aws rds wait db-instance-available --db-instance-identifier {replaced}
   aws rds modify-db-instance --db-instance-identifier {target} \\
     --new-db-instance-identifier {source} --apply-immediately
then the runbook's steps 4-6 (Multi-AZ, master secret, monitoring; make deploy-k8s ENV={env}).
Not needed after all: aws rds delete-db-instance --db-instance-identifier {target} \\
     --skip-final-snapshot (after --no-deletion-protection where it has it)"""


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    try:
        return restore(argv[0], argv[1], datetime.now(UTC))
    except (Refused, AwsError) as error:
        print(f"restore.py: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
