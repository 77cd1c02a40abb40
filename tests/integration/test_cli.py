"""The `registro` command as an operator uses it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from tests.support.service import REGISTRO, running_service


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRO_")}
    clean.pop("DATABASE_URL", None)
    return subprocess.run(
        [REGISTRO, *args], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_keys_are_shown_once_listed_without_secrets_and_revocable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/registro.db"
    assert _run("migrate", DATABASE_URL=url).returncode == 0

    created = _run("keys", "create", "deployer", "--scopes", "write", DATABASE_URL=url)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("rg_")
    assert "not shown again" in created.stderr

    listed = _run("keys", "list", DATABASE_URL=url)
    assert "deployer\twrite" in listed.stdout and "active" in listed.stdout
    assert token.split("_", 2)[2] not in listed.stdout

    duplicate = _run("keys", "create", "deployer", DATABASE_URL=url)
    assert duplicate.returncode == 2 and "exists" in duplicate.stderr
    bad_scope = _run("keys", "create", "x", "--scopes", "root", DATABASE_URL=url)
    assert bad_scope.returncode == 2 and "scopes" in bad_scope.stderr

    assert _run("keys", "revoke", "deployer", DATABASE_URL=url).returncode == 0
    assert "revoked" in _run("keys", "list", DATABASE_URL=url).stdout
    assert _run("keys", "revoke", "deployer", DATABASE_URL=url).returncode == 1

    database = (tmp_path / "registro.db").read_bytes()
    assert token.split("_", 2)[2].encode() not in database, "the secret was stored"


def test_a_bad_setting_stops_the_process_with_one_clear_line() -> None:
    result = _run("serve", REGISTRO_PORT="eighty")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "registro: invalid REGISTRO_PORT='eighty': "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_qa_and_prod_refuse_to_start_without_a_database_url() -> None:
    for env in ("qa", "prod"):
        result = _run("serve", REGISTRO_ENV=env)
        assert result.returncode == 2
        assert (
            result.stderr.strip() == f"registro: DATABASE_URL is required when REGISTRO_ENV={env}"
        )


def test_fault_injection_is_refused_in_prod() -> None:
    result = _run(
        "serve",
        REGISTRO_ENV="prod",
        DATABASE_URL="postgresql://u@h/db",
        REGISTRO_FAULT_ERROR_RATE="0.2",
    )
    assert result.returncode == 2
    assert "refused when REGISTRO_ENV=prod" in result.stderr


def test_a_database_password_is_never_echoed() -> None:
    result = _run("serve", DATABASE_URL="mysql://app:hunter2@db/registro")
    assert result.returncode == 2
    assert "hunter2" not in result.stderr + result.stdout


def test_an_unreachable_database_is_one_line_and_exit_3(tmp_path: Path) -> None:
    refused = "postgresql://app:hunter2@127.0.0.1:1/registro"  # nothing listens on port 1
    missing_directory = f"sqlite:///{tmp_path}/no/such/dir/registro.db"
    for url in (refused, missing_directory):
        for command in (["migrate"], ["migrate", "--check"], ["keys", "list"]):
            result = _run(*command, DATABASE_URL=url, REGISTRO_ENV="qa")
            assert result.returncode == 3, (command, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("registro: database unavailable: ")
            assert "hunter2" not in result.stderr


def test_postgres_without_registro_env_refuses_to_start_with_one_line() -> None:
    for command in (["serve"], ["migrate"], ["keys", "list"]):
        result = _run(*command, DATABASE_URL="postgresql://app:hunter2@127.0.0.1:1/registro")
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [
            "registro: REGISTRO_ENV is required with a PostgreSQL DATABASE_URL"
            " (qa or prod; dev only if meant: it turns authentication off)"
        ]


def test_unexpected_errors_are_one_line_never_a_traceback(tmp_path: Path) -> None:
    never_migrated = f"sqlite:///{tmp_path}/empty.db"  # no tables: the store's queries fail
    for command in (["keys", "list"], ["keys", "create", "ci"], ["keys", "revoke", "ci"]):
        result = _run(*command, DATABASE_URL=never_migrated)
        assert result.returncode != 0, command
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("registro: "), (command, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout


def test_key_names_are_validated_and_anonymous_is_reserved(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/registro.db"
    assert _run("migrate", DATABASE_URL=url).returncode == 0
    for name in ("anonymous", "ANONYMOUS", "two words", "x" * 65, ""):
        result = _run("keys", "create", name, DATABASE_URL=url)
        assert result.returncode == 2, (name, result.stderr)
        assert "key name" in result.stderr and result.stdout == ""
    assert _run("keys", "list", DATABASE_URL=url).stdout == ""


def test_dev_migrates_a_new_database_on_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    with running_service(url, tmp_path / "service.log") as service:
        response = httpx.post(f"{service.url}/data", json={"name": "first"})
        assert response.status_code == 200


def test_faults_inject_errors_on_the_api_but_not_on_probes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/faulty.db"
    with running_service(
        url, tmp_path / "service.log", wait_for="/livez", REGISTRO_FAULT_ERROR_RATE="1"
    ) as service:
        assert httpx.get(f"{service.url}/readyz").status_code == 200
        response = httpx.get(f"{service.url}/data")
        assert response.status_code == 500
        assert response.json() == {"message": "Injected fault"}
