"""HTTP layer for deliveries: what was sent, what failed and why, and retries."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query

from app.core.errors import error_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, page_of
from app.core.routing import api_router
from app.notifications import service
from app.notifications.schemas import DeliveryRead, Status, TestEmailCreate
from app.organizations.dependencies import Admin, Session

router = api_router(tags=["deliveries"])


@router.get("/v1/deliveries", response_model=Page[DeliveryRead])
async def list_deliveries(
    principal: Admin,
    session: Session,
    status: Status | None = None,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DeliveryRead]:
    """Emails by status (`?status=failed` for what needs attention), with the server's reply;
    an anonymous survey's reminders come without their recipient (`recipient_hidden`)."""
    rows = await service.list_deliveries(
        session,
        principal.organization_id,
        status=status,
        kind=kind,
        limit=limit,
        after=decode_cursor(cursor),
    )
    return page_of(rows, limit, DeliveryRead)


@router.get(
    "/v1/deliveries/{delivery_id}", response_model=DeliveryRead, responses=error_responses(404)
)
async def read_delivery(delivery_id: uuid.UUID, principal: Admin, session: Session) -> DeliveryRead:
    """One email's delivery record."""
    return await service.read_delivery(session, principal.organization_id, delivery_id)


@router.post(
    "/v1/deliveries/{delivery_id}/retry",
    response_model=DeliveryRead,
    responses=error_responses(404, 409),
)
async def retry_delivery(
    delivery_id: uuid.UUID, principal: Admin, session: Session
) -> DeliveryRead:
    """Send a failed email again (it is rendered anew, with the same link)."""
    return await service.retry_delivery(session, principal.organization_id, delivery_id)


@router.post("/v1/deliveries/test", response_model=DeliveryRead, status_code=201)
async def send_test_email(
    body: TestEmailCreate, principal: Admin, session: Session
) -> DeliveryRead:
    """Queue a test email to check the email settings; watch it with GET /v1/deliveries/{id}."""
    return await service.queue_test_email(session, principal.organization_id, body)
