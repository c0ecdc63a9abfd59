"""The email outbox: enqueue in the caller's transaction, claim with a lease, record outcomes.

Enqueueing is an INSERT that ignores a duplicate dedupe key, so work that may run twice
(a retried worker step) queues each email once. Claims are one UPDATE … RETURNING over a
``FOR UPDATE SKIP LOCKED`` subquery on PostgreSQL, so several workers share the queue and
never take the same row; on SQLite the single writer makes the plain UPDATE safe. A row
whose lease ran out (its worker died) is claimable again, and outcomes are recorded only
while the claim still holds, so a worker that lost its row to another cannot undo it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import new_id, utcnow
from app.notifications.models import OutboxMessage as M


@dataclass(frozen=True)
class Claimed:
    """What the sender needs of a claimed row; plain data, no ORM object across steps."""

    id: uuid.UUID
    organization_id: uuid.UUID
    dedupe_key: str
    kind: str
    recipient: str
    recipient_name: str
    locale: str
    about_type: str | None
    about_id: uuid.UUID | None
    attempts: int


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    # Core insert on the table: every column is given, so the ORM's per-row bookkeeping
    # would only slow down queueing 100,000 invitations.
    return module.insert(M.__table__)


async def enqueue_many(session: AsyncSession, messages: Sequence[dict[str, Any]]) -> None:
    """Queue messages in the caller's transaction; a dedupe key already queued is skipped.

    Each dict names ``organization_id``, ``dedupe_key``, ``kind``, ``recipient``,
    ``locale`` and optionally ``recipient_name``, ``about_type``, ``about_id``,
    ``group_id``."""
    if not messages:
        return
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "recipient_name": "",
            "about_type": None,
            "about_id": None,
            "group_id": None,
            **m,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for m in messages
    ]
    stmt = _insert(session).on_conflict_do_nothing(index_elements=["dedupe_key"])
    await session.execute(stmt, rows)


async def enqueue(session: AsyncSession, **message: Any) -> None:
    await enqueue_many(session, [message])


async def claim_batch(
    session: AsyncSession, *, limit: int, lease: timedelta, now: datetime | None = None
) -> list[Claimed]:
    """Take up to ``limit`` due messages for this worker until ``now + lease``."""
    now = now or utcnow()
    due = or_(
        and_(M.status == "pending", M.next_attempt_at <= now),
        and_(M.status == "sending", M.lease_until < now),
    )
    candidates = select(M.id).where(due).order_by(M.next_attempt_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    stmt = (
        update(M)
        .where(M.id.in_(candidates.scalar_subquery()))
        .values(status="sending", lease_until=now + lease, attempts=M.attempts + 1, updated_at=now)
        .returning(
            M.id,
            M.organization_id,
            M.dedupe_key,
            M.kind,
            M.recipient,
            M.recipient_name,
            M.locale,
            M.about_type,
            M.about_id,
            M.attempts,
        )
        .execution_options(synchronize_session=False)
    )
    rows = (await session.execute(stmt)).all()
    return sorted((Claimed(**r._mapping) for r in rows), key=lambda c: c.id)


def _still_ours(claimed: Claimed) -> ColumnElement[bool]:
    """The row is still held by this claim. Every claim bumps ``attempts``, so a worker
    whose lease ran out while another worker took the row over finds a different count
    and changes nothing: it can neither undo the new holder's outcome nor hand the row
    to a third worker (which would send it once more)."""
    return and_(M.id == claimed.id, M.status == "sending", M.attempts == claimed.attempts)


def _still_ours_many(table: Table) -> ColumnElement[bool]:
    """``_still_ours`` for an executemany, each claim given as ``b_id`` and ``b_attempts``."""
    return and_(
        table.c.id == bindparam("b_id"),
        table.c.status == "sending",
        table.c.attempts == bindparam("b_attempts"),
    )


async def mark_sent(session: AsyncSession, sent: Sequence[tuple[Claimed, str]]) -> None:
    """Record delivered messages with each server reply, in one executemany."""
    if not sent:
        return
    now = utcnow()
    table = M.__table__
    assert isinstance(table, Table)
    stmt = (
        update(table)
        .where(_still_ours_many(table))
        .values(
            status="sent",
            sent_at=now,
            lease_until=None,
            last_reply=bindparam("b_reply"),
            updated_at=now,
        )
    )
    await session.execute(
        stmt,
        [{"b_id": c.id, "b_attempts": c.attempts, "b_reply": reply[:2000]} for c, reply in sent],
    )


async def extend_lease(session: AsyncSession, claimed: Sequence[Claimed], until: datetime) -> None:
    """Keep holding rows still being worked on: a slow server (100 messages at up to a
    30 s timeout each) can outlast any fixed lease, and another worker would then claim
    and send them a second time."""
    if not claimed:
        return
    table = M.__table__
    assert isinstance(table, Table)
    stmt = update(table).where(_still_ours_many(table)).values(lease_until=until)
    await session.execute(stmt, [{"b_id": c.id, "b_attempts": c.attempts} for c in claimed])


async def mark_retry(
    session: AsyncSession, claimed: Claimed, reply: str, next_attempt_at: datetime
) -> None:
    await session.execute(
        update(M)
        .where(_still_ours(claimed))
        .values(
            status="pending",
            next_attempt_at=next_attempt_at,
            lease_until=None,
            last_reply=reply,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )


async def mark_failed(session: AsyncSession, claimed: Claimed, reply: str) -> None:
    await _finish(session, claimed, "failed", reply)


async def mark_cancelled(session: AsyncSession, claimed: Claimed, reason: str) -> None:
    """Not sent on purpose: what it was about no longer wants it (see render.AboutGone)."""
    await _finish(session, claimed, "cancelled", reason)


async def _finish(session: AsyncSession, claimed: Claimed, status: str, reply: str) -> None:
    await session.execute(
        update(M)
        .where(_still_ours(claimed))
        .values(status=status, lease_until=None, last_reply=reply, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def release(session: AsyncSession, claimed: Sequence[Claimed]) -> None:
    """Hand back claimed rows we did not try (shutting down): no attempt is spent."""
    if not claimed:
        return
    table = M.__table__
    assert isinstance(table, Table)
    stmt = (
        update(table)
        .where(_still_ours_many(table))
        .values(
            status="pending",
            lease_until=None,
            attempts=table.c.attempts - 1,
            updated_at=utcnow(),
        )
    )
    await session.execute(stmt, [{"b_id": c.id, "b_attempts": c.attempts} for c in claimed])
