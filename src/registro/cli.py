"""The `registro` command: serve, migrate, and manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from registro import __version__
from registro.settings import Settings, SettingsError, load_settings
from registro.store.base import DatabaseUnavailable


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
    configure_logging(settings.log_level, settings.log_queue_lines)
    if settings.migrate_on_start:
        upgrade(settings.database, settings.database_password_file)
    serve(settings)
    return 0


async def _schema_check(settings: Settings) -> int:
    from registro.store import open_store
    from registro.store.migrate import head_revision, schema_state

    store = await open_store(settings.database, 1, settings.database_password_file)
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

    configure_logging(settings.log_level, settings.log_queue_lines)
    ahead_at = upgrade(settings.database, settings.database_password_file)
    if ahead_at:
        print(f"schema is at {ahead_at}, newer than this release's: left as it is")
    else:
        print("schema is current")
    return 0


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from registro.auth import new_key
    from registro.store import NameTaken, open_store

    store = await open_store(settings.database, 1, settings.database_password_file)
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
        reason = " ".join(str(exc).split())  # the driver's hints come on lines of their own
        print(f"registro: database unavailable: {reason}", file=sys.stderr)
        return 3
