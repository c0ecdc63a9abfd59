"""Check-in series for HR: create, read, list, change, end; meetings as metadata only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.checkins import meetings
from app.checkins.models import CheckinSeries, Meeting
from app.checkins.schemas import DEFAULT_QUESTIONS, CheckinCreate, CheckinUpdate, rule_problem
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.employees.models import Employee

SCHEDULE_FIELDS = ("rrule", "timezone", "starts_at", "duration_minutes")


async def _check_person(
    session: AsyncSession, org_id: uuid.UUID, employee_id: uuid.UUID, field: str
) -> None:
    person = await session.get(Employee, employee_id)
    if person is None or person.organization_id != org_id:
        raise Unprocessable.field(["body", field], f"no employee with id {employee_id}")
    if not person.active:
        raise Unprocessable.field(["body", field], "this employee is deactivated")


async def create_series(
    session: AsyncSession, org_id: uuid.UUID, data: CheckinCreate, settings: Settings
) -> CheckinSeries:
    """Create a series and schedule (and invite) its first meetings right away."""
    await _check_person(session, org_id, data.manager_id, "manager_id")
    await _check_person(session, org_id, data.employee_id, "employee_id")
    series = CheckinSeries(
        organization_id=org_id,
        manager_id=data.manager_id,
        employee_id=data.employee_id,
        rrule=data.rrule.strip(),
        timezone=data.timezone,
        # In UTC, as the database gives it back: the answer to this POST then reads the
        # same as every later GET.
        starts_at=data.starts_at.astimezone(UTC),
        duration_minutes=data.duration_minutes,
        questions=_questions(data.questions),
        checkin_lead_hours=data.checkin_lead_hours,
        status="active",
    )
    session.add(series)
    await session.flush()
    await meetings.materialise_series(session, series, settings)
    return series


def _questions(questions: Sequence[Any] | None) -> list[dict[str, Any]]:
    if questions is None:
        return [dict(q) for q in DEFAULT_QUESTIONS]
    return [q.model_dump(exclude_none=True) for q in questions]


async def get_series(
    session: AsyncSession, org_id: uuid.UUID, series_id: uuid.UUID, *, for_update: bool = False
) -> CheckinSeries:
    """The organization's series, or 404: another organization's id is not found either.
    ``for_update`` holds its row until commit, so a worker materialising the series
    waits and then reads the new rule (meetings.materialise_series locks it too)."""
    series = await session.get(CheckinSeries, series_id, with_for_update=for_update)
    if series is None or series.organization_id != org_id:
        raise NotFound(f"no check-in series with id {series_id}")
    return series


async def list_series(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    manager_id: uuid.UUID | None,
    employee_id: uuid.UUID | None,
    status: str | None,
    limit: int,
    after: uuid.UUID | None,
) -> Sequence[CheckinSeries]:
    """One page (``limit + 1`` rows, to tell whether more follow) in creation order."""
    query = select(CheckinSeries).where(CheckinSeries.organization_id == org_id)
    if manager_id is not None:
        query = query.where(CheckinSeries.manager_id == manager_id)
    if employee_id is not None:
        query = query.where(CheckinSeries.employee_id == employee_id)
    if status is not None:
        query = query.where(CheckinSeries.status == status)
    if after is not None:
        query = query.where(CheckinSeries.id > after)
    return (
        (await session.execute(query.order_by(CheckinSeries.id).limit(limit + 1))).scalars().all()
    )


async def update_series(
    session: AsyncSession,
    org_id: uuid.UUID,
    series_id: uuid.UUID,
    data: CheckinUpdate,
    settings: Settings,
) -> CheckinSeries:
    """Apply the fields sent; a change to when meetings happen reschedules the future ones."""
    series = await get_series(session, org_id, series_id, for_update=True)
    if series.status != "active":
        raise Conflict("an ended series cannot change", code="series_ended")
    changes = data.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if value is None:
            raise Unprocessable.field(["body", field], "may not be null")
    if "rrule" in changes:
        changes["rrule"] = changes["rrule"].strip()
    if "starts_at" in changes:
        changes["starts_at"] = changes["starts_at"].astimezone(UTC)
    rrule = changes.get("rrule", series.rrule)
    timezone = changes.get("timezone", series.timezone)
    starts_at = changes.get("starts_at", series.starts_at)
    # Judged only when the schedule changes: a rule stored under older, looser checks
    # keeps running, and changing the length or the questions must not trip over it.
    if any(f in changes for f in ("rrule", "timezone", "starts_at")):
        problem = rule_problem(rrule, starts_at, timezone)
        if problem is not None:
            raise Unprocessable.field(["body", problem[0]], problem[1])
    reschedule = any(f in changes and changes[f] != getattr(series, f) for f in SCHEDULE_FIELDS)
    for field in ("rrule", "timezone", "starts_at", "duration_minutes", "checkin_lead_hours"):
        if field in changes:
            setattr(series, field, changes[field])
    if "questions" in changes:
        series.questions = _questions(data.questions)
    series.updated_at = utcnow()
    await session.flush()
    if reschedule:
        # Meetings move (links, answers and talking points with them); calendars get a
        # REQUEST for each moved one and a CANCEL only for those the new rule drops.
        await meetings.reschedule_series(session, series, settings)
    return series


async def end_series(session: AsyncSession, org_id: uuid.UUID, series_id: uuid.UUID) -> None:
    """End a series: no more meetings; future ones are cancelled in both calendars."""
    series = await get_series(session, org_id, series_id)
    if series.status == "ended":
        return
    series.status = "ended"
    series.ended_at = utcnow()
    await session.flush()
    await meetings.cancel_future_meetings(session, [series.id])


async def list_meetings(
    session: AsyncSession,
    org_id: uuid.UUID,
    series_id: uuid.UUID,
    *,
    limit: int,
    after: uuid.UUID | None,
) -> Sequence[Meeting]:
    """One page of a series' meetings in time order (a new cadence adds meetings between
    ones made earlier, so id order would not be a timeline); the router shows only that
    they happen. The cursor stays the last meeting's id: a series has one meeting per
    time, so its time alone places the next page."""
    await get_series(session, org_id, series_id)
    query = select(Meeting).where(Meeting.series_id == series_id)
    if after is not None:
        last_time = await session.scalar(
            select(Meeting.scheduled_at).where(Meeting.series_id == series_id, Meeting.id == after)
        )
        if last_time is None:  # else the page would be empty and look like the end
            raise Unprocessable.field(["query", "cursor"], "not a cursor of this series' meetings")
        query = query.where(Meeting.scheduled_at > last_time)
    query = query.order_by(Meeting.scheduled_at).limit(limit + 1)
    return (await session.execute(query)).scalars().all()
