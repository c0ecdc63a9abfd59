"""HTTP layer for check-in series (HR): the series and that meetings happen, nothing more."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import Request, Response

from app.checkins import service
from app.checkins.schemas import CheckinCreate, CheckinRead, CheckinUpdate, MeetingRead
from app.core.errors import error_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, page_of
from app.core.routing import api_router
from app.organizations.dependencies import Admin, Session

router = api_router(tags=["check-ins"])


@router.get("/v1/checkins", response_model=Page[CheckinRead])
async def list_checkins(
    principal: Admin,
    session: Session,
    manager_id: uuid.UUID | None = None,
    employee_id: uuid.UUID | None = None,
    status: Literal["active", "ended"] | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[CheckinRead]:
    """Check-in series, optionally by manager, report or status."""
    rows = await service.list_series(
        session,
        principal.organization_id,
        manager_id=manager_id,
        employee_id=employee_id,
        status=status,
        limit=limit,
        after=decode_cursor(cursor),
    )
    return page_of(rows, limit, CheckinRead)


@router.post("/v1/checkins", response_model=CheckinRead, status_code=201)
async def create_checkin(
    body: CheckinCreate, request: Request, principal: Admin, session: Session
) -> CheckinRead:
    """Pair a manager and a report on a cadence; the first meetings are scheduled and
    both people invited at once."""
    series = await service.create_series(
        session, principal.organization_id, body, request.app.state.settings
    )
    return CheckinRead.model_validate(series)


@router.get("/v1/checkins/{series_id}", response_model=CheckinRead, responses=error_responses(404))
async def read_checkin(series_id: uuid.UUID, principal: Admin, session: Session) -> CheckinRead:
    """One series."""
    return CheckinRead.model_validate(
        await service.get_series(session, principal.organization_id, series_id)
    )


@router.patch(
    "/v1/checkins/{series_id}", response_model=CheckinRead, responses=error_responses(404, 409)
)
async def update_checkin(
    series_id: uuid.UUID, body: CheckinUpdate, request: Request, principal: Admin, session: Session
) -> CheckinRead:
    """Change a series; a new cadence or duration reschedules the future meetings."""
    series = await service.update_series(
        session, principal.organization_id, series_id, body, request.app.state.settings
    )
    return CheckinRead.model_validate(series)


@router.delete("/v1/checkins/{series_id}", status_code=204, responses=error_responses(404))
async def end_checkin(series_id: uuid.UUID, principal: Admin, session: Session) -> Response:
    """End the series and cancel its future meetings (both calendars get a CANCEL)."""
    await service.end_series(session, principal.organization_id, series_id)
    return Response(status_code=204)


@router.get(
    "/v1/checkins/{series_id}/meetings",
    response_model=Page[MeetingRead],
    responses=error_responses(404),
)
async def list_meetings(
    series_id: uuid.UUID,
    principal: Admin,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[MeetingRead]:
    """When meetings are, whether they were held or skipped and whether the check-in was
    done. Never what was said."""
    rows = await service.list_meetings(
        session, principal.organization_id, series_id, limit=limit, after=decode_cursor(cursor)
    )
    return page_of(rows, limit, MeetingRead)
