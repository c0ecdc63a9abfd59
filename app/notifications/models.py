from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin, new_id

# cancelled: not sent on purpose (answered meanwhile, meeting cancelled), never a failure.
STATUSES = ("pending", "sending", "sent", "failed", "cancelled")


class OutboxMessage(TimestampMixin, Base):
    """An email to send: what and to whom, never the rendered text.

    Subject, bodies and attachments are rendered by the sender at send time, so a queued
    invitation is a small row and no personal link ever sits in this table
    (architecture.md, "Email" and "Personal links")."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")", name="status"),
        # The sender's claim query: due pending rows, and sending rows whose lease ran out.
        Index("ix_outbox_message_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_message_organization_id_status", "organization_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE")
    )
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(320))
    recipient_name: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str] = mapped_column(String(35))
    about_type: Mapped[str | None] = mapped_column(String(40))
    about_id: Mapped[uuid.UUID | None]
    # The wave (or other batch) the message belongs to, for delivery counts.
    group_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    last_reply: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
