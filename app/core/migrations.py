"""Running Alembic from the `pulse` command, the app's readiness check and the tests."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("pulse.migrations")

# How long start-up waits for the check; an unreachable database is /readyz's to report.
STARTUP_CHECK_SECONDS = 10.0


def migrations_dir() -> Path:
    """The ``migrations/`` folder beside the ``app`` package (source checkout, editable
    install, or the container's /srv/pulse)."""
    beside = Path(__file__).resolve().parents[2] / "migrations"
    if beside.is_dir():
        return beside
    here = Path.cwd() / "migrations"
    if here.is_dir():
        return here
    raise RuntimeError("cannot find the migrations/ folder; run pulse from the project folder")


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revisions(database_url: str) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


async def pending(engine: AsyncEngine, database_url: str) -> str | None:
    """Why the database is not at the code's migration head, or None when it is."""
    current, heads = await current_revisions(engine), head_revisions(database_url)
    if current == heads:
        return None
    script = ScriptDirectory.from_config(alembic_config(database_url))
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = sorted(current - known)
    if unknown:  # rolled-back code on a newer schema: migrating cannot help
        return (
            f"database at migration {unknown}, which this code does not know: run the "
            "newer code, or downgrade the database with that code's pulse migrate"
        )
    return (
        f"database at migration {sorted(current)}, code expects {sorted(heads)}: run pulse migrate"
    )


async def current_revisions(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads()))


async def warn_if_pending(engine: AsyncEngine | None, database_url: str) -> str | None:
    """Log at start-up why API calls will fail until the schema is migrated, and return
    it. On a never-migrated database every call answers 500 and only /readyz says why;
    the operator starting the server should read it at once. Never raises: serving goes
    on either way."""
    if engine is None:  # a test's Database on one connection, built by the migrations
        return None
    try:
        async with asyncio.timeout(STARTUP_CHECK_SECONDS):
            if await current_revisions(engine):
                problem = await pending(engine, database_url)
            else:
                problem = "the database was never migrated: run pulse migrate"
    except Exception as exc:
        log.warning("could not check the database's migrations: %s", exc.__class__.__name__)
        return None
    if problem is not None:
        log.warning("%s; until then API calls fail", problem)
    return problem
