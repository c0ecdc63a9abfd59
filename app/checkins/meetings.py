"""Meetings of a series: materialised ahead, invited, reminded with the check-in,
cancelled. Every step is keyed (unique meeting per series and time, unique link per
meeting and role, unique outbox key per email), so running twice does nothing twice."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.checkins.models import CheckinSeries, Meeting, MeetingLink
from app.core.config import Settings
from app.core.db import Database, new_id, utcnow
from app.employees.models import Employee
from app.notifications import outbox
from app.notifications.models import OutboxMessage
from app.scheduling import recurrence
from app.surveys import links

log = logging.getLogger("pulse.checkins")

# api.md: at least the next 4 occurrences or the next 8 weeks, whichever holds more.
AHEAD_COUNT = 4
AHEAD_SPAN = timedelta(weeks=8)
AHEAD_MAX = 120  # a daily cadence over 8 weeks, with room
MAX_LEAD_HOURS = 336  # the largest checkin_lead_hours a series may have

# The reply on a calendar REQUEST withdrawn before any sender took it; the first is the
# one the sender itself writes when it finds the meeting cancelled at send time.
CANCELLED = "not sent: the meeting was cancelled"
REPLACED = "not sent: replaced by a newer invitation"


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
    links and calendar invites, in the caller's transaction. Returns how many.

    A meeting cancelled at a time the rule holds again (one a sparser cadence dropped,
    when a denser one comes back) is scheduled again rather than left as a gap: the
    unique (series, time) key would otherwise block that time for good."""
    now = now or utcnow()
    # Lock the series and read it again: a cadence change committing meanwhile has moved
    # the meetings off their old times, and inserting at those times from a rule read
    # before it committed would double every meeting (two workers on PostgreSQL).
    locked = await session.scalar(
        select(CheckinSeries)
        .where(CheckinSeries.id == series.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if locked is None or locked.status != "active":
        return 0
    series = locked
    wanted = upcoming(series, now)
    if not wanted:
        return 0
    created = await _revive(session, series, wanted, now)
    for at in wanted:
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


async def _revive(
    session: AsyncSession, series: CheckinSeries, wanted: Sequence[datetime], now: datetime
) -> int:
    """Schedule again the cancelled meetings at ``wanted`` times; the raised SEQUENCE
    makes the new REQUEST (same UID) put the event back in both calendars."""
    rows = (
        await session.execute(
            update(Meeting)
            .where(
                Meeting.series_id == series.id,
                Meeting.status == "cancelled",
                Meeting.scheduled_at.in_(wanted),
            )
            .values(
                status="scheduled",
                sequence=Meeting.sequence + 1,
                duration_minutes=series.duration_minutes,
                updated_at=now,
            )
            .returning(Meeting.id, Meeting.sequence)
            .execution_options(synchronize_session=False)
        )
    ).all()
    for meeting_id, sequence in rows:
        await queue_invites(session, series.organization_id, meeting_id, sequence=sequence)
    return len(rows)


async def reschedule_series(
    session: AsyncSession, series: CheckinSeries, settings: Settings, now: datetime | None = None
) -> None:
    """Bring the future meetings in line with a changed cadence, time zone, start or
    duration, in the caller's transaction.

    Meetings are moved, not replaced: the check-in answers, talking points and private
    notes already written for "the next meeting", and the links both people were
    mailed, belong to that meeting wherever it now falls. So the future meetings (held
    or skipped ahead of time included) are paired in time order with the new times; a
    paired meeting keeps its UID and links and gets the new time and length, a raised
    SEQUENCE and a new REQUEST, which moves the event in both calendars. Meetings left
    over are cancelled (CANCEL); new times left over are materialised."""
    now = now or utcnow()
    future = (
        await session.execute(
            select(Meeting.id, Meeting.scheduled_at, Meeting.duration_minutes)
            .where(
                Meeting.series_id == series.id,
                Meeting.status != "cancelled",
                Meeting.scheduled_at > now,
            )
            .order_by(Meeting.scheduled_at)
        )
    ).all()
    wanted = upcoming(series, now)
    surplus = [m for m, _, _ in future[len(wanted) :]]
    if surplus:
        await _cancel(session, Meeting.id.in_(surplus), now)
    pairs = [
        (m, at, old_at)
        for (m, old_at, minutes), at in zip(future, wanted, strict=False)
        if at != old_at or minutes != series.duration_minutes
    ]
    # Pairing in order never crosses: a meeting moving later can only land on the time
    # of one that moves later still, and one moving earlier on that of one moving
    # earlier still. Moving the later ones from the last and the earlier ones from the
    # first frees each time before it is taken.
    later = sorted((p for p in pairs if p[1] > p[2]), key=lambda p: p[2], reverse=True)
    others = sorted((p for p in pairs if p[1] <= p[2]), key=lambda p: p[2])
    changed: list[tuple[uuid.UUID, int]] = []
    for meeting_id, at, old_at in later + others:
        if at != old_at:
            await _park_cancelled(session, series.id, at)
        sequence = (
            await session.execute(
                update(Meeting)
                .where(Meeting.id == meeting_id)
                .values(
                    scheduled_at=at,
                    duration_minutes=series.duration_minutes,
                    sequence=Meeting.sequence + 1,
                    updated_at=now,
                )
                .returning(Meeting.sequence)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one()
        changed.append((meeting_id, sequence))
    # The REQUEST still waiting with the old time or length would only be overtaken.
    await _withdraw_pending_invites(session, [m for m, _ in changed], now, REPLACED)
    for meeting_id, sequence in changed:
        await queue_invites(session, series.organization_id, meeting_id, sequence=sequence)
    await materialise_series(session, series, settings, now)


async def _park_cancelled(session: AsyncSession, series_id: uuid.UUID, at: datetime) -> None:
    """Free ``at`` from a cancelled meeting of the series so a live one can move there.

    The unique (series, time) key covers cancelled rows too, and the cancelled one must
    stay (its links answer 410 naming its time, its action items carry over), so it
    steps forward by the smallest amount the column holds: a microsecond, which every
    page and email, showing times to the minute, truncates away. A unique key on live
    meetings only would make this unnecessary."""
    parked = await session.scalar(
        select(Meeting.id).where(
            Meeting.series_id == series_id,
            Meeting.scheduled_at == at,
            Meeting.status == "cancelled",
        )
    )
    if parked is None:
        return
    spot = at + timedelta(microseconds=1)
    while await session.scalar(
        select(Meeting.id).where(Meeting.series_id == series_id, Meeting.scheduled_at == spot)
    ):
        spot += timedelta(microseconds=1)
    await session.execute(
        update(Meeting)
        .where(Meeting.id == parked)
        .values(scheduled_at=spot)
        .execution_options(synchronize_session=False)
    )


async def _create_links(
    session: AsyncSession, series: CheckinSeries, meeting_id: uuid.UUID, settings: Settings
) -> None:
    key_id, key = links.current_key(settings)
    rows = []
    for role, employee_id in (("manager", series.manager_id), ("report", series.employee_id)):
        link_id, salt, token_hash = links.new_link(key)
        rows.append(
            {
                "id": link_id,
                "meeting_id": meeting_id,
                "employee_id": employee_id,
                "role": role,
                "salt": salt,
                "key_id": key_id,
                "token_hash": token_hash,
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
    """Cancel the meetings still to come and send both people a CANCEL. One already
    marked skipped (or held) ahead of time is cancelled too: its event is still in both
    calendars, and an ended series keeps nothing to come."""
    now = now or utcnow()
    return await _cancel(
        session, and_(Meeting.series_id.in_(series_ids), Meeting.scheduled_at > now), now
    )


async def _cancel(session: AsyncSession, which: ColumnElement[bool], now: datetime) -> int:
    """Cancel the meetings ``which`` selects that are not cancelled yet, whatever
    their status (a skipped one is still in the calendars); returns how many.

    A CANCEL goes only to a person whose REQUEST went out (or is going out right now):
    their still-pending invites are withdrawn here instead, in this transaction, so a
    series created and ended before the worker ran mails nobody, rather than mailing
    both people a cancellation for every meeting they never heard of. Withdrawing is a
    conditional UPDATE, so on PostgreSQL it either wins the row from the sender's claim
    (the invite is never sent) or waits for the claim and then sees it as sending (the
    CANCEL is queued): an invite never goes out without its CANCEL following. At worst
    a sender that claimed the invite renders it after this commits, skips it, and the
    CANCEL goes out alone, which calendars ignore for an event they do not have.

    This writes outbox rows of another domain directly; ``outbox.withdraw`` would be
    its proper home."""
    rows = (
        await session.execute(
            update(Meeting)
            .where(which, Meeting.status != "cancelled")
            .values(status="cancelled", sequence=Meeting.sequence + 1, updated_at=now)
            .returning(Meeting.id, Meeting.organization_id, Meeting.sequence)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not rows:
        return 0
    meeting_ids = [m for m, _, _ in rows]
    await _withdraw_pending_invites(session, meeting_ids, now, CANCELLED)
    invited = set(
        (
            await session.execute(
                select(OutboxMessage.about_id).where(
                    OutboxMessage.kind == "meeting_invite",
                    OutboxMessage.group_id.in_(meeting_ids),
                    OutboxMessage.status.in_(("sent", "sending")),
                )
            )
        )
        .scalars()
        .all()
    )
    org_of = {m: o for m, o, _ in rows}
    sequence_of = {m: s for m, _, s in rows}
    await outbox.enqueue_many(
        session,
        [
            {
                "organization_id": org_of[p.meeting_id],
                # Keyed by SEQUENCE: a meeting scheduled again and cancelled again is
                # a new cancellation, not a duplicate of the first.
                "dedupe_key": (
                    f"meeting-cancel:{p.meeting_id}:{p.role}:{sequence_of[p.meeting_id]}"
                ),
                "kind": "meeting_cancel",
                "recipient": p.email,
                "recipient_name": p.name,
                "locale": p.locale,
                "about_type": "meeting_link",
                "about_id": p.id,
                "group_id": p.meeting_id,
            }
            for p in await _participants(session, meeting_ids)
            if p.id in invited
        ],
    )
    return len(rows)


async def _withdraw_pending_invites(
    session: AsyncSession, meeting_ids: Sequence[uuid.UUID], now: datetime, reason: str
) -> None:
    """Cancel the calendar REQUESTs of these meetings that no sender has claimed, with
    the same reply the sender writes when it skips one itself."""
    if not meeting_ids:
        return
    await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.kind == "meeting_invite",
            OutboxMessage.group_id.in_(meeting_ids),
            OutboxMessage.status == "pending",
        )
        .values(status="cancelled", lease_until=None, last_reply=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )


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
        # One transaction per series: a failure rolls back that series whole (no meeting
        # without its links and invites) and does not hold up the others.
        try:
            async with db.sessionmaker() as session, session.begin():
                series = await session.get(CheckinSeries, series_id)
                if series is not None:
                    created += await materialise_series(session, series, settings)
        except Exception:
            log.exception("could not materialise a series", extra={"series_id": str(series_id)})
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
    queues the email, so two workers never both send it. A series that asks no
    questions sends nothing (an email leading to an empty form), and its meetings stay
    unclaimed: questions added later still go out at the lead time."""
    now = utcnow()
    async with db.sessionmaker() as session:
        candidates = (
            await session.execute(
                select(
                    Meeting.id,
                    Meeting.scheduled_at,
                    CheckinSeries.checkin_lead_hours,
                    CheckinSeries.questions,
                )
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
    due = [
        m
        for m, at, lead, questions in candidates
        if questions and at - timedelta(hours=lead) <= now
    ]
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
