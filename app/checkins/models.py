"""One-on-one check-ins: a series pairs a manager with a report on a cadence; each
occurrence is a meeting with two personal links, a pre-meeting check-in, shared talking
points and action items, and a private note per side.

HR sees only that meetings happen (scheduled_at, status, checkin_submitted): nothing an
admin endpoint returns is read from the content tables below the Meeting row."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin, new_id

ROLES = ("manager", "report")


class CheckinSeries(TimestampMixin, Base):
    __tablename__ = "checkin_series"
    __table_args__ = (
        CheckConstraint("manager_id <> employee_id", name="distinct_people"),
        CheckConstraint("status IN ('active', 'ended')", name="status"),
        CheckConstraint("duration_minutes BETWEEN 15 AND 240", name="duration"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    manager_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employee.id"), index=True)
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employee.id"), index=True)
    rrule: Mapped[str] = mapped_column(String(500))
    timezone: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    duration_minutes: Mapped[int] = mapped_column(default=60)
    questions: Mapped[list[dict[str, Any]]]
    checkin_lead_hours: Mapped[int] = mapped_column(default=24)
    status: Mapped[str] = mapped_column(String(16), default="active")
    ended_at: Mapped[datetime | None]


class Meeting(TimestampMixin, Base):
    __tablename__ = "meeting"
    __table_args__ = (
        # One meeting per series and time: materialising twice (or in two workers)
        # inserts once.
        UniqueConstraint("series_id", "scheduled_at"),
        CheckConstraint("status IN ('scheduled', 'held', 'skipped', 'cancelled')", name="status"),
        Index("ix_meeting_status_scheduled_at", "status", "scheduled_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE")
    )
    series_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("checkin_series.id", ondelete="CASCADE"), index=True
    )
    scheduled_at: Mapped[datetime]
    duration_minutes: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    # RFC 5545 SEQUENCE: raised on every change so calendars replace the event.
    sequence: Mapped[int] = mapped_column(default=0)
    checkin_sent: Mapped[bool] = mapped_column(default=False)
    checkin_submitted: Mapped[bool] = mapped_column(default=False)
    checkin_answers: Mapped[dict[str, Any] | None]


class MeetingLink(Base):
    """One personal link per person per meeting (same rules as survey links)."""

    __tablename__ = "meeting_link"
    __table_args__ = (
        UniqueConstraint("meeting_id", "role"),
        CheckConstraint("role IN ('manager', 'report')", name="role"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    meeting_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meeting.id", ondelete="CASCADE"))
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employee.id"))
    role: Mapped[str] = mapped_column(String(16))
    salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    key_id: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)


class TalkingPoint(Base):
    __tablename__ = "talking_point"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    meeting_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("meeting.id", ondelete="CASCADE"), index=True
    )
    author_role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    done: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class ActionItem(Base):
    """Belongs to the series so open items carry over to the next meeting."""

    __tablename__ = "action_item"
    __table_args__ = (Index("ix_action_item_series_id_done", "series_id", "done"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    series_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("checkin_series.id", ondelete="CASCADE")
    )
    meeting_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meeting.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    owner_role: Mapped[str] = mapped_column(String(16))
    done: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]


class PrivateNote(Base):
    """Seen by its author alone: pages read it filtered by the link's role."""

    __tablename__ = "private_note"
    __table_args__ = (UniqueConstraint("meeting_id", "author_role"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    meeting_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meeting.id", ondelete="CASCADE"))
    author_role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
