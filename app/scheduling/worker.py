"""The worker loop: every tick runs each step once; every step is idempotent.

Later parts of Pulse add steps here (open due waves, remind, close, materialise meetings,
drain the outbox). A failing step is logged and the next ones still run, so one bad row
never stops the mail from going out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.checkins import emails as _checkin_emails  # noqa: F401 - registers email kinds
from app.checkins import meetings
from app.core import idempotency, migrations
from app.core.config import Settings
from app.core.db import Database
from app.notifications.sender import deliver_outbox
from app.surveys import anonymity, waves
from app.surveys import emails as _survey_emails  # noqa: F401 - registers email kinds

log = logging.getLogger("pulse.worker")

Step = Callable[[Database, Settings], Awaitable[int]]


async def purge_idempotency_records(db: Database, settings: Settings) -> int:
    return await idempotency.purge_expired(db)


STEPS: list[tuple[str, Step]] = [
    ("close_due_waves", waves.close_due_waves),
    ("open_due_waves", waves.open_due_waves),
    ("send_reminders", waves.send_reminders),
    ("scrub_answer_traces", anonymity.scrub_answer_traces),
    ("end_series_of_inactive", meetings.end_series_of_inactive),
    ("materialise_meetings", meetings.materialise_meetings),
    ("send_checkins", meetings.send_checkins),
    ("deliver_outbox", deliver_outbox),
    ("purge_idempotency_records", purge_idempotency_records),
]


async def tick(db: Database, settings: Settings) -> dict[str, int]:
    """Run every step once; returns how much each did (for logs and tests)."""
    done: dict[str, int] = {}
    for name, step in STEPS:
        try:
            done[name] = await step(db, settings)
        except Exception:
            log.exception("worker step failed", extra={"step": name})
            done[name] = -1
    return done


async def migrations_pending(db: Database, settings: Settings) -> str | None:
    """Why the worker must not run yet: code newer than the schema would write rows the
    database refuses (and lose the rest of that transaction's bookkeeping)."""
    if db.engine is None:  # a test's Database on one connection, built by the migrations
        return None
    return await migrations.pending(db.engine, settings.database_url)


async def run_forever(db: Database, settings: Settings) -> None:
    # A deploy may start the worker before `pulse migrate` has finished: wait for it.
    # Not being able to check (database unreachable, locked by the migration) waits
    # too, instead of ending the worker.
    while True:
        try:
            problem = await migrations_pending(db, settings)
        except Exception as exc:
            problem = f"cannot check the database's migrations: {exc}"
        if problem is None:
            break
        log.error("worker waiting for migrations", extra={"problem": problem})
        await asyncio.sleep(settings.worker_interval_seconds)
    log.info("worker started", extra={"interval_s": settings.worker_interval_seconds})
    while True:
        result = await tick(db, settings)
        if any(result.values()):
            log.info("worker tick", extra={"done": result})
        await asyncio.sleep(settings.worker_interval_seconds)
