"""Helpers for the email tests: queue messages, read the outbox back, drain it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

from sqlalchemy import select

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.notifications import outbox
from app.notifications.backends import Backend
from app.notifications.models import OutboxMessage
from app.notifications.outbox import Claimed
from app.notifications.render import message_id
from app.notifications.sender import deliver_outbox


def recipient(key: str) -> str:
    return f"{key.replace(':', '-')}@example.com"


async def queue(
    db: Database,
    org_id: uuid.UUID,
    keys: Sequence[str],
    *,
    locale: str = "en",
    name: str = "",
    kind: str = "test",
) -> None:
    """Queue one ``kind`` message per dedupe key, each to its own address, and commit."""
    async with db.sessionmaker() as session, session.begin():
        await outbox.enqueue_many(
            session,
            [
                {
                    "organization_id": org_id,
                    "dedupe_key": key,
                    "kind": kind,
                    "recipient": recipient(key),
                    "recipient_name": name,
                    "locale": locale,
                }
                for key in keys
            ],
        )


def keys(prefix: str, count: int) -> list[str]:
    return [f"{prefix}:{i:05d}" for i in range(count)]


def expected_id(key: str, settings: Settings) -> str:
    return message_id(key, settings.email_from)


async def rows(db: Database) -> dict[str, OutboxMessage]:
    """Every outbox row by dedupe key, read fresh."""
    async with db.sessionmaker() as session:
        result = await session.execute(select(OutboxMessage))
        return {m.dedupe_key: m for m in result.scalars()}


async def row(db: Database, key: str) -> OutboxMessage:
    return (await rows(db))[key]


async def deliver_until_settled(
    db: Database,
    settings: Settings,
    *,
    backend: Backend | None = None,
    give_up_after: float = 20.0,
) -> None:
    """Run the sender until no message is pending or sending, waiting out retry delays."""
    deadline = time.monotonic() + give_up_after
    while True:
        await deliver_outbox(db, settings, backend=backend)
        waiting = [m for m in (await rows(db)).values() if m.status in ("pending", "sending")]
        if not waiting:
            return
        assert time.monotonic() < deadline, f"{len(waiting)} messages never settled"
        due = min(m.lease_until or m.next_attempt_at for m in waiting)
        await asyncio.sleep(max(0.0, (due - utcnow()).total_seconds()) + 0.01)


def claimed(
    org_id: uuid.UUID, *, kind: str = "test", locale: str = "en", name: str = "", key: str = "k"
) -> Claimed:
    """A claimed row as the sender sees it, for rendering without the outbox."""
    return Claimed(
        id=uuid.uuid4(),
        organization_id=org_id,
        dedupe_key=key,
        kind=kind,
        recipient=recipient(key),
        recipient_name=name,
        locale=locale,
        about_type=None,
        about_id=None,
        attempts=1,
    )
