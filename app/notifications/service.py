"""Deliveries as admins see them: list, retry a failed one, queue a test message.

The outbox knows whom every message went to, but for an anonymous survey that is more
than HR may learn: reminders go only to invitees who have not answered, so a reminder's
address, the invitation it is about or a server reply quoting the address would list
the non-respondents (architecture.md, "Anonymity by default"). Those rows are shown
without them; their status and attempts stay, so mail problems remain visible."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import new_id, utcnow
from app.core.errors import Conflict, NotFound
from app.notifications import outbox
from app.notifications.models import OutboxMessage
from app.notifications.schemas import DeliveryCounts, DeliveryRead, TestEmailCreate

# Read in the list's own query (a correlated EXISTS per row) rather than through the
# surveys service: the rule needs nothing but the wave's anonymity flag.
from app.surveys.models import Invitation, Wave

HIDDEN = "[hidden]"
# A hidden message's cancellation reason, whatever the real one (the same words the
# surveys domain uses for an answered invitee, so the two cannot be told apart).
NO_LONGER_NEEDED = "not sent: no longer needed"
# Anything shaped like an address: servers quote the recipient, and the Message-ID too.
_ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]]*@[^\s<>\"'(),;:\[\]]+")
# The Message-ID and the .eml file name are digests of the dedupe key, which names the
# invitation: an admin could hash every invitation id and find the match.
_DIGEST = re.compile(r"\b[0-9a-f]{40}\b")


def _recipient_hidden() -> ColumnElement[bool]:
    """Whether a message would tell who has not answered an anonymous survey.

    Every invitee gets the invitation, so it names nobody in particular and stays fully
    visible (a failed one must be found and retried). Any other message about an
    invitation goes only to some invitees, so it is hidden unless its wave is known to
    be attributed: a reminder whose invitation is gone stays hidden too."""
    attributed = (
        select(Invitation.id)
        .join(Wave, Wave.id == Invitation.wave_id)
        .where(Invitation.id == OutboxMessage.about_id, Wave.anonymous.is_(False))
        .exists()
    )
    return and_(
        OutboxMessage.about_type == "invitation",
        OutboxMessage.kind != "survey_invitation",
        ~attributed,
    )


def redact_reply(reply: str, recipient: str) -> str:
    """A server reply without the recipient in it; its code and reason stay, since they
    are what an admin needs to fix the mail settings."""
    reply = _DIGEST.sub(HIDDEN, _ADDRESS.sub(HIDDEN, reply))
    local = recipient.rpartition("@")[0]
    if local:
        # Some servers name the mailbox without its domain ("lena.berg: user unknown").
        alone = re.compile(rf"(?<![\w.+-]){re.escape(local)}(?![\w.+-])", re.IGNORECASE)
        reply = alone.sub(HIDDEN, reply)
    return reply


def _as_admins_see_it(message: OutboxMessage, hidden: bool) -> DeliveryRead:
    view = DeliveryRead.model_validate(message)
    if not hidden:
        return view
    reply = message.last_reply
    if message.status == "cancelled":
        # Each specific reason narrows the row down: "the employee was deactivated" names
        # whoever HR just deactivated as someone who had not answered.
        reply = NO_LONGER_NEEDED
    return view.model_copy(
        update={
            "recipient": None,
            "recipient_hidden": True,
            "about_id": None,
            "last_reply": None if reply is None else redact_reply(reply, message.recipient),
        }
    )


async def list_deliveries(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    status: str | None,
    kind: str | None,
    limit: int,
    after: uuid.UUID | None,
) -> list[DeliveryRead]:
    """One page of an organization's messages in creation order, as admins may see them."""
    query = select(OutboxMessage, _recipient_hidden()).where(
        OutboxMessage.organization_id == org_id
    )
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    if kind is not None:
        query = query.where(OutboxMessage.kind == kind)
    if after is not None:
        query = query.where(OutboxMessage.id > after)
    rows = await session.execute(query.order_by(OutboxMessage.id).limit(limit + 1))
    return [_as_admins_see_it(message, bool(hidden)) for message, hidden in rows.all()]


async def _load(
    session: AsyncSession, org_id: uuid.UUID, delivery_id: uuid.UUID
) -> tuple[OutboxMessage, bool]:
    row = (
        await session.execute(
            select(OutboxMessage, _recipient_hidden()).where(
                OutboxMessage.id == delivery_id, OutboxMessage.organization_id == org_id
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no delivery with id {delivery_id}")
    message, hidden = row
    return message, bool(hidden)


async def read_delivery(
    session: AsyncSession, org_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryRead:
    """One message, as admins may see it."""
    return _as_admins_see_it(*await _load(session, org_id, delivery_id))


async def retry_delivery(
    session: AsyncSession, org_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryRead:
    """Queue a failed message again with a fresh attempt budget; the sender renders it
    anew, so it carries the same link as before. A hidden message is retried like any
    other: the admin needs no address to ask for it."""
    message, hidden = await _load(session, org_id, delivery_id)
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
    return _as_admins_see_it(message, hidden)


async def queue_test_email(
    session: AsyncSession, org_id: uuid.UUID, data: TestEmailCreate
) -> DeliveryRead:
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
    message = (
        await session.execute(select(OutboxMessage).where(OutboxMessage.dedupe_key == key))
    ).scalar_one()
    return _as_admins_see_it(message, hidden=False)


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
