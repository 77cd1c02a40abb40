"""The `registro` command: serve, migrate, and manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from registro import __version__
from registro.port import PortInUse, require_free
from registro.settings import Settings, SettingsError, load_settings
from registro.store.base import DatabaseUnavailable

PORT_IN_USE = 4  # exit status; 2 is a bad setting, 3 an unreachable database


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="registro", description=__doc__)
    parser.add_argument("--version", action="version", version=f"registro {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="bind address (REGISTRO_HOST)")
    serve.add_argument("--port", type=int, help="port (REGISTRO_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (REGISTRO_WORKERS)")

    migrate = commands.add_parser("migrate", help="bring the database schema to the latest")
    migrate.add_argument(
        "--check",
        action="store_true",
        help="only check; exit 1 when the schema is behind, 3 when the database is unavailable",
    )

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key; it is shown once")
    create.add_argument("name")
    create.add_argument(
        "--scopes", default="read,write", help="comma-separated: read, write, admin"
    )
    key_commands.add_parser("list", help="list keys (never their secrets)")
    revoke = key_commands.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from registro.server import serve
    from registro.store.migrate import upgrade
    from registro.telemetry.logs import configure_logging

    overrides = {k: v for k in ("host", "port", "workers") if (v := getattr(args, k)) is not None}
    if overrides:
        settings = load_settings(**overrides)
    try:
        require_free(settings.host, settings.port)
    except PortInUse as exc:
        print(f"registro: {exc}", file=sys.stderr)
        return PORT_IN_USE
    configure_logging(
        settings.log_level, settings.log_queue_lines, log_format=settings.log_format_mode
    )
    if settings.migrate_on_start:
        upgrade(settings.database, settings.database_password_file)
    serve(settings)
    return 0


async def _schema_check(settings: Settings) -> int:
    from registro.store import open_store
    from registro.store.migrate import head_revision, schema_state

    store = await open_store(settings.database, 1, settings.database_password_file, create=False)
    try:
        current = await store.schema_revision()
    finally:
        await store.close()
    head = head_revision()
    state = schema_state(current)
    if state == "current":
        print(f"schema is current ({head})")
    elif state == "ahead":
        print(f"schema is at {current}, newer than this release's {head}: a later release's")
    else:
        print(f"schema is at {current or 'nothing'}, latest is {head}: run `registro migrate`")
    return 1 if state == "behind" else 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    if args.check:
        return asyncio.run(_schema_check(settings))
    from registro.store.migrate import upgrade
    from registro.telemetry.logs import configure_logging

    configure_logging(
        settings.log_level, settings.log_queue_lines, log_format=settings.log_format_mode
    )
    ahead_at = upgrade(settings.database, settings.database_password_file)
    if ahead_at:
        print(f"schema is at {ahead_at}, newer than this release's: left as it is")
        return 0  # its grants too: a later release's tables are not in this release's list
    print("schema is current")
    if settings.app_role is not None:
        return _grant_app_role(settings, settings.app_role)
    return 0


def _grant_app_role(settings: Settings, role: str) -> int:
    from registro.store.roles import RoleRefused, grant_app_role
    from registro.store.urls import password_reader

    read_password = password_reader(settings.app_password_file)
    try:
        asyncio.run(
            grant_app_role(
                settings.database,
                password_reader(settings.database_password_file),
                role,
                read_password() if read_password else None,
            )
        )
    except RoleRefused as exc:
        print(f"registro: {exc}", file=sys.stderr)
        return 2
    print(f"role {role}: data changes only (see registro.store.roles.GRANTS)")
    return 0


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from registro.auth import new_key
    from registro.store import NameTaken, open_store

    store = await open_store(settings.database, 1, settings.database_password_file, create=False)
    try:
        if args.keys_command == "create":
            scopes = frozenset(s.strip() for s in args.scopes.split(",") if s.strip())
            try:
                token, key = new_key(args.name, scopes)
                await store.add_key(key)
            except (ValueError, NameTaken) as exc:
                reason = str(exc) or f"a key named {args.name!r} exists"
                print(f"registro: {reason}", file=sys.stderr)
                return 2
            print(token)
            print(
                f"(key {args.name!r}, scopes {','.join(sorted(scopes))}: "
                "store it now, it is not shown again)",
                file=sys.stderr,
            )
        elif args.keys_command == "list":
            for key in await store.keys():
                state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
                print(
                    f"{key.name}\t{','.join(sorted(key.scopes))}\t"
                    f"created {key.created_at:%Y-%m-%d}\t{state}"
                )
        elif not await store.revoke_key(args.name):
            print(f"registro: no active key named {args.name!r}", file=sys.stderr)
            return 1
        else:
            print(f"revoked {args.name!r}")
        return 0
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "serve":
            return _serve(settings, args)
        if args.command == "migrate":
            return _migrate(settings, args)
        return asyncio.run(_keys(settings, args))
    except SettingsError as exc:
        print(f"registro: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"registro: database unavailable: {_one_line(exc)}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an operator gets one line, never a traceback
        print(f"registro: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    """The error's text on one line (drivers put hints on lines of their own), with any
    password of DATABASE_URL masked."""
    text = " ".join(str(exc).split())
    try:
        password = urlsplit(os.environ.get("DATABASE_URL", "")).password
    except ValueError:  # not a URL urlsplit can take: nothing to mask
        password = None
    return text.replace(password, "***") if password else text
