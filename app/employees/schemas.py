from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from app.core.validation import Locale, TimeZone

MAX_ATTRIBUTES = 50
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_email(value: str) -> str:
    """Syntax only, no DNS: documentation domains such as example.com are welcome, and
    ``test_environment`` admits the RFC 6761 ``.test`` names that test data also use."""
    try:
        return validate_email(
            value.strip(), check_deliverability=False, test_environment=True
        ).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from exc


def email_key(email: str) -> str:
    return email.lower()


def _blank_to_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def check_attributes(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes")
    for name in value:
        if not ATTRIBUTE_NAME.match(name):
            raise ValueError(f"attribute name {name!r}: use 1-64 letters, digits, '_' or '-'")
    return value


Email = Annotated[
    str, Field(max_length=320, examples=["amira.haddad@example.com"]), AfterValidator(check_email)
]
Name = Annotated[str, Field(max_length=200)]
Segment = Annotated[Annotated[str, Field(max_length=200)] | None, BeforeValidator(_blank_to_none)]
Attributes = Annotated[
    dict[str, Annotated[str, Field(max_length=200)]], AfterValidator(check_attributes)
]

EMPLOYEE_EXAMPLE: dict[str, Any] = {
    "email": "amira.haddad@example.com",
    "name": "أميرة حداد",
    "team": "Sales",
    "department": "Commercial",
    "manager_id": None,
    "locale": "ar",
    "timezone": "Africa/Cairo",
    "attributes": {"location": "Cairo"},
}


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class EmployeeCreate(Schema):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EMPLOYEE_EXAMPLE]})

    email: Email
    name: Name = ""
    team: Segment = None
    department: Segment = None
    manager_id: uuid.UUID | None = None
    locale: Locale | None = Field(default=None, description="Default: the organization's.")
    timezone: TimeZone | None = Field(default=None, description="Default: the organization's.")
    attributes: Attributes = Field(default_factory=dict)
    active: bool = True


class EmployeeUpdate(Schema):
    """Every field optional; only the fields sent change. ``manager_id: null`` clears it."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"team": "Support", "locale": "fr"}]}
    )

    email: Email | None = None
    name: Name | None = None
    team: Segment = None
    department: Segment = None
    manager_id: uuid.UUID | None = None
    locale: Locale | None = None
    timezone: TimeZone | None = None
    attributes: Attributes | None = None
    active: bool | None = None


class EmployeeRead(Schema):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **EMPLOYEE_EXAMPLE,
                    "id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7d",
                    "active": True,
                    "created_at": "2027-01-04T09:00:00Z",
                    "updated_at": "2027-01-04T09:00:00Z",
                }
            ]
        }
    )

    id: uuid.UUID
    email: str
    name: str
    team: str | None
    department: str | None
    manager_id: uuid.UUID | None
    locale: str
    timezone: str
    attributes: dict[str, str]
    active: bool
    created_at: datetime
    updated_at: datetime


class ImportRow(BaseModel):
    """One row of an import after its cells are parsed; absent fields stay unchanged."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    name: Name | None = None
    team: Segment = None
    department: Segment = None
    manager_email: Annotated[Email | None, BeforeValidator(_blank_to_none)] = None
    locale: Annotated[Locale | None, BeforeValidator(_blank_to_none)] = None
    timezone: Annotated[TimeZone | None, BeforeValidator(_blank_to_none)] = None
    active: Annotated[bool | None, BeforeValidator(_blank_to_none)] = None
    attributes: dict[str, Annotated[str | None, Field(max_length=200)]] = Field(
        default_factory=dict
    )


class ImportRowError(BaseModel):
    row: int = Field(
        description="1-based position among the data rows (the CSV header is not a row)."
    )
    field: str | None = Field(description="The column the error is about, when there is one.")
    msg: str


class ImportResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "created": 12,
                    "updated": 3,
                    "unchanged": 60,
                    "deactivated": 1,
                    "errors": [{"row": 4, "field": "email", "msg": "not a valid email address"}],
                }
            ]
        }
    )

    created: int
    updated: int
    unchanged: int
    deactivated: int
    errors: list[ImportRowError]
