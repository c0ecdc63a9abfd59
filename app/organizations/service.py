"""Organizations and API keys: creation, authentication, revocation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import utcnow
from app.core.errors import Conflict, NotFound
from app.core.security import generate_api_key, secret_matches, split_api_key
from app.organizations.models import ApiKey, Organization
from app.organizations.schemas import ApiKeyCreate, OrganizationUpdate

# last_used_at is written at most this often per key, so a busy dashboard does not turn
# every read into a write.
LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key, its organization and its scope."""

    key_id: uuid.UUID
    organization_id: uuid.UUID
    scope: str


async def get_or_create_organization(session: AsyncSession, name: str) -> Organization:
    org = (
        await session.execute(select(Organization).where(Organization.name == name))
    ).scalar_one_or_none()
    if org is None:
        org = Organization(name=name)
        session.add(org)
        await session.flush()
    return org


async def get_organization(session: AsyncSession, org_id: uuid.UUID) -> Organization:
    org = await session.get(Organization, org_id)
    if org is None:
        raise NotFound("organization not found")
    return org


async def update_organization(
    session: AsyncSession, org_id: uuid.UUID, data: OrganizationUpdate
) -> Organization:
    org = await get_organization(session, org_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "name" in changes and changes["name"] != org.name:
        taken = await session.scalar(
            select(Organization.id).where(Organization.name == changes["name"])
        )
        if taken is not None:
            raise _name_taken()
    for field, value in changes.items():
        setattr(org, field, value)
    try:
        await session.flush()
    except IntegrityError as exc:
        # The check above is not a lock: another transaction can take the name between it
        # and this write, and then the unique constraint decides. The request's session
        # is rolled back by its dependency when the Conflict propagates.
        if "name" in changes:
            raise _name_taken() from exc
        raise
    return org


def _name_taken() -> Conflict:
    return Conflict(
        "name: another organization already has this name",
        errors=[{"loc": ["body", "name"], "msg": "already taken"}],
    )


async def create_api_key(
    session: AsyncSession, org_id: uuid.UUID, data: ApiKeyCreate
) -> tuple[ApiKey, str]:
    """Create a key; the plaintext is returned once and never stored."""
    generated = generate_api_key()
    key = ApiKey(
        organization_id=org_id,
        name=data.name,
        scope=data.scope,
        prefix=generated.prefix,
        secret_hash=generated.secret_hash,
        created_at=utcnow(),
    )
    session.add(key)
    await session.flush()
    return key, generated.plaintext


async def list_api_keys(
    session: AsyncSession, org_id: uuid.UUID, *, limit: int, after: uuid.UUID | None
) -> list[ApiKey]:
    """One page of keys in creation order, revoked ones included; ``limit + 1`` rows are
    read so the caller knows whether another page follows."""
    query = select(ApiKey).where(ApiKey.organization_id == org_id)
    if after is not None:
        query = query.where(ApiKey.id > after)
    rows = await session.execute(query.order_by(ApiKey.id).limit(limit + 1))
    return list(rows.scalars())


async def revoke_api_key(session: AsyncSession, org_id: uuid.UUID, key_id: uuid.UUID) -> None:
    key = await session.get(ApiKey, key_id)
    if key is None or key.organization_id != org_id:
        raise NotFound("api key not found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()


async def authenticate(session: AsyncSession, token: str) -> Principal | None:
    """The principal for a presented key, or None for a malformed, unknown or revoked one."""
    parts = split_api_key(token)
    if parts is None:
        return None
    prefix, secret = parts
    key = (
        await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))
    ).scalar_one_or_none()
    if key is None or key.revoked_at is not None or not secret_matches(secret, key.secret_hash):
        return None
    now = utcnow()
    # The write holds the key's row until this request commits. Another request with the
    # same key skips the row rather than waiting (SKIP LOCKED, on PostgreSQL): otherwise a
    # long import would stall every request its key makes in the same minute.
    stale = (
        select(ApiKey.id)
        .where(
            ApiKey.id == key.id,
            (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < now - LAST_USED_GRANULARITY),
        )
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    await session.execute(update(ApiKey).where(ApiKey.id == stale).values(last_used_at=now))
    return Principal(key_id=key.id, organization_id=key.organization_id, scope=key.scope)
