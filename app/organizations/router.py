"""HTTP layer for the organization and its API keys."""

from __future__ import annotations

import uuid

from fastapi import Response

from app.core.errors import error_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, page_of
from app.core.routing import api_router
from app.organizations import service
from app.organizations.dependencies import Admin, Session
from app.organizations.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    OrganizationRead,
    OrganizationUpdate,
)

router = api_router(tags=["organization"])


@router.get("/v1/organization", response_model=OrganizationRead)
async def read_organization(principal: Admin, session: Session) -> OrganizationRead:
    """The calling key's organization and its defaults."""
    org = await service.get_organization(session, principal.organization_id)
    return OrganizationRead.model_validate(org)


@router.patch("/v1/organization", response_model=OrganizationRead, responses=error_responses(409))
async def update_organization(
    body: OrganizationUpdate, principal: Admin, session: Session
) -> OrganizationRead:
    """Change the name or the defaults new employees and surveys start from."""
    org = await service.update_organization(session, principal.organization_id, body)
    return OrganizationRead.model_validate(org)


@router.get("/v1/api-keys", response_model=Page[ApiKeyRead])
async def list_api_keys(
    principal: Admin, session: Session, limit: Limit = 50, cursor: Cursor = None
) -> Page[ApiKeyRead]:
    """The organization's keys, revoked ones included; never a secret."""
    keys = await service.list_api_keys(
        session, principal.organization_id, limit=limit, after=decode_cursor(cursor)
    )
    return page_of(keys, limit, ApiKeyRead)


@router.post("/v1/api-keys", response_model=ApiKeyCreated, status_code=201)
async def create_api_key(
    body: ApiKeyCreate, principal: Admin, session: Session, response: Response
) -> ApiKeyCreated:
    """Create a key. The answer holds the whole key; it is never shown again."""
    key, plaintext = await service.create_api_key(session, principal.organization_id, body)
    # No cache may keep the secret, and the idempotency layer then neither stores nor
    # replays this answer (a retry creates another key; the lost one can be revoked).
    response.headers["Cache-Control"] = "no-store"
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=plaintext)


@router.delete("/v1/api-keys/{key_id}", status_code=204, responses=error_responses(404))
async def revoke_api_key(key_id: uuid.UUID, principal: Admin, session: Session) -> Response:
    """Revoke a key at once; requests with it answer 401 from then on."""
    await service.revoke_api_key(session, principal.organization_id, key_id)
    return Response(status_code=204)
