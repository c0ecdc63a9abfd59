"""Erasing what PostgreSQL itself records about when a response came in.

Answering flips the invitation's flag and inserts the response in one transaction, so on
PostgreSQL both rows carry the same ``xmin`` (the transaction id), and both new row
versions land at the end of their tables in answer order. Either would join a response to
a person. This worker step rewrites every answered invitation and every response of a
wave in one transaction, so they all share one ``xmin``, and then reorders the tables by
their primary keys (``CLUSTER``: invitations by their creation-ordered id, responses by
their random id), which also drops the old row versions. SQLite keeps neither: it has no
transaction ids, updates the flag in place, and stores responses WITHOUT ROWID in random
id order (docs/decisions/0005, 0008).

Open waves are scrubbed at most every ``OPEN_WAVE_EVERY``; each wave once more after it
closes. ``CLUSTER`` locks the two tables briefly, so it runs only after a wave closed."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import or_, select, text, update

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.surveys.models import Invitation, Response, Wave

log = logging.getLogger("pulse.anonymity")

OPEN_WAVE_EVERY = timedelta(minutes=15)


async def scrub_answer_traces(db: Database, settings: Settings) -> int:
    """Worker step: rewrite the answers of due waves (PostgreSQL only); returns how many."""
    if db.engine is not None and db.engine.dialect.name != "postgresql":
        return 0
    now = utcnow()
    async with db.sessionmaker() as session:
        if session.get_bind().dialect.name != "postgresql":
            return 0
        due = (
            await session.execute(
                select(Wave.id, Wave.status).where(
                    or_(
                        (Wave.status == "open")
                        & (
                            or_(
                                Wave.scrubbed_at.is_(None), Wave.scrubbed_at < now - OPEN_WAVE_EVERY
                            )
                        ),
                        (Wave.status == "closed")
                        & (or_(Wave.scrubbed_at.is_(None), Wave.scrubbed_at < Wave.closed_at)),
                    )
                )
            )
        ).all()
    closed_any = False
    for wave_id, status in due:
        async with db.sessionmaker() as session, session.begin():
            await session.execute(
                update(Invitation)
                .where(Invitation.wave_id == wave_id, Invitation.answered.is_(True))
                .values(answered=Invitation.answered)
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                update(Response)
                .where(Response.wave_id == wave_id)
                .values(wave_id=Response.wave_id)
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                update(Wave).where(Wave.id == wave_id).values(scrubbed_at=utcnow())
            )
        closed_any = closed_any or status == "closed"
    if closed_any and db.engine is not None:
        await _cluster(db)
    return len(due)


async def _cluster(db: Database) -> None:
    """Rewrite both tables in primary-key order (and without old row versions)."""
    assert db.engine is not None
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table, index in (("response", "pk_response"), ("invitation", "pk_invitation")):
            try:
                await conn.execute(text(f"CLUSTER {table} USING {index}"))
            except Exception:  # a lock timeout: the next closed wave tries again
                log.exception("could not reorder %s", table)
