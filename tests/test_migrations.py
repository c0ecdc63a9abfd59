"""The migrations are the schema: they build every table, undo cleanly, and leave nothing
for autogenerate to add, on SQLite and on PostgreSQL."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import app.models  # noqa: F401 - every table on Base.metadata
from app.core import migrations
from app.core.db import Base, make_engine
from tests.conftest import BACKENDS
from tests.databases import empty_database, in_thread

VERSIONS = Path(__file__).resolve().parents[1] / "migrations" / "versions"


def _inspect(url: str) -> tuple[set[str], list[Any]]:
    """Tables in the database and the differences autogenerate would write."""

    async def run() -> tuple[set[str], list[Any]]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:

                def sync(c: Any) -> tuple[set[str], list[Any]]:
                    ctx = MigrationContext.configure(c, opts={"compare_type": True})
                    return set(inspect(c).get_table_names()), compare_metadata(ctx, Base.metadata)

                return await conn.run_sync(sync)
        finally:
            await engine.dispose()

    return in_thread(lambda: asyncio.run(run()))


@pytest.mark.parametrize("which", BACKENDS)
def test_upgrade_downgrade_upgrade_leaves_models_and_schema_equal(
    which: str, tmp_path: Path
) -> None:
    with empty_database(which, tmp_path) as url:
        in_thread(lambda: migrations.upgrade(url))
        tables, diff = _inspect(url)
        assert set(Base.metadata.tables) <= tables
        assert diff == []

        in_thread(lambda: migrations.downgrade(url, "base"))
        tables, _ = _inspect(url)
        assert tables <= {"alembic_version"}

        in_thread(lambda: migrations.upgrade(url))
        tables, diff = _inspect(url)
        assert set(Base.metadata.tables) <= tables
        assert diff == [], f"models and migrations disagree: {diff}"


def test_revisions_are_static_and_reversible() -> None:
    """Revisions import no app code (a later model change must not rewrite history) and
    each has a downgrade that does something."""
    files = sorted(VERSIONS.glob("*.py"))
    assert files
    for path in files:
        tree = ast.parse(path.read_text())
        imports = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + [
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        ]
        assert not [m for m in imports if m.startswith("app")], path.name
        downgrade = next(
            n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "downgrade"
        )
        assert not (len(downgrade.body) == 1 and isinstance(downgrade.body[0], ast.Pass)), path.name


def test_single_head() -> None:
    assert len(migrations.head_revisions("sqlite+aiosqlite:///unused.db")) == 1
