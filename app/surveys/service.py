"""Survey definitions: create, read, list, change, and the schedule they follow."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.organizations import service as organization_service
from app.scheduling import recurrence
from app.surveys.models import Survey
from app.surveys.schemas import Schedule, SurveyCreate, SurveyRead, SurveyUpdate

DEFAULT_COMMENT_MIN_GROUP_SIZE = 5

# Allowed status changes; archived is final.
TRANSITIONS = {
    "draft": {"active", "archived"},
    "active": {"paused", "archived"},
    "paused": {"active", "archived"},
    "archived": set(),
}


def schedule_of(survey: Survey) -> Schedule | None:
    if survey.rrule is None or survey.starts_at is None:
        return None
    return Schedule(rrule=survey.rrule, timezone=survey.timezone, starts_at=survey.starts_at)


def to_read(survey: Survey) -> SurveyRead:
    return SurveyRead.model_validate(
        {
            **{c: getattr(survey, c) for c in SurveyRead.model_fields if hasattr(survey, c)},
            "schedule": schedule_of(survey),
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
    from datetime import timedelta

    return at - timedelta(microseconds=1)


def _check_comment_threshold(min_group: int, comment_min: int) -> None:
    if comment_min < min_group:
        raise Unprocessable.field(
            ["body", "comment_min_group_size"],
            f"must be at least min_group_size ({min_group}): comments are never shown "
            "for groups smaller than scores are",
        )


def _questions_json(questions: Sequence[Any]) -> list[dict[str, Any]]:
    return [q.model_dump(exclude_none=True) for q in questions]


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
        questions=_questions_json(data.questions),
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
    for field in (
        "name",
        "anonymous",
        "questions",
        "window_hours",
        "reminders_hours",
        "audience",
        "status",
    ):
        if field in changes and changes[field] is None:
            raise Unprocessable.field(["body", field], "may not be null")
    if survey.status == "archived" and changes:
        raise Conflict("an archived survey cannot change", code="survey_archived")
    if "status" in changes and changes["status"] != survey.status:
        if changes["status"] not in TRANSITIONS[survey.status]:
            raise Unprocessable.field(
                ["body", "status"], f"cannot go from {survey.status} to {changes['status']}"
            )
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
        survey.questions = _questions_json(data.questions)
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
