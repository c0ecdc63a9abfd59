"""Surveys, their waves, who was invited, and the answers.

Anonymity lives in this schema (architecture.md, "Anonymity by default"): a response of
an anonymous survey has a random id, no employee or invitation reference and no time
but the day; it carries the reporting segments copied from the invitation, which were
copied from the directory when the wave opened. The invitation records only *that* it
was answered. On SQLite the response and answer tables are WITHOUT ROWID, so not even
the storage order hints at who answered when."""

from __future__ import annotations

import uuid
from datetime import date, datetime
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

SURVEY_STATUSES = ("draft", "active", "paused", "archived")


class Survey(TimestampMixin, Base):
    __tablename__ = "survey"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'active', 'paused', 'archived')", name="status"),
        CheckConstraint("min_group_size >= 3", name="min_group_size"),
        Index("ix_survey_status_next_opening_at", "status", "next_opening_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    anonymous: Mapped[bool] = mapped_column(default=True)
    min_group_size: Mapped[int]
    comment_min_group_size: Mapped[int]
    questions: Mapped[list[dict[str, Any]]]
    rrule: Mapped[str | None] = mapped_column(String(500))
    timezone: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime | None]
    window_hours: Mapped[int]
    reminders_hours: Mapped[list[int]]
    audience: Mapped[dict[str, Any]]
    # The next scheduled opening, kept by the service and the worker, so finding due
    # surveys is one indexed range scan rather than evaluating every RRULE each tick.
    next_opening_at: Mapped[datetime | None]


class Wave(Base):
    """One occurrence of a survey: frozen questions, an audience, a window."""

    __tablename__ = "wave"
    __table_args__ = (
        # One wave per survey and occurrence: two workers opening the same occurrence
        # collide here and one of them does nothing.
        UniqueConstraint("survey_id", "occurrence_at"),
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        Index("ix_wave_status_closes_at", "status", "closes_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    survey_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"))
    occurrence_at: Mapped[datetime]
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="open")
    questions: Mapped[list[dict[str, Any]]]
    anonymous: Mapped[bool]
    min_group_size: Mapped[int]
    reminders_hours: Mapped[list[int]]
    # How many reminder rounds went out; a round is claimed by moving this from n-1 to n
    # in the same transaction that queues its emails.
    reminders_sent: Mapped[int] = mapped_column(default=0)
    invited: Mapped[int] = mapped_column(default=0)
    # When the answers of this wave were last rewritten to erase PostgreSQL's per-row
    # transaction ids and storage order (see app/surveys/anonymity.py).
    scrubbed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Invitation(Base):
    """Who was asked, with the segments they had when the wave opened, and the material
    to recompute their link (never the link itself). No timestamps: when someone
    answered must not be recorded anywhere."""

    __tablename__ = "invitation"
    __table_args__ = (
        UniqueConstraint("wave_id", "employee_id"),
        Index("ix_invitation_wave_id_answered", "wave_id", "answered"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    wave_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("wave.id", ondelete="CASCADE"))
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employee.id"), index=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    key_id: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    team: Mapped[str | None] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(200))
    manager_id: Mapped[uuid.UUID | None]
    attributes: Mapped[dict[str, Any]]
    locale: Mapped[str] = mapped_column(String(35))
    answered: Mapped[bool] = mapped_column(default=False)


class WaveSegment(Base):
    """How many people of each segment combination a wave invited, written when it
    opens (the audience is frozen then). Reports list a wave's groups from here, so a
    group with no answers still appears, suppressed: listing only groups that answered
    would tell that someone in a small team did. A few rows per wave, read without
    touching the invitations."""

    __tablename__ = "wave_segment"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    wave_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("wave.id", ondelete="CASCADE"), index=True
    )
    team: Mapped[str | None] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(200))
    manager_id: Mapped[uuid.UUID | None]
    attributes: Mapped[dict[str, Any]]
    invited: Mapped[int]


class Response(Base):
    __tablename__ = "response"
    __table_args__ = (
        Index("ix_response_wave_id", "wave_id"),
        {"sqlite_with_rowid": False},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # uuid4: random, no order
    wave_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("wave.id", ondelete="CASCADE"))
    survey_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE")
    )
    # Only for attributed surveys (anonymous = false); always null otherwise.
    employee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("employee.id"))
    team: Mapped[str | None] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(200))
    manager_id: Mapped[uuid.UUID | None]
    attributes: Mapped[dict[str, Any]]
    answered_on: Mapped[date]


class Answer(Base):
    """One question's answer: ``score`` for enps/rating/yes_no (1/0), ``choices`` for
    choice questions, ``text`` for free text. Reports aggregate these in SQL."""

    __tablename__ = "answer"
    __table_args__ = (
        Index("ix_answer_wave_id_question_key", "wave_id", "question_key"),
        # Reports count eNPS answers per wave: this index answers from the index alone
        # (on SQLite a WITHOUT ROWID table's indexes carry the primary key already).
        Index(
            "ix_answer_wave_id_kind_score",
            "wave_id",
            "kind",
            "score",
            postgresql_include=["response_id"],
        ),
        {"sqlite_with_rowid": False},
    )

    response_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("response.id", ondelete="CASCADE"), primary_key=True
    )
    question_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    wave_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("wave.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    score: Mapped[int | None]
    choices: Mapped[list[str] | None]
    text: Mapped[str | None] = mapped_column(Text)
