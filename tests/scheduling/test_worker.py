"""The worker loop's start: it runs only on a database at the code's migration head."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from app.core import migrations
from app.core.config import Settings
from app.core.db import Database
from app.main import create_app
from app.scheduling import worker
from tests.conftest import make_settings
from tests.databases import empty_database, in_thread


class _Seen(logging.Handler):
    """An asyncio.Event per log message, set when the worker logs it."""

    def __init__(self, *messages: str) -> None:
        super().__init__(logging.INFO)
        self.events = {m: asyncio.Event() for m in messages}

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() in self.events:
            self.events[record.getMessage()].set()


@contextlib.asynccontextmanager
async def _running_worker(url: str, settings: Settings, *messages: str) -> AsyncIterator[_Seen]:
    """``pulse worker``'s loop on ``url``, with an event per log message to wait for;
    stopped, and its engine disposed, when the block ends."""
    seen = _Seen(*messages)
    logger = logging.getLogger("pulse.worker")
    logger.addHandler(seen)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    db = Database.from_url(url)
    assert db.engine is not None
    loop = asyncio.create_task(worker.run_forever(db, settings))
    try:
        async with asyncio.timeout(30):
            yield seen
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
        await db.engine.dispose()
        logger.removeHandler(seen)
        logger.setLevel(previous_level)


WAITING, STARTED = "worker waiting for migrations", "worker started"


async def test_worker_waits_for_migrations_then_starts(backend: str, tmp_path: Path) -> None:
    """A deploy may start workers before `pulse migrate` finishes: they wait, doing
    nothing, and start once the schema is there."""
    with empty_database(backend, tmp_path) as url:
        in_thread(lambda: migrations.upgrade(url, "0006"))
        settings = make_settings(url, worker_interval_seconds=0.05)
        async with _running_worker(url, settings, WAITING, STARTED) as seen:
            await seen.events[WAITING].wait()
            assert not seen.events[STARTED].is_set()
            await asyncio.to_thread(migrations.upgrade, url)
            await seen.events[STARTED].wait()


async def test_worker_that_cannot_check_migrations_waits_instead_of_dying(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migration holds SQLite's write lock, or the database is not up yet: the
    check fails, and the worker must keep waiting, not end."""
    failures = iter([OSError("database is locked")])
    real = worker.migrations_pending

    async def flaky(db: Database, settings: Settings) -> str | None:
        for failure in failures:
            raise failure
        return await real(db, settings)

    monkeypatch.setattr(worker, "migrations_pending", flaky)
    with empty_database(backend, tmp_path) as url:
        in_thread(lambda: migrations.upgrade(url))
        settings = make_settings(url, worker_interval_seconds=0.05)
        async with _running_worker(url, settings, WAITING, STARTED) as seen:
            await seen.events[STARTED].wait()
            assert seen.events[WAITING].is_set()


async def test_a_database_newer_than_the_code_is_named_as_such(
    backend: str, tmp_path: Path
) -> None:
    """After a code rollback `pulse migrate` cannot help; the message must not say so."""
    with empty_database(backend, tmp_path) as url:
        in_thread(lambda: migrations.upgrade(url))
        db = Database.from_url(url)
        assert db.engine is not None
        try:
            async with db.engine.begin() as conn:
                await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
            problem = await migrations.pending(db.engine, url)
        finally:
            await db.engine.dispose()
    assert problem is not None
    assert "['9999'], which this code does not know" in problem
    assert "run pulse migrate" not in problem


async def test_in_process_worker_that_dies_is_logged_at_once_and_shutdown_stays_clean(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pulse serve --with-worker`: nobody awaits the worker until shutdown, so its end
    must be logged when it happens, and shutdown must not fail on its error."""
    seen = _Seen("in-process worker stopped")
    logger = logging.getLogger("pulse.worker")
    logger.addHandler(seen)

    async def broken(db: Database, settings: Settings) -> None:
        raise RuntimeError("worker bug")

    monkeypatch.setattr(worker, "run_forever", broken)
    app = create_app(make_settings(database_url), db=db, with_worker=True)
    try:
        async with app.router.lifespan_context(app):
            async with asyncio.timeout(30):
                await seen.events["in-process worker stopped"].wait()
    finally:
        logger.removeHandler(seen)
