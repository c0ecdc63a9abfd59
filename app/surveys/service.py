"""Survey definitions: create, read, list, change, and the schedule they follow."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.organizations import service as organization_service
from app.scheduling import recurrence
from app.surveys.models import Survey
from app.surveys.schemas import (
    DEFAULT_ENPS_PROMPT,
    Question,
    StoredSchedule,
    SurveyCreate,
    SurveyRead,
    SurveyUpdate,
)

DEFAULT_COMMENT_MIN_GROUP_SIZE = 5

# Allowed status changes; archived is final.
TRANSITIONS = {
    "draft": {"active", "archived"},
    "active": {"paused", "archived"},
    "paused": {"active", "archived"},
    "archived": set(),
}


def schedule_of(survey: Survey) -> StoredSchedule | None:
    if survey.rrule is None or survey.starts_at is None:
        return None
    # Stored rules were validated when written; re-validating on every read would turn a
    # rule that a later release checks more strictly into a 500 on GET.
    return StoredSchedule(
        rrule=survey.rrule,
        timezone=survey.timezone,
        starts_at=survey.starts_at.astimezone(ZoneInfo(survey.timezone)),
    )


def to_read(survey: Survey) -> SurveyRead:
    """The API view. Schedule times are shown in the survey's own zone, whatever offset
    they were written with or read back from the database (UTC), so the answer to a
    POST and a later GET are the same document."""
    next_opening = survey.next_opening_at
    return SurveyRead.model_validate(
        {
            **{c: getattr(survey, c) for c in SurveyRead.model_fields if hasattr(survey, c)},
            "schedule": schedule_of(survey),
            "next_opening_at": next_opening.astimezone(ZoneInfo(survey.timezone))
            if next_opening is not None
            else None,
        }
    )


def next_opening(survey: Survey, after: datetime) -> datetime | None:
    """The first scheduled opening strictly after ``after``, or None (no schedule, or
    the rule has run out)."""
    if survey.rrule is None or survey.starts_at is None:
        return None
    found = recurrence.occurrences_after(survey.rrule, survey.starts_at, survey.timezone, after, 1)
    return found[0] if found else None


def _refresh_next_opening(survey: Survey) -> None:
    if survey.status == "active":
        anchor = max(utcnow(), survey.starts_at) if survey.starts_at else utcnow()
        # An occurrence exactly at starts_at counts: search from just before it.
        survey.next_opening_at = next_opening(survey, _just_before(anchor))
    else:
        survey.next_opening_at = None


def _just_before(at: datetime) -> datetime:
    return at - timedelta(microseconds=1)


def _check_comment_threshold(min_group: int, comment_min: int) -> None:
    if comment_min < min_group:
        raise Unprocessable.field(
            ["body", "comment_min_group_size"],
            f"must be at least min_group_size ({min_group}): comments are never shown "
            "for groups smaller than scores are",
        )


def _questions_json(questions: Sequence[Question], org_name: str) -> list[dict[str, Any]]:
    """Questions as stored, with the built-in eNPS prompt filled in where none was given:
    stored rather than applied when shown, so the API shows HR exactly what employees
    read and a wave freezes it with the other questions."""
    out = []
    for q in questions:
        data = q.model_dump(exclude_none=True)
        if q.kind == "enps" and q.prompt is None:
            data["prompt"] = {
                locale: text.replace("{org}", org_name)
                for locale, text in DEFAULT_ENPS_PROMPT.items()
            }
        out.append(data)
    return out


async def create_survey(session: AsyncSession, org_id: uuid.UUID, data: SurveyCreate) -> Survey:
    org = await organization_service.get_organization(session, org_id)
    min_group = max(3, data.min_group_size or org.min_group_size)
    comment_min = data.comment_min_group_size or max(DEFAULT_COMMENT_MIN_GROUP_SIZE, min_group)
    _check_comment_threshold(min_group, comment_min)
    survey = Survey(
        organization_id=org_id,
        name=data.name,
        status=data.status,
        anonymous=data.anonymous,
        min_group_size=min_group,
        comment_min_group_size=comment_min,
        questions=_questions_json(data.questions, org.name),
        rrule=data.schedule.rrule if data.schedule else None,
        timezone=data.schedule.timezone if data.schedule else org.default_timezone,
        starts_at=data.schedule.starts_at if data.schedule else None,
        window_hours=data.window_hours,
        reminders_hours=list(data.reminders_hours),
        audience=data.audience.model_dump(),
    )
    _refresh_next_opening(survey)
    session.add(survey)
    await session.flush()
    return survey


async def get_survey(session: AsyncSession, org_id: uuid.UUID, survey_id: uuid.UUID) -> Survey:
    survey = await session.get(Survey, survey_id)
    if survey is None or survey.organization_id != org_id:
        raise NotFound(f"no survey with id {survey_id}")
    return survey


async def list_surveys(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    status: str | None,
    limit: int,
    after: uuid.UUID | None,
) -> Sequence[Survey]:
    query = select(Survey).where(Survey.organization_id == org_id)
    if status is not None:
        query = query.where(Survey.status == status)
    if after is not None:
        query = query.where(Survey.id > after)
    return (await session.execute(query.order_by(Survey.id).limit(limit + 1))).scalars().all()


async def update_survey(
    session: AsyncSession, org_id: uuid.UUID, survey_id: uuid.UUID, data: SurveyUpdate
) -> Survey:
    survey = await get_survey(session, org_id, survey_id)
    changes = data.model_dump(exclude_unset=True)
    # Only ``schedule`` may be null (it removes the schedule); a null elsewhere would be
    # silently ignored or stored as a broken row.
    for field in (
        "name",
        "anonymous",
        "min_group_size",
        "comment_min_group_size",
        "questions",
        "window_hours",
        "reminders_hours",
        "audience",
        "status",
    ):
        if field in changes and changes[field] is None:
            raise Unprocessable.field(["body", field], "may not be null")
    # The transition check comes first so that "archived → active" is named as the
    # status error it is, rather than a generic conflict.
    status_changed = "status" in changes and changes["status"] != survey.status
    if status_changed and changes["status"] not in TRANSITIONS[survey.status]:
        raise Unprocessable.field(
            ["body", "status"], f"cannot go from {survey.status} to {changes['status']}"
        )
    if survey.status == "archived" and changes:
        raise Conflict("an archived survey cannot change", code="survey_archived")
    if status_changed:
        survey.status = changes["status"]
    window = changes.get("window_hours", survey.window_hours)
    reminders = changes.get("reminders_hours", survey.reminders_hours)
    outside = [h for h in reminders if h >= window]
    if outside:
        raise Unprocessable.field(
            ["body", "reminders_hours"], f"{outside} fall outside the {window}-hour window"
        )
    survey.window_hours = window
    survey.reminders_hours = sorted(set(reminders))
    if "name" in changes:
        survey.name = changes["name"]
    if "anonymous" in changes:
        survey.anonymous = changes["anonymous"]
    if data.questions is not None:
        org = await organization_service.get_organization(session, org_id)
        survey.questions = _questions_json(data.questions, org.name)
    if data.audience is not None:
        survey.audience = data.audience.model_dump()
    if "schedule" in changes:
        survey.rrule = data.schedule.rrule if data.schedule else None
        survey.starts_at = data.schedule.starts_at if data.schedule else None
        if data.schedule:
            survey.timezone = data.schedule.timezone
    min_group = changes.get("min_group_size") or survey.min_group_size
    comment_min = changes.get("comment_min_group_size") or max(
        survey.comment_min_group_size, min_group
    )
    _check_comment_threshold(min_group, comment_min)
    survey.min_group_size, survey.comment_min_group_size = min_group, comment_min
    # Recompute the next opening only when what decides it changed: recomputing "from
    # now" on a rename would skip an occurrence that came due since the last tick.
    if status_changed or "schedule" in changes:
        _refresh_next_opening(survey)
    await session.flush()
    return survey


def preview_schedule(survey: Survey, count: int) -> list[datetime]:
    """The next ``count`` openings from now, in the survey's time zone."""
    if survey.rrule is None or survey.starts_at is None:
        return []
    start = max(utcnow(), survey.starts_at)
    return recurrence.occurrences_after(
        survey.rrule, survey.starts_at, survey.timezone, _just_before(start), count
    )
