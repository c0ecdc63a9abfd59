"""Authentication and scope checks, shared by every router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import idempotency
from app.core.db import get_session
from app.core.errors import Forbidden, Unauthorized
from app.organizations import service
from app.organizations.service import Principal

# auto_error=False: we answer 401 ourselves, as problem+json with WWW-Authenticate.
bearer = HTTPBearer(auto_error=False, description="An API key: `pulse_<prefix>_<secret>`")

Session = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def current_principal(
    request: Request,
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthorized(
            "missing API key: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": 'Bearer realm="pulse"'},
            code="missing_api_key",
        )
    principal = await service.authenticate(session, credentials.credentials)
    if principal is None:
        raise Unauthorized(
            "invalid or revoked API key",
            headers={"WWW-Authenticate": 'Bearer realm="pulse", error="invalid_token"'},
            code="invalid_api_key",
        )
    request.state.principal = principal
    idempotency.caller_authenticated(request)
    return principal


async def require_admin(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    if principal.scope != "admin":
        raise Forbidden(
            f"this endpoint needs an admin key; this key has scope {principal.scope!r}",
            code="insufficient_scope",
        )
    return principal


async def require_reader(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    """Report endpoints: a `reports` key or an `admin` key."""
    return principal


Admin = Annotated[Principal, Depends(require_admin)]
Reader = Annotated[Principal, Depends(require_reader)]
