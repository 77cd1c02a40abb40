"""The backup wiring of the local stack (compose.yaml, deploy/docker/patroni/): every member
archives to and restores from one pgBackRest repository, under one stanza, continuously.

Patroni merges the files of a configuration directory in name order (patroni/config.py,
Config._load_config_path), runs bootstrap.<method>.command for a custom bootstrap and keeps the
recovery settings pgBackRest wrote when keep_existing_recovery_conf is set
(patroni/postgresql/bootstrap.py, Bootstrap._custom_bootstrap; docs: replica_bootstrap.rst).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
PATRONI = ROOT / "deploy" / "docker" / "patroni"
MEMBERS = ("pg1", "pg2")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def pgbackrest_option(name: str) -> str:
    match = re.search(rf"^{name}=(.+)$", (PATRONI / "pgbackrest.conf").read_text(), re.M)
    assert match, name
    return match[1]


def dockerfile_env() -> dict[str, str]:
    """The Dockerfile's ENV values, with $VAR references to earlier ones resolved."""
    text = (PATRONI / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", text, re.M):
        for key, value in re.findall(r"(\w+)=(\S+)", line):
            env[key] = re.sub(r"\$(\w+)", lambda m: env[m[1]], value)
    return env


def test_every_member_mounts_the_one_repository_where_pgbackrest_looks() -> None:
    stack = compose()
    repo = pgbackrest_option("repo1-path")
    mounts = {m: [v.split(":") for v in stack["services"][m]["volumes"]] for m in MEMBERS}
    named = {m: [name for name, path in v if path == repo] for m, v in mounts.items()}
    assert all(len(n) == 1 for n in named.values()), named
    assert len({n[0] for n in named.values()}) == 1, "the members must share one repository"
    assert named["pg1"][0] in stack["volumes"]


def test_backups_run_in_every_member_at_one_interval() -> None:
    stack = compose()
    intervals = {m: stack["services"][m]["environment"]["BACKUP_INTERVAL_SECONDS"] for m in MEMBERS}
    assert len(set(intervals.values())) == 1 and int(intervals["pg1"]) > 0, intervals
    assert "${BACKUP_INTERVAL_SECONDS:?" in (PATRONI / "start.sh").read_text()  # no default
    assert "backup-loop &" in (PATRONI / "start.sh").read_text()


def test_the_stanza_and_data_directory_are_patronis() -> None:
    config = yaml.safe_load((PATRONI / "patroni.yml").read_text())
    env = dockerfile_env()
    assert env["PGBACKREST_STANZA"] == config["scope"]
    assert env["PGBACKREST_PG1_PATH"] == env["PATRONI_POSTGRESQL_DATA_DIR"]
    sockets = config["postgresql"]["parameters"]["unix_socket_directories"]
    assert env["PGBACKREST_PG1_SOCKET_PATH"] == env["PGHOST"] == sockets


def test_wal_is_archived_to_the_repository() -> None:
    dcs = yaml.safe_load((PATRONI / "patroni.yml").read_text())["bootstrap"]["dcs"]
    parameters = dcs["postgresql"]["parameters"]
    assert parameters["archive_mode"] == "on"
    assert parameters["archive_command"].split() == ["pgbackrest", "archive-push", "%p"]
    assert 0 < int(parameters["archive_timeout"]) <= 300


def test_the_restore_bootstrap_is_installed_and_keeps_pgbackrests_recovery_settings() -> None:
    bootstrap = yaml.safe_load((PATRONI / "restore.yml").read_text())["bootstrap"]
    method = bootstrap[bootstrap["method"]]
    assert method["keep_existing_recovery_conf"] is True
    copies = re.findall(r"^COPY (\S+) (\S+)$", (PATRONI / "Dockerfile").read_text(), re.M)
    installed = {dst: src for src, dst in copies}
    assert method["command"] in installed
    script = installed[method["command"]]
    assert "--target-action=promote" in (PATRONI / script).read_text()
    start = (PATRONI / "start.sh").read_text()
    assert "/etc/patroni/restore.yml" in start and "RESTORE_TARGET_TIME" in start
