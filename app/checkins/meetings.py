"""Meetings of a series: materialised ahead, invited, reminded with the check-in,
cancelled. Every step is keyed (unique meeting per series and time, unique link per
meeting and role, unique outbox key per email), so running twice does nothing twice."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.checkins.models import CheckinSeries, Meeting, MeetingLink
from app.core.config import Settings
from app.core.db import Database, new_id, utcnow
from app.employees.models import Employee
from app.notifications import outbox
from app.scheduling import recurrence
from app.surveys import links

log = logging.getLogger("pulse.checkins")

# api.md: at least the next 4 occurrences or the next 8 weeks, whichever holds more.
AHEAD_COUNT = 4
AHEAD_SPAN = timedelta(weeks=8)
AHEAD_MAX = 120  # a daily cadence over 8 weeks, with room
MAX_LEAD_HOURS = 336  # the largest checkin_lead_hours a series may have


def _insert(session: AsyncSession, table: Any) -> Any:
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(table)


def upcoming(series: CheckinSeries, now: datetime) -> list[datetime]:
    """The occurrences to keep materialised from ``now``."""
    found = recurrence.occurrences_after(
        series.rrule,
        series.starts_at,
        series.timezone,
        max(now, series.starts_at - timedelta(microseconds=1)),
        AHEAD_MAX,
    )
    horizon = now + AHEAD_SPAN
    keep = [at for i, at in enumerate(found) if i < AHEAD_COUNT or at <= horizon]
    return keep


async def materialise_series(
    session: AsyncSession, series: CheckinSeries, settings: Settings, now: datetime | None = None
) -> int:
    """Create the upcoming meetings of one series that do not exist yet, with their
    links and calendar invites, in the caller's transaction. Returns how many."""
    now = now or utcnow()
    if series.status != "active":
        return 0
    created = 0
    for at in upcoming(series, now):
        meeting_id = new_id()
        inserted = await session.execute(
            _insert(session, Meeting)
            .values(
                id=meeting_id,
                organization_id=series.organization_id,
                series_id=series.id,
                scheduled_at=at,
                duration_minutes=series.duration_minutes,
                status="scheduled",
                sequence=0,
                checkin_sent=False,
                checkin_submitted=False,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["series_id", "scheduled_at"])
            .returning(Meeting.id)
        )
        if inserted.scalar_one_or_none() is None:
            continue
        await _create_links(session, series, meeting_id, settings)
        await queue_invites(session, series.organization_id, meeting_id, sequence=0)
        created += 1
    return created


async def _create_links(
    session: AsyncSession, series: CheckinSeries, meeting_id: uuid.UUID, settings: Settings
) -> None:
    key_id, key = links.current_key(settings)
    rows = []
    for role, employee_id in (("manager", series.manager_id), ("report", series.employee_id)):
        link_id, salt = new_id(), links.new_salt()
        rows.append(
            {
                "id": link_id,
                "meeting_id": meeting_id,
                "employee_id": employee_id,
                "role": role,
                "salt": salt,
                "key_id": key_id,
                "token_hash": links.hash_token(links.make_token(key, link_id, salt)),
            }
        )
    await session.execute(_insert(session, MeetingLink), rows)


async def _participants(session: AsyncSession, meeting_ids: Sequence[uuid.UUID]) -> list[Any]:
    return list(
        (
            await session.execute(
                select(
                    MeetingLink.id,
                    MeetingLink.meeting_id,
                    MeetingLink.role,
                    Employee.email,
                    Employee.name,
                    Employee.locale,
                )
                .join(Employee, Employee.id == MeetingLink.employee_id)
                .where(MeetingLink.meeting_id.in_(meeting_ids))
            )
        ).all()
    )


async def queue_invites(
    session: AsyncSession, org_id: uuid.UUID, meeting_id: uuid.UUID, *, sequence: int
) -> None:
    """A calendar REQUEST to both people (keyed by SEQUENCE: a change sends a new one)."""
    await outbox.enqueue_many(
        session,
        [
            {
                "organization_id": org_id,
                "dedupe_key": f"meeting-invite:{p.meeting_id}:{p.role}:{sequence}",
                "kind": "meeting_invite",
                "recipient": p.email,
                "recipient_name": p.name,
                "locale": p.locale,
                "about_type": "meeting_link",
                "about_id": p.id,
                "group_id": meeting_id,
            }
            for p in await _participants(session, [meeting_id])
        ],
    )


async def cancel_future_meetings(
    session: AsyncSession, series_ids: Sequence[uuid.UUID], now: datetime | None = None
) -> int:
    """Cancel the scheduled meetings still to come and send both people a CANCEL."""
    now = now or utcnow()
    rows = (
        await session.execute(
            update(Meeting)
            .where(
                Meeting.series_id.in_(series_ids),
                Meeting.status == "scheduled",
                Meeting.scheduled_at > now,
            )
            .values(status="cancelled", sequence=Meeting.sequence + 1, updated_at=now)
            .returning(Meeting.id, Meeting.organization_id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not rows:
        return 0
    org_of = {m: o for m, o in rows}
    await outbox.enqueue_many(
        session,
        [
            {
                "organization_id": org_of[p.meeting_id],
                "dedupe_key": f"meeting-cancel:{p.meeting_id}:{p.role}",
                "kind": "meeting_cancel",
                "recipient": p.email,
                "recipient_name": p.name,
                "locale": p.locale,
                "about_type": "meeting_link",
                "about_id": p.id,
                "group_id": p.meeting_id,
            }
            for p in await _participants(session, list(org_of))
        ],
    )
    return len(rows)


async def materialise_meetings(db: Database, settings: Settings) -> int:
    """Worker step: keep every active series' next meetings materialised."""
    async with db.sessionmaker() as session:
        ids = (
            (
                await session.execute(
                    select(CheckinSeries.id).where(CheckinSeries.status == "active")
                )
            )
            .scalars()
            .all()
        )
    created = 0
    for series_id in ids:
        async with db.sessionmaker() as session, session.begin():
            series = await session.get(CheckinSeries, series_id)
            if series is not None:
                created += await materialise_series(session, series, settings)
    return created


async def end_series_of_inactive(db: Database, settings: Settings) -> int:
    """Worker step: a series whose manager or report was deactivated ends, and its
    future meetings are cancelled (with calendar CANCELs)."""
    now = utcnow()
    async with db.sessionmaker() as session, session.begin():
        inactive = select(Employee.id).where(Employee.active.is_(False))
        ended = (
            (
                await session.execute(
                    update(CheckinSeries)
                    .where(
                        CheckinSeries.status == "active",
                        or_(
                            CheckinSeries.manager_id.in_(inactive),
                            CheckinSeries.employee_id.in_(inactive),
                        ),
                    )
                    .values(status="ended", ended_at=now, updated_at=now)
                    .returning(CheckinSeries.id)
                    .execution_options(synchronize_session=False)
                )
            )
            .scalars()
            .all()
        )
        if ended:
            await cancel_future_meetings(session, ended, now)
    return len(ended)


async def send_checkins(db: Database, settings: Settings) -> int:
    """Worker step: at the lead time before each meeting, send the report the check-in.

    A meeting is claimed by flipping ``checkin_sent`` from false in the transaction that
    queues the email, so two workers never both send it."""
    now = utcnow()
    async with db.sessionmaker() as session:
        candidates = (
            await session.execute(
                select(Meeting.id, Meeting.scheduled_at, CheckinSeries.checkin_lead_hours)
                .join(CheckinSeries, CheckinSeries.id == Meeting.series_id)
                .where(
                    Meeting.status == "scheduled",
                    Meeting.checkin_sent.is_(False),
                    Meeting.checkin_submitted.is_(False),
                    Meeting.scheduled_at > now,
                    Meeting.scheduled_at <= now + timedelta(hours=MAX_LEAD_HOURS),
                )
            )
        ).all()
    due = [m for m, at, lead in candidates if at - timedelta(hours=lead) <= now]
    sent = 0
    for meeting_id in due:
        async with db.sessionmaker() as session, session.begin():
            claimed = await session.execute(
                update(Meeting)
                .where(Meeting.id == meeting_id, Meeting.checkin_sent.is_(False))
                .values(checkin_sent=True, updated_at=now)
                .returning(Meeting.organization_id)
                .execution_options(synchronize_session=False)
            )
            org_id = claimed.scalar_one_or_none()
            if org_id is None:
                continue  # another worker sent it
            for p in await _participants(session, [meeting_id]):
                if p.role == "report":
                    await outbox.enqueue(
                        session,
                        organization_id=org_id,
                        dedupe_key=f"checkin:{meeting_id}",
                        kind="checkin_request",
                        recipient=p.email,
                        recipient_name=p.name,
                        locale=p.locale,
                        about_type="meeting_link",
                        about_id=p.id,
                        group_id=meeting_id,
                    )
            sent += 1
    return sent
