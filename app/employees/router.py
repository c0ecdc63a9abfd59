"""HTTP layer for the employee directory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.routing import APIRoute

from app.core.errors import error_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, page_of
from app.core.routing import api_router
from app.employees import importer, service
from app.employees.schemas import EmployeeCreate, EmployeeRead, EmployeeUpdate, ImportResult
from app.organizations.dependencies import Admin, Session

router = api_router(tags=["employees"])

IMPORT_EXAMPLE_CSV = (
    "email,name,team,department,manager_email,locale,timezone,attr.location\n"
    "omar.farouk@example.com,عمر فاروق,Sales,Commercial,,ar,Africa/Cairo,Cairo\n"
    "lena.berg@example.com,Lena Berg,Sales,Commercial,omar.farouk@example.com,"
    "en,Europe/Berlin,Berlin\n"
)


@router.get("/v1/employees", response_model=Page[EmployeeRead])
async def list_employees(
    principal: Admin,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
    team: Annotated[str | None, Query(max_length=200)] = None,
    department: Annotated[str | None, Query(max_length=200)] = None,
    active: bool | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Part of a name or email.")] = None,
) -> Page[EmployeeRead]:
    """The directory, filtered, one page at a time in the order employees were added."""
    rows = await service.list_employees(
        session,
        principal.organization_id,
        limit=limit,
        after=decode_cursor(cursor),
        team=team,
        department=department,
        active=active,
        q=q,
    )
    return page_of(rows, limit, EmployeeRead)


@router.post(
    "/v1/employees", response_model=EmployeeRead, status_code=201, responses=error_responses(409)
)
async def create_employee(body: EmployeeCreate, principal: Admin, session: Session) -> EmployeeRead:
    """Add one employee; locale and time zone default to the organization's."""
    employee = await service.create_employee(session, principal.organization_id, body)
    return EmployeeRead.model_validate(employee)


class _ImportRoute(APIRoute):
    """Runs the import's own text checks before the app-wide NUL and surrogate guard: a
    UTF-16 file (Excel's "Unicode Text") is full of NUL bytes and needs "save the file as
    UTF-8", and a bad string should be located by the row number the import counts from 1.
    Only bodies that guard would refuse anyway are refused here, so authentication still
    comes first for everything else."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_import(request: Request) -> Response:
            body = await request.body()
            content_type = request.headers.get("content-type", "")
            await asyncio.to_thread(importer.check_body_text, body, content_type)
            return await handle(request)

        return handle_import


async def import_employees(
    request: Request,
    principal: Admin,
    session: Session,
    deactivate_missing: Annotated[
        bool,
        Query(
            description="The file is the whole directory: deactivate active employees it "
            "does not list and activate those it does (unless their `active` says false). "
            "An empty file is refused."
        ),
    ] = False,
    atomic: Annotated[
        bool, Query(description="Apply nothing if any row has an error (422).")
    ] = False,
) -> ImportResult:
    """Upsert employees by email from a JSON array or a CSV file (UTF-8, BOM optional;
    comma, semicolon or tab separated)."""
    return await importer.import_employees(
        session,
        principal.organization_id,
        await request.body(),
        request.headers.get("content-type", ""),
        deactivate_missing=deactivate_missing,
        atomic=atomic,
    )


router.add_api_route(
    "/v1/employees/import",
    import_employees,
    methods=["POST"],
    response_model=ImportResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": {"type": "object"}},
                    "example": [
                        {
                            "email": "omar.farouk@example.com",
                            "name": "عمر فاروق",
                            "team": "Sales",
                            "attr.location": "Cairo",
                        },
                        {
                            "email": "lena.berg@example.com",
                            "name": "Lena Berg",
                            "manager_email": "omar.farouk@example.com",
                        },
                    ],
                },
                "text/csv": {"schema": {"type": "string"}, "example": IMPORT_EXAMPLE_CSV},
            },
        }
    },
    route_class_override=_ImportRoute,
)


@router.get(
    "/v1/employees/{employee_id}", response_model=EmployeeRead, responses=error_responses(404)
)
async def read_employee(employee_id: uuid.UUID, principal: Admin, session: Session) -> EmployeeRead:
    """One employee."""
    employee = await service.get_employee(session, principal.organization_id, employee_id)
    return EmployeeRead.model_validate(employee)


@router.patch(
    "/v1/employees/{employee_id}", response_model=EmployeeRead, responses=error_responses(404, 409)
)
async def update_employee(
    employee_id: uuid.UUID, body: EmployeeUpdate, principal: Admin, session: Session
) -> EmployeeRead:
    """Change the fields sent; the rest stay as they are."""
    employee = await service.update_employee(session, principal.organization_id, employee_id, body)
    return EmployeeRead.model_validate(employee)


@router.delete("/v1/employees/{employee_id}", status_code=204, responses=error_responses(404))
async def deactivate_employee(
    employee_id: uuid.UUID, principal: Admin, session: Session
) -> Response:
    """Deactivate: no more invitations or meetings; their history stays."""
    await service.deactivate_employee(session, principal.organization_id, employee_id)
    return Response(status_code=204)
