"""HTTP layer for survey definitions, schedules and waves."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request

from app.core.errors import error_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from app.core.routing import api_router
from app.organizations.dependencies import Admin, Session
from app.surveys import service, waves
from app.surveys.schemas import (
    ScheduleRead,
    SurveyCreate,
    SurveyRead,
    SurveyStatus,
    SurveyUpdate,
    WaveRead,
)

router = api_router(tags=["surveys"])


@router.get("/v1/surveys", response_model=Page[SurveyRead])
async def list_surveys(
    principal: Admin,
    session: Session,
    status: SurveyStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[SurveyRead]:
    """The organization's surveys, optionally by status."""
    rows = await service.list_surveys(
        session, principal.organization_id, status=status, limit=limit, after=decode_cursor(cursor)
    )
    items = [service.to_read(s) for s in rows[:limit]]
    more = len(rows) > limit and items
    return Page[SurveyRead](items=items, next_cursor=encode_cursor(items[-1].id) if more else None)


@router.post("/v1/surveys", response_model=SurveyRead, status_code=201)
async def create_survey(body: SurveyCreate, principal: Admin, session: Session) -> SurveyRead:
    """Define a survey: 1 to 10 questions, an optional schedule, a window, reminders."""
    survey = await service.create_survey(session, principal.organization_id, body)
    return service.to_read(survey)


@router.get("/v1/surveys/{survey_id}", response_model=SurveyRead, responses=error_responses(404))
async def read_survey(survey_id: uuid.UUID, principal: Admin, session: Session) -> SurveyRead:
    """One survey."""
    return service.to_read(await service.get_survey(session, principal.organization_id, survey_id))


@router.patch(
    "/v1/surveys/{survey_id}", response_model=SurveyRead, responses=error_responses(404, 409)
)
async def update_survey(
    survey_id: uuid.UUID, body: SurveyUpdate, principal: Admin, session: Session
) -> SurveyRead:
    """Change a survey or its status (draft → active ⇄ paused → archived). Open waves
    keep the questions they were opened with."""
    survey = await service.update_survey(session, principal.organization_id, survey_id, body)
    return service.to_read(survey)


@router.get(
    "/v1/surveys/{survey_id}/schedule", response_model=ScheduleRead, responses=error_responses(404)
)
async def preview_schedule(
    survey_id: uuid.UUID,
    principal: Admin,
    session: Session,
    count: Annotated[int, Query(ge=1, le=100)] = 10,
) -> ScheduleRead:
    """The next `count` openings, in the survey's time zone, to check the rule."""
    survey = await service.get_survey(session, principal.organization_id, survey_id)
    return ScheduleRead(timezone=survey.timezone, openings=service.preview_schedule(survey, count))


@router.post(
    "/v1/surveys/{survey_id}/waves",
    response_model=WaveRead,
    status_code=201,
    responses=error_responses(404, 409),
)
async def open_wave(
    survey_id: uuid.UUID, request: Request, principal: Admin, session: Session
) -> WaveRead:
    """Open a wave now, outside the schedule; its invitations go out with the next tick."""
    wave = await waves.open_wave_now(
        session, principal.organization_id, survey_id, request.app.state.settings
    )
    return (await waves.to_reads(session, [wave]))[0]


@router.get(
    "/v1/surveys/{survey_id}/waves", response_model=Page[WaveRead], responses=error_responses(404)
)
async def list_waves(
    survey_id: uuid.UUID,
    principal: Admin,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[WaveRead]:
    """The survey's waves, oldest first, with their counts."""
    rows = await waves.list_waves(
        session, principal.organization_id, survey_id, limit=limit, after=decode_cursor(cursor)
    )
    items = await waves.to_reads(session, rows[:limit])
    more = len(rows) > limit and items
    return Page[WaveRead](items=items, next_cursor=encode_cursor(items[-1].id) if more else None)


@router.get("/v1/waves/{wave_id}", response_model=WaveRead, responses=error_responses(404))
async def read_wave(wave_id: uuid.UUID, principal: Admin, session: Session) -> WaveRead:
    """One wave: window, status, invited, responded, response rate, deliveries."""
    wave = await waves.get_wave(session, principal.organization_id, wave_id)
    return (await waves.to_reads(session, [wave]))[0]


@router.post("/v1/waves/{wave_id}/close", response_model=WaveRead, responses=error_responses(404))
async def close_wave(wave_id: uuid.UUID, principal: Admin, session: Session) -> WaveRead:
    """Close a wave early; its links answer 410 from now on."""
    wave = await waves.close_wave(session, principal.organization_id, wave_id)
    return (await waves.to_reads(session, [wave]))[0]
