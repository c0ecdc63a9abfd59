"""Demo one-on-ones: a few weekly series with past meetings (held, with talking points,
action items and a submitted check-in) and upcoming ones, so a newcomer can open a
meeting page as the manager and as the report."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.checkins import meetings
from app.checkins.models import ActionItem, CheckinSeries, Meeting, MeetingLink, TalkingPoint
from app.checkins.schemas import DEFAULT_QUESTIONS
from app.core.config import Settings
from app.core.db import new_id, utcnow
from app.employees.models import Employee
from app.scheduling import recurrence
from app.surveys import links

SERIES = 3
PAST_MEETINGS = 4


async def load_checkins(
    session: AsyncSession, org_id: uuid.UUID, settings: Settings
) -> list[uuid.UUID]:
    """Create the demo series: team leads with one report each."""
    leads = (
        (
            await session.execute(
                select(Employee)
                .where(
                    Employee.organization_id == org_id,
                    Employee.attributes["level"].as_string() == "manager",
                )
                .order_by(Employee.id)
            )
        )
        .scalars()
        .all()
    )
    now = utcnow()
    created: list[uuid.UUID] = []
    for lead in leads[:SERIES]:
        report = await session.scalar(
            select(Employee).where(Employee.manager_id == lead.id).order_by(Employee.id).limit(1)
        )
        if report is None:
            continue
        start = (now - timedelta(weeks=PAST_MEETINGS + 1)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        weekday = ["MO", "TU", "WE", "TH", "FR"][len(created) % 5]
        series = CheckinSeries(
            organization_id=org_id,
            manager_id=lead.id,
            employee_id=report.id,
            rrule=f"FREQ=WEEKLY;BYDAY={weekday};BYHOUR=10;BYMINUTE=0",
            timezone=lead.timezone,
            starts_at=start,
            duration_minutes=30,
            questions=[dict(q) for q in DEFAULT_QUESTIONS],
            checkin_lead_hours=24,
            status="active",
        )
        session.add(series)
        await session.flush()
        await _past_meetings(session, series, settings, now)
        await meetings.materialise_series(session, series, settings, now)
        created.append(series.id)
    return created


async def _past_meetings(
    session: AsyncSession, series: CheckinSeries, settings: Settings, now: Any
) -> None:
    past = recurrence.occurrences_after(
        series.rrule, series.starts_at, series.timezone, series.starts_at, 10
    )
    past = [p for p in past if p < now][-PAST_MEETINGS:]
    key_id, key = links.current_key(settings)
    for i, at in enumerate(past):
        meeting_id = new_id()
        await session.execute(
            insert(Meeting).values(
                id=meeting_id,
                organization_id=series.organization_id,
                series_id=series.id,
                scheduled_at=at,
                duration_minutes=series.duration_minutes,
                status="skipped" if i == 1 else "held",
                sequence=0,
                checkin_sent=True,
                checkin_submitted=i != 1,
                checkin_answers={
                    "feeling": 3 + i % 3,
                    "on_mind": "Release planning",
                    "discuss": "Career goals",
                }
                if i != 1
                else None,
                created_at=at,
                updated_at=at,
            )
        )
        for role, employee_id in (("manager", series.manager_id), ("report", series.employee_id)):
            link_id, salt, token_hash = links.new_link(key)
            await session.execute(
                insert(MeetingLink).values(
                    id=link_id,
                    meeting_id=meeting_id,
                    employee_id=employee_id,
                    role=role,
                    salt=salt,
                    key_id=key_id,
                    token_hash=token_hash,
                )
            )
        await session.execute(
            insert(TalkingPoint).values(
                id=new_id(),
                meeting_id=meeting_id,
                author_role="report",
                text="Feedback on the last sprint",
                done=True,
                created_at=at,
            )
        )
        await session.execute(
            insert(ActionItem).values(
                id=new_id(),
                series_id=series.id,
                meeting_id=meeting_id,
                text=f"Share the draft plan (week {i + 1})",
                owner_role="report",
                done=i < len(past) - 1,
                created_at=at,
                done_at=at + timedelta(days=2) if i < len(past) - 1 else None,
            )
        )


async def meeting_links(session: AsyncSession, settings: Settings) -> list[tuple[str, str, str]]:
    """(role, name, link) of the next scheduled meeting of the first demo series."""
    now = utcnow()
    row = (
        await session.execute(
            select(Meeting.id)
            .where(Meeting.status == "scheduled", Meeting.scheduled_at > now)
            .order_by(Meeting.scheduled_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    if row is None:
        return []
    out = []
    for link, name in (
        await session.execute(
            select(MeetingLink, Employee.name)
            .join(Employee, Employee.id == MeetingLink.employee_id)
            .where(MeetingLink.meeting_id == row)
            .order_by(MeetingLink.role)
        )
    ).all():
        token = links.recompute(settings, link.id, link.salt, link.key_id)
        out.append((link.role, name, f"{settings.public_base_url}/m/{token}"))
    return out
