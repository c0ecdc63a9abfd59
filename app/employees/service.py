"""The employee directory: create, change, deactivate, list, and bulk import."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import new_id, refresh_statistics, utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.employees.models import Employee
from app.employees.schemas import EmployeeCreate, EmployeeUpdate, email_key
from app.organizations import service as organization_service

# A chain deeper than this is a cycle or corrupt data; real organizations stay far below.
MAX_CHAIN_DEPTH = 10_000


async def get_employee(
    session: AsyncSession, org_id: uuid.UUID, employee_id: uuid.UUID
) -> Employee:
    """The employee, or 404 when it is missing or belongs to another organization."""
    employee = await session.get(Employee, employee_id)
    if employee is None or employee.organization_id != org_id:
        raise NotFound(f"no employee with id {employee_id}")
    return employee


async def _email_taken(
    session: AsyncSession, org_id: uuid.UUID, key: str, except_id: uuid.UUID | None = None
) -> bool:
    query = select(Employee.id).where(Employee.organization_id == org_id, Employee.email_key == key)
    if except_id is not None:
        query = query.where(Employee.id != except_id)
    return (await session.scalar(query)) is not None


def _email_conflict(email: str) -> Conflict:
    return Conflict(
        f"email: {email} is already in the directory",
        errors=[{"loc": ["body", "email"], "msg": "already in the directory"}],
        code="email_taken",
    )


async def _flush_unique_email(session: AsyncSession, email: str) -> None:
    """Flush, answering 409 if the email was taken after our look-up: that look-up only
    gives the usual answer early, a concurrent request can win the race in between, and
    then the unique constraint decides."""
    try:
        await session.flush()
    except IntegrityError as exc:
        if "email_key" not in str(exc.orig):
            raise
        raise _email_conflict(email) from exc


async def _check_manager(
    session: AsyncSession, org_id: uuid.UUID, employee_id: uuid.UUID, manager_id: uuid.UUID
) -> None:
    """422 unless the manager exists in the organization and the chain above them never
    reaches the employee (which would close a cycle)."""
    loc = ["body", "manager_id"]
    if manager_id == employee_id:
        raise Unprocessable.field(loc, "an employee cannot manage themselves")
    current: uuid.UUID | None = manager_id
    seen: set[uuid.UUID] = set()
    first = True
    while current is not None and len(seen) < MAX_CHAIN_DEPTH:
        row = (
            await session.execute(
                select(Employee.organization_id, Employee.manager_id).where(Employee.id == current)
            )
        ).one_or_none()
        if row is None or row.organization_id != org_id:
            if first:
                raise Unprocessable.field(loc, f"no employee with id {manager_id}")
            break
        first = False
        if row.manager_id == employee_id:
            raise Unprocessable.field(
                loc, "this manager reports (directly or not) to the employee: a cycle"
            )
        seen.add(current)
        current = row.manager_id
        if current in seen:
            break


async def create_employee(
    session: AsyncSession, org_id: uuid.UUID, data: EmployeeCreate
) -> Employee:
    key = email_key(data.email)
    if await _email_taken(session, org_id, key):
        raise _email_conflict(data.email)
    org = await organization_service.get_organization(session, org_id)
    employee = Employee(
        id=new_id(),
        organization_id=org_id,
        email=data.email,
        email_key=key,
        name=data.name,
        team=data.team,
        department=data.department,
        locale=data.locale or org.default_locale,
        timezone=data.timezone or org.default_timezone,
        attributes=dict(data.attributes),
        active=data.active,
    )
    if data.manager_id is not None:
        await _check_manager(session, org_id, employee.id, data.manager_id)
        employee.manager_id = data.manager_id
    session.add(employee)
    await _flush_unique_email(session, data.email)
    return employee


async def update_employee(
    session: AsyncSession, org_id: uuid.UUID, employee_id: uuid.UUID, data: EmployeeUpdate
) -> Employee:
    employee = await get_employee(session, org_id, employee_id)
    changes = data.model_dump(exclude_unset=True)
    for field in ("email", "name", "locale", "timezone", "attributes", "active"):
        if field in changes and changes[field] is None:
            raise Unprocessable.field(["body", field], "may not be null")
    if "email" in changes:
        key = email_key(changes["email"])
        if await _email_taken(session, org_id, key, except_id=employee.id):
            raise _email_conflict(changes["email"])
        employee.email_key = key
    if changes.get("manager_id") is not None:
        await _check_manager(session, org_id, employee.id, changes["manager_id"])
    for field, value in changes.items():
        setattr(employee, field, value)
    await _flush_unique_email(session, employee.email)
    return employee


async def deactivate_employee(
    session: AsyncSession, org_id: uuid.UUID, employee_id: uuid.UUID
) -> None:
    """Deactivate rather than delete: their past invitations and meetings stay whole."""
    employee = await get_employee(session, org_id, employee_id)
    if employee.active:
        employee.active = False
        await session.flush()


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_employees(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    limit: int,
    after: uuid.UUID | None = None,
    team: str | None = None,
    department: str | None = None,
    active: bool | None = None,
    q: str | None = None,
) -> Sequence[Employee]:
    """One page (``limit + 1`` rows, to tell whether more follow) in creation order."""
    query = select(Employee).where(Employee.organization_id == org_id)
    if after is not None:
        query = query.where(Employee.id > after)
    if team is not None:
        query = query.where(Employee.team == team)
    if department is not None:
        query = query.where(Employee.department == department)
    if active is not None:
        query = query.where(Employee.active.is_(active))
    if q:
        pattern = _like_pattern(q)
        query = query.where(
            or_(
                Employee.name.ilike(pattern, escape="\\"),
                Employee.email_key.ilike(pattern, escape="\\"),
            )
        )
    rows = await session.execute(query.order_by(Employee.id).limit(limit + 1))
    return rows.scalars().all()


async def count_employees(session: AsyncSession, org_id: uuid.UUID) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Employee).where(Employee.organization_id == org_id)
        )
        or 0
    )


# Rows per bulk statement. SQLAlchemy prepares every row's parameters on the event loop
# before the driver sees them; in batches, a 100,000-row import lets other requests in
# every few hundred milliseconds instead of stalling them for seconds.
BULK_BATCH = 5_000


async def bulk_insert(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert many employees in a few executemany batches (used by import and the demo),
    then refresh the database's statistics of the directory: a directory that arrives in
    bulk changes how wave opening should read it (see ``refresh_statistics``)."""
    if rows:
        now = utcnow()
        for row in rows:
            row.setdefault("created_at", now)
            row.setdefault("updated_at", now)
        for start in range(0, len(rows), BULK_BATCH):
            await session.execute(insert(Employee), rows[start : start + BULK_BATCH])
        await refresh_statistics(session, Employee.__tablename__)


async def bulk_update(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Update many employees by primary key in a few executemany batches."""
    for start in range(0, len(rows), BULK_BATCH):
        await session.execute(update(Employee), rows[start : start + BULK_BATCH])
