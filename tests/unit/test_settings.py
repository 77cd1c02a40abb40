"""Settings: per-environment defaults and validation (the CLI tests cover the error line)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from registro.app import database_timeouts
from registro.limits import HttpLimits, http_limits
from registro.settings import DEFAULT_PORT, ENVIRONMENT_VARIABLES, SettingsError, load_settings
from registro.store import Timeouts
from registro.telemetry.logs import QUEUE_LINES


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_dev_defaults_to_local_sqlite_with_auth_off_and_migrations_on_start() -> None:
    settings = load_settings()
    assert settings.env == "dev"
    assert settings.database == "sqlite:///./registro.db"
    assert settings.auth_mode == "off"
    assert settings.migrate_on_start
    assert (settings.host, settings.port) == ("127.0.0.1", DEFAULT_PORT)


@pytest.mark.parametrize("env", ["qa", "prod"])
def test_qa_and_prod_protect_writes_and_never_migrate(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRO_ENV", env)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/registro")
    settings = load_settings()
    assert settings.auth_mode == "writes"
    assert not settings.migrate_on_start


def test_explicit_auth_mode_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRO_AUTH", "all")
    assert load_settings().auth_mode == "all"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("REGISTRO_ENV", "staging", "REGISTRO_ENV='staging'"),
        ("REGISTRO_WORKERS", "0", "REGISTRO_WORKERS='0'"),
        ("REGISTRO_FAULT_ERROR_RATE", "1.5", "REGISTRO_FAULT_ERROR_RATE='1.5'"),
        ("REGISTRO_LOG_LEVEL", "LOUD", "REGISTRO_LOG_LEVEL='LOUD'"),
        ("REGISTRO_MAX_BODY_BYTES", "10", "REGISTRO_MAX_BODY_BYTES='10'"),
        ("REGISTRO_DB_STATEMENT_TIMEOUT_SECONDS", "0", "REGISTRO_DB_STATEMENT_TIMEOUT_SECONDS='0'"),
        ("REGISTRO_DB_LOCK_TIMEOUT_SECONDS", "60", "LOCK_TIMEOUT_SECONDS must not exceed"),
        ("DATABASE_URL", "mysql://u:secret@h/db", "invalid DATABASE_URL: must start with"),
        ("DATABASE_URL", "postgresql://u:secret@db:notaport/x", "invalid DATABASE_URL: each host"),
    ],
)
def test_bad_values_name_the_variable(
    variable: str, value: str, fragment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)
    assert "secret" not in str(error.value)


@pytest.mark.parametrize(
    "value",
    ["*", "127.0.0.1,*", "0.0.0.0/0", "10.0.0.1, ::/0", "0::0/0", "haproxy", "10.0.0.1/8", ""],
)
def test_forwarded_allow_ips_names_proxies_never_everyone(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`*` makes uvicorn take the leftmost X-Forwarded-For entry, which the caller writes, and so
    does a network holding every address (0.0.0.0/0, ::/0); a name or a malformed CIDR would be
    compared as text and never match (uvicorn's _TrustedHosts)."""
    monkeypatch.setenv("REGISTRO_FORWARDED_ALLOW_IPS", value)
    with pytest.raises(SettingsError, match="REGISTRO_FORWARDED_ALLOW_IPS"):
        load_settings()


def test_forwarded_allow_ips_takes_addresses_and_cidrs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRO_FORWARDED_ALLOW_IPS", "10.10.0.0/22, 10.10.4.0/22,::1,127.0.0.1")
    assert load_settings().forwarded_allow_ips == "10.10.0.0/22, 10.10.4.0/22,::1,127.0.0.1"


@pytest.mark.parametrize(
    ("variables", "error"),
    [
        ({"REGISTRO_APP_ROLE": "registro_app"}, "SQLite has no roles"),
        ({"REGISTRO_APP_PASSWORD_FILE": "/etc/hostname"}, "needs REGISTRO_APP_ROLE"),
        ({"REGISTRO_APP_ROLE": 'x"; DROP TABLE audit; --'}, "REGISTRO_APP_ROLE"),
    ],
)
def test_the_app_role_is_a_plain_postgres_role_name(
    variables: dict[str, str], error: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=error):
        load_settings()


def test_postgres_without_an_explicit_environment_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dev turns authentication off: a forgotten REGISTRO_ENV must not do that to a real
    database."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:secret@db:5432/registro")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value).startswith("REGISTRO_ENV is required with a PostgreSQL DATABASE_URL")
    assert "secret" not in str(error.value)
    monkeypatch.setenv("REGISTRO_ENV", "dev")
    assert load_settings().auth_mode == "off"  # dev against PostgreSQL, when said explicitly
    monkeypatch.setenv("REGISTRO_ENV", "prod")
    assert load_settings().auth_mode == "writes"


def test_settings_import_nothing_else_from_the_service() -> None:
    """Settings are the leaf: reading them loads no other module of the service, so nothing
    they import can import them back, and each user converts them to its own types."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, registro.settings;"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('registro'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert loaded == ["registro", "registro.settings"]


def test_the_settings_defaults_are_the_defaults_of_what_they_configure() -> None:
    settings = load_settings()
    assert http_limits(settings) == HttpLimits()
    assert database_timeouts(settings) == Timeouts()
    assert settings.log_queue_lines == QUEUE_LINES
