"""Row ids: UUIDv7, so keyset pagination by id lists rows in creation order."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from app.core.config import normalize_database_url
from app.core.db import Database, new_id


def test_ids_are_version_7_with_the_rfc_variant() -> None:
    value = new_id()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_ids_do_not_repeat() -> None:
    assert len({new_id() for _ in range(10_000)}) == 10_000


def test_ids_generated_in_a_row_sort_in_creation_order() -> None:
    ids = [new_id() for _ in range(2_000)]
    assert ids == sorted(ids)


async def test_sqlite_read_then_write_beside_another_writer_does_not_fail(tmp_path: Path) -> None:
    """The embedded default runs the worker beside the API on one SQLite file: a request
    that reads and then writes while the worker commits must wait its turn, not fail
    with 'database is locked' (SQLITE_BUSY_SNAPSHOT on a deferred BEGIN)."""
    db = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}")
    try:
        async with db.sessionmaker() as session, session.begin():
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        first_read = asyncio.Event()

        async def reader_then_writer() -> None:
            async with db.sessionmaker() as session, session.begin():
                await session.execute(text("SELECT count(*) FROM t"))
                first_read.set()
                await asyncio.sleep(0.3)
                await session.execute(text("INSERT INTO t VALUES (1)"))

        async def other_writer() -> None:
            await first_read.wait()
            async with db.sessionmaker() as session, session.begin():
                await session.execute(text("INSERT INTO t VALUES (2)"))

        await asyncio.gather(reader_then_writer(), other_writer())
        async with db.sessionmaker() as session:
            assert await session.scalar(text("SELECT count(*) FROM t")) == 2
    finally:
        await db.dispose()


def test_a_python_linked_to_an_old_sqlite_is_told_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Wave opening needs RETURNING and MATERIALIZED (SQLite 3.35); an older library
    must stop start-up with a clear line, not fail at the first wave."""
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(ValueError, match=r"SQLite 3\.35 or newer is needed.*SQLite 3\.31\.1"):
        normalize_database_url("sqlite:///pulse.db")
    assert normalize_database_url("postgresql://db/pulse") == "postgresql+asyncpg://db/pulse"
