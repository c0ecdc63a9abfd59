"""The `pulse` command: serve, worker, migrate, demo, keys create."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from app.core.config import Settings, describe_settings_error, get_settings


def _settings() -> Settings:
    try:
        settings = get_settings()
    except Exception as exc:  # a bad setting: one clear line, no traceback
        print(f"pulse: configuration error: {describe_settings_error(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    for name in unknown_environment_settings():
        print(f"pulse: warning: {name} is not a Pulse setting and is ignored", file=sys.stderr)
    return settings


def unknown_environment_settings() -> list[str]:
    """PULSE_* variables that match no setting: usually a typo that would silently
    leave the default in place."""
    known = {f"PULSE_{name.upper()}" for name in Settings.model_fields}
    return sorted(
        k
        for k in os.environ
        if k.startswith("PULSE_") and not k.startswith("PULSE_TEST_") and k not in known
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.core.logging import configure_logging
    from app.main import create_app

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, with_worker=args.with_worker)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from app.core.db import Database
    from app.core.logging import configure_logging
    from app.scheduling import worker

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)

    async def main() -> int:
        db = Database.from_url(
            settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
        )
        try:
            if args.once:
                try:
                    problem = await worker.migrations_pending(db, settings)
                except Exception as exc:
                    problem = f"cannot check the database's migrations: {exc}"
                if problem:
                    print(f"pulse: {problem}", file=sys.stderr)
                    return 2
                result = await worker.tick(db, settings)
                return 1 if any(v < 0 for v in result.values()) else 0
            # SIGTERM (docker stop, systemd) ends the loop between steps and closes the
            # database cleanly instead of being killed mid-tick.
            task = asyncio.current_task()
            assert task is not None
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
            try:
                await worker.run_forever(db, settings)
            except asyncio.CancelledError:
                print("pulse: worker stopped", file=sys.stderr)
            return 0
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.core import migrations

    settings = _settings()
    try:
        migrations.upgrade(settings.database_url, args.revision)
    except Exception as exc:
        print(f"pulse: migration failed: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"pulse: database at {args.revision}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app.core.db import Database
    from app.demo import data

    settings = _settings()
    key_file = Path(args.key_file) if args.key_file else None

    async def main() -> int:
        db = Database.from_url(
            settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
        )
        try:
            async with db.sessionmaker() as session, session.begin():
                if await data.database_is_empty(session):
                    key = await data.load_demo(session, settings)
                    count = await data.employee_count(session)
                    print(
                        f"pulse: demo organization {data.DEMO_ORG!r} created with {count} "
                        "employees and a year of monthly pulse results"
                    )
                elif not args.if_empty:
                    print(
                        "pulse: the database is not empty; the demo fills only an empty one "
                        "(use --if-empty to skip quietly)",
                        file=sys.stderr,
                    )
                    return 1
                elif key_file is not None and key_file.exists():
                    key = key_file.read_text().strip()
                else:
                    key = await data.new_admin_key(session, "make-run")
            async with db.sessionmaker() as session:
                links = await data.demo_links(session, settings)
                meeting = await data.demo_meeting_links(session, settings)
        finally:
            await db.dispose()
        for name, locale, link in links:
            print(f"pulse: open survey link for {name} ({locale}): {link}")
        for role, name, link in meeting:
            print(f"pulse: next one-on-one, {role} page for {name}: {link}")
        if key_file is not None:
            key_file.write_text(key + "\n")
            key_file.chmod(0o600)
        print(key)
        return 0

    return asyncio.run(main())


def cmd_keys_create(args: argparse.Namespace) -> int:
    from app.core.db import Database
    from app.organizations import service
    from app.organizations.schemas import ApiKeyCreate

    settings = _settings()

    async def main() -> str:
        db = Database.from_url(
            settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
        )
        try:
            async with db.sessionmaker() as session, session.begin():
                org = await service.get_or_create_organization(session, args.org)
                _, key = await service.create_api_key(
                    session, org.id, ApiKeyCreate(name=args.name, scope=args.scope)
                )
                return key
        finally:
            await db.dispose()

    try:
        key = asyncio.run(main())
    except Exception as exc:
        print(f"pulse: could not create the key: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"pulse: {args.scope} key {args.name!r} for organization {args.org!r} (shown once):",
        file=sys.stderr,
    )
    print(key)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulse", description="Pulse employee listening service")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API and the employee pages")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--with-worker", action="store_true", help="run the worker loop in-process")
    serve.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies trusted for X-Forwarded-* (default 127.0.0.1)",
    )
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run the scheduler and the outbox sender")
    worker.add_argument("--once", action="store_true", help="run one full tick and exit")
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser("migrate", help="upgrade the database schema (alembic upgrade)")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(func=cmd_migrate)

    demo = sub.add_parser("demo", help="fill an empty database with demo data; prints an admin key")
    demo.add_argument(
        "--if-empty",
        action="store_true",
        help="when the database is not empty, print an admin key instead of failing",
    )
    demo.add_argument("--key-file", help="keep the admin key in this file (for make run)")
    demo.set_defaults(func=cmd_demo)

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser(
        "create", help="create an API key; prints it alone on the last line"
    )
    create.add_argument("--org", required=True, help="organization name (created if missing)")
    create.add_argument("--name", required=True, help="a label for the key")
    create.add_argument("--scope", required=True, choices=["admin", "reports"])
    create.set_defaults(func=cmd_keys_create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
