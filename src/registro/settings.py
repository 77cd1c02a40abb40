"""Settings, read once from the environment (12-factor) and validated at start.

Every variable the service reads is a field here; `ENVIRONMENT_VARIABLES` lists their names so
that deployment manifests can be checked against it. This module imports nothing else from the
service: the modules that use a setting turn it into their own types (registro.limits,
registro.app), so settings can be read and checked without loading any of them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "qa", "prod"]
AuthMode = Literal["off", "writes", "all"]
LogFormat = Literal["text", "json"]
# The samplers OTEL_TRACES_SAMPLER can name (opentelemetry.sdk.trace.sampling).
TraceSampler = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]

DEV_DATABASE_URL = "sqlite:///./registro.db"
DEFAULT_PORT = 8000
DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 30  # for in-flight requests, after draining

# Variables whose values must never be echoed back (they may carry credentials).
SECRET_VARIABLES = frozenset({"DATABASE_URL"})


# One host of a libpq-style URL's host list: a name or address (IPv6 bracketed), optional port.
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:/\[\]]*)(:\d{1,5})?")


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def valid_postgres_hosts(url: str) -> bool:
    """Whether every host in a PostgreSQL URL (`h1:5432,h2:5432` too) is well formed."""
    if not is_postgres(url):
        return True
    hosts = urlsplit(url).netloc.rpartition("@")[2]
    return all(_HOST.fullmatch(host) for host in hosts.split(","))


class SettingsError(Exception):
    """A setting is missing or invalid; the message is one line meant for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REGISTRO_", extra="ignore", frozen=True, populate_by_name=True
    )

    env: Environment = "dev"
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    # Read at every new connection, so a rotated password is picked up without a restart.
    database_password_file: Path | None = None
    auth: AuthMode | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    drain_seconds: float = Field(default=5.0, ge=0, le=300)
    shutdown_timeout_seconds: int = Field(default=DEFAULT_SHUTDOWN_TIMEOUT_SECONDS, ge=1, le=3600)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: LogFormat | None = None
    log_queue_lines: int = Field(default=10_000, ge=100, le=1_000_000)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_statement_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    db_lock_timeout_seconds: float = Field(default=2.0, gt=0, le=300)
    db_acquire_timeout_seconds: float = Field(default=2.0, gt=0, le=300)
    max_body_bytes: int = Field(default=65536, ge=1024, le=16 * 1024 * 1024)
    http_max_header_bytes: int = Field(default=16_384, ge=1024, le=1 << 20)
    http_header_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    http_body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    http_keep_alive_seconds: int = Field(default=65, ge=1, le=3600)
    http_max_connections: int = Field(default=1000, ge=1, le=100_000)
    # The proxies whose X-Forwarded-For is believed: addresses or CIDRs, comma-separated.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    fault_error_rate: float = Field(default=0.0, ge=0, le=1)
    fault_latency_ms: int = Field(default=0, ge=0, le=60_000)
    # How long a write's Idempotency-Key is remembered (registro.api.idempotency_header).
    idempotency_hours: int = Field(default=24, ge=1, le=24 * 30)
    # Read by `registro migrate` only: the service's own login role on PostgreSQL, and its
    # password, which migrate sets (it runs as the owner of the tables; the role gets DML only).
    app_role: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    app_password_file: Path | None = None
    git_commit: str = "unknown"
    build_time: str = "unknown"
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    otel_service_name: str = Field(
        default="registro", validation_alias=AliasChoices("OTEL_SERVICE_NAME")
    )
    # The OpenTelemetry SDK reads these two itself; they are fields so that a bad value stops the
    # start with one line rather than falling back to the SDK's default with a warning.
    otel_traces_sampler: TraceSampler = Field(
        default="parentbased_always_on", validation_alias=AliasChoices("OTEL_TRACES_SAMPLER")
    )
    otel_traces_sampler_arg: float | None = Field(
        default=None, ge=0, le=1, validation_alias=AliasChoices("OTEL_TRACES_SAMPLER_ARG")
    )
    # The pod the spans come from (k8s.pod.name), from the downward API on Kubernetes.
    pod_name: str | None = Field(default=None, max_length=253)
    prometheus_multiproc_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR")
    )

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
            raise ValueError("must start with postgresql:// or sqlite:///")
        if url is not None and not valid_postgres_hosts(url):
            raise ValueError("each host must be `host` or `host:port` with a numeric port")
        return url

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        everyone = ValueError(
            "`*`, 0.0.0.0/0 or ::/0 lets any caller choose the address the audit records; name"
            " the load balancer's addresses or CIDRs"
        )
        for entry in value.split(","):
            if entry.strip() == "*":
                raise everyone
            try:
                network = ipaddress.ip_network(entry.strip())
            except ValueError:
                raise ValueError("each entry must be an IP address or a CIDR") from None
            if network.prefixlen == 0:
                raise everyone
        return value

    @field_validator("database_password_file", "app_password_file")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
            raise ValueError("must name a readable file")
        return path

    @model_validator(mode="after")
    def _per_environment(self) -> Settings:
        # dev turns authentication off: never by default against a real database (an image run
        # against production with REGISTRO_ENV forgotten would accept anonymous writes).
        if "env" not in self.model_fields_set and is_postgres(self.database):
            raise ValueError(
                "REGISTRO_ENV is required with a PostgreSQL DATABASE_URL"
                " (qa or prod; dev only if meant: it turns authentication off)"
            )
        if self.env != "dev" and self.database_url is None:
            raise ValueError(f"DATABASE_URL is required when REGISTRO_ENV={self.env}")
        if self.app_password_file is not None and self.app_role is None:
            raise ValueError("REGISTRO_APP_PASSWORD_FILE needs REGISTRO_APP_ROLE")
        if self.app_role is not None and not is_postgres(self.database):
            raise ValueError("REGISTRO_APP_ROLE needs PostgreSQL: SQLite has no roles")
        if self.db_lock_timeout_seconds > self.db_statement_timeout_seconds:
            raise ValueError(
                "REGISTRO_DB_LOCK_TIMEOUT_SECONDS must not exceed"
                " REGISTRO_DB_STATEMENT_TIMEOUT_SECONDS"
            )
        if self.env == "prod" and (self.fault_error_rate or self.fault_latency_ms):
            raise ValueError("fault injection (REGISTRO_FAULT_*) is refused when REGISTRO_ENV=prod")
        return self

    @property
    def database(self) -> str:
        return self.database_url or DEV_DATABASE_URL

    @property
    def auth_mode(self) -> AuthMode:
        if self.auth is not None:
            return self.auth
        return "off" if self.env == "dev" else "writes"

    @property
    def log_format_mode(self) -> LogFormat:
        """Lines a person reads in dev; JSON for the log collectors of qa and prod."""
        if self.log_format is not None:
            return self.log_format
        return "text" if self.env == "dev" else "json"

    @property
    def migrate_on_start(self) -> bool:
        return self.env == "dev"

    @property
    def faults_enabled(self) -> bool:
        return bool(self.fault_error_rate or self.fault_latency_ms)


def _variable_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"REGISTRO_{field.upper()}"


ENVIRONMENT_VARIABLES: frozenset[str] = frozenset(_variable_name(f) for f in Settings.model_fields)


def load_settings(**overrides: object) -> Settings:
    """Read the settings, or raise SettingsError with one line naming the bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        name = _variable_name(field) if field in Settings.model_fields else field
        if name in ENVIRONMENT_VARIABLES:
            if name in SECRET_VARIABLES:
                raise SettingsError(f"invalid {name}: {message}") from None
            raise SettingsError(f"invalid {name}={error.get('input')!r}: {message}") from None
        raise SettingsError(message) from None
