"""Running Alembic from the `pulse` command, the app's readiness check and the tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine


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
