"""The worker loop's start: it runs only on a database at the code's migration head."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from app.core import migrations
from app.core.db import Database
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


async def test_worker_waits_for_migrations_then_starts(backend: str, tmp_path: Path) -> None:
    """A deploy may start workers before `pulse migrate` finishes: they wait, doing
    nothing, and start once the schema is there."""
    seen = _Seen("worker waiting for migrations", "worker started")
    logger = logging.getLogger("pulse.worker")
    logger.addHandler(seen)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    with empty_database(backend, tmp_path) as url:
        in_thread(lambda: migrations.upgrade(url, "0006"))
        settings = make_settings(url, worker_interval_seconds=0.05)
        db = Database.from_url(url)
        assert db.engine is not None
        loop = asyncio.create_task(worker.run_forever(db, settings))
        try:
            async with asyncio.timeout(30):
                await seen.events["worker waiting for migrations"].wait()
                assert not seen.events["worker started"].is_set()
                await asyncio.to_thread(migrations.upgrade, url)
                await seen.events["worker started"].wait()
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop
            await db.engine.dispose()
            logger.removeHandler(seen)
            logger.setLevel(previous_level)
