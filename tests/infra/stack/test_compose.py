"""compose.yaml: the wiring the audit trail relies on. Its stop_grace_period is written from
deploy/facts/facts.yaml, whose rules tests/infra/tools/test_facts.py checks."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from registro.settings import Settings, load_settings

COMPOSE = Path(__file__).resolve().parents[3] / "compose.yaml"


def serving_containers() -> dict[str, dict[str, Any]]:
    """The services that run the service image with its own command (`registro serve`)."""
    services: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return {
        name: s
        for name, s in services.items()
        if s["image"].startswith("registro:") and "command" not in s
    }


# --- the database roles and the trusted proxy (the audit trail's guarantees) -------------------

ROOT = COMPOSE.parent
STACK_SECRETS = ROOT / "deploy" / "docker" / "stack-secrets.sh"
PATRONI_INIT = ROOT / "deploy" / "docker" / "patroni" / "create-app-database.sh"
HAPROXY_CFG = ROOT / "deploy" / "docker" / "haproxy" / "haproxy.cfg"
SERVICE_DOCKERFILE = ROOT / "deploy" / "docker" / "registro" / "Dockerfile"


def services() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return loaded


def user_and_database(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    assert parts.username and not parts.password, url  # passwords come from files
    return parts.username, parts.path.lstrip("/")


def secret_file(service: dict[str, Any], variable: str) -> str:
    """The compose secret a `*_FILE` variable points at; it must be mounted in the service."""
    name = service["environment"][variable].removeprefix("/run/secrets/")
    assert name in service["secrets"], (variable, name)
    return name


def test_the_service_connects_as_its_own_role_and_migrate_as_the_owner() -> None:
    """Patroni's init creates the owner (like the RDS master: CREATEROLE, no superuser); migrate
    logs in as it and creates the role the replicas use, which only gets data privileges."""
    init = PATRONI_INIT.read_text()
    owner = re.search(r"CREATE ROLE (\w+) LOGIN CREATEROLE PASSWORD", init)
    database = re.search(r"CREATE DATABASE (\w+) OWNER (\w+);", init)
    assert owner and database and database[2] == owner[1], init
    assert "SUPERUSER" not in init.split(owner[0])[1].split(";")[0]
    migrate = services()["migrate"]["environment"]
    assert user_and_database(migrate["DATABASE_URL"]) == (owner[1], database[1])
    app_role = migrate["REGISTRO_APP_ROLE"]
    assert app_role != owner[1]
    for name, service in serving_containers().items():
        assert user_and_database(service["environment"]["DATABASE_URL"]) == (
            app_role,
            database[1],
        ), name


def test_only_migrate_has_the_owners_password() -> None:
    all_services = services()
    migrate = all_services["migrate"]
    owner_secret = secret_file(migrate, "REGISTRO_DATABASE_PASSWORD_FILE")
    app_secret = secret_file(migrate, "REGISTRO_APP_PASSWORD_FILE")
    assert owner_secret != app_secret
    for name, service in serving_containers().items():
        assert secret_file(service, "REGISTRO_DATABASE_PASSWORD_FILE") == app_secret, name
        assert owner_secret not in service["secrets"], name
    holders = [n for n, s in all_services.items() if owner_secret in s.get("secrets", [])]
    assert holders == ["migrate"]


def test_stack_secrets_writes_every_password_the_stack_reads() -> None:
    script = STACK_SECRETS.read_text()
    files = yaml.safe_load(COMPOSE.read_text())["secrets"]
    for name, secret in files.items():
        written = secret["file"].removeprefix(".work/stack/")
        assert f'>"$DIR/{written}"' in script, name
        assert f'[ -s "$DIR/{written}" ]' in script, name  # part of the idempotence check
    for variable in re.findall(r'"\$(\w+_PASSWORD)"', PATRONI_INIT.read_text()):
        assert re.search(rf"^{variable}=", script, re.MULTILINE), variable


def haproxy_app_address() -> str:
    networks = services()["haproxy"]["networks"]
    address: str = networks["app"]["ipv4_address"]
    subnet = yaml.safe_load(COMPOSE.read_text())["networks"]["app"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    return address


def test_replicas_believe_x_forwarded_for_from_haproxy_only() -> None:
    """HAProxy's `option forwardfor` adds the client's address as the last X-Forwarded-For
    header, whatever the client sent (without `if-none`; HAProxy configuration manual, "option
    forwardfor", https://docs.haproxy.org/2.6/configuration.html#4-option%20forwardfor), and
    uvicorn takes the rightmost entry that is not a trusted proxy, so with HAProxy alone trusted
    the recorded client is the one HAProxy saw."""
    address = haproxy_app_address()
    for name, service in serving_containers().items():
        trusted = service["environment"]["REGISTRO_FORWARDED_ALLOW_IPS"]
        assert trusted == address, name
        assert load_settings(forwarded_allow_ips=trusted).forwarded_allow_ips == address
    https = HAPROXY_CFG.read_text().split("frontend https", 1)[1].split("\nbackend ", 1)[0]
    forwardfor = [line.split() for line in https.splitlines() if "option forwardfor" in line]
    assert forwardfor == [["option", "forwardfor"]]


def test_the_image_trusts_no_proxy_but_loopback_by_default() -> None:
    assert "FORWARDED_ALLOW_IPS" not in SERVICE_DOCKERFILE.read_text()
    default = Settings.model_fields["forwarded_allow_ips"].default
    assert all(ipaddress.ip_network(n.strip()).is_loopback for n in default.split(","))
