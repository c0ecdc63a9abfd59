"""Deliveries as admins see them: list, retry a failed one, queue a test message."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import new_id, utcnow
from app.core.errors import Conflict, NotFound
from app.notifications import outbox
from app.notifications.models import OutboxMessage
from app.notifications.schemas import DeliveryCounts, TestEmailCreate


async def list_deliveries(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    status: str | None,
    kind: str | None,
    limit: int,
    after: uuid.UUID | None,
) -> Sequence[OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.organization_id == org_id)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    if kind is not None:
        query = query.where(OutboxMessage.kind == kind)
    if after is not None:
        query = query.where(OutboxMessage.id > after)
    rows = await session.execute(query.order_by(OutboxMessage.id).limit(limit + 1))
    return rows.scalars().all()


async def get_delivery(
    session: AsyncSession, org_id: uuid.UUID, delivery_id: uuid.UUID
) -> OutboxMessage:
    message = await session.get(OutboxMessage, delivery_id)
    if message is None or message.organization_id != org_id:
        raise NotFound(f"no delivery with id {delivery_id}")
    return message


async def retry_delivery(
    session: AsyncSession, org_id: uuid.UUID, delivery_id: uuid.UUID
) -> OutboxMessage:
    """Queue a failed message again with a fresh attempt budget; the sender renders it
    anew, so it carries the same link as before."""
    message = await get_delivery(session, org_id, delivery_id)
    if message.status != "failed":
        raise Conflict(
            f"only a failed delivery can be retried; this one is {message.status}",
            code="not_failed",
        )
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == delivery_id, OutboxMessage.status == "failed")
        .values(status="pending", attempts=0, next_attempt_at=utcnow(), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await session.refresh(message)
    return message


async def queue_test_email(
    session: AsyncSession, org_id: uuid.UUID, data: TestEmailCreate
) -> OutboxMessage:
    """A message an admin sends to check the email settings end to end."""
    key = f"test:{new_id()}"
    await outbox.enqueue(
        session,
        organization_id=org_id,
        dedupe_key=key,
        kind="test",
        recipient=data.to,
        recipient_name=data.name,
        locale=data.locale,
    )
    return (
        await session.execute(select(OutboxMessage).where(OutboxMessage.dedupe_key == key))
    ).scalar_one()


async def delivery_counts(
    session: AsyncSession, group_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, DeliveryCounts]:
    """Queued, sent, failed and cancelled messages per group (a wave), in one GROUP BY."""
    if not group_ids:
        return {}
    M = OutboxMessage
    rows = await session.execute(
        select(
            M.group_id,
            func.count(case((M.status.in_(("pending", "sending")), 1))),
            func.count(case((M.status == "sent", 1))),
            func.count(case((M.status == "failed", 1))),
            func.count(case((M.status == "cancelled", 1))),
        )
        .where(M.group_id.in_(group_ids))
        .group_by(M.group_id)
    )
    counts = {g: DeliveryCounts(queued=0, sent=0, failed=0, cancelled=0) for g in group_ids}
    for group_id, queued, sent, failed, cancelled in rows.all():
        if group_id is not None:
            counts[group_id] = DeliveryCounts(
                queued=queued, sent=sent, failed=failed, cancelled=cancelled
            )
    return counts
