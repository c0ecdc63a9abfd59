from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.validation import Locale, TimeZone

Scope = Literal["admin", "reports"]


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class OrganizationRead(Schema):
    id: uuid.UUID
    name: str
    default_locale: str
    default_timezone: str
    min_group_size: int
    created_at: datetime
    updated_at: datetime


class OrganizationUpdate(Schema):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"default_timezone": "Europe/Berlin", "min_group_size": 7}]
        },
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    default_locale: Locale | None = None
    default_timezone: TimeZone | None = None
    min_group_size: int | None = Field(default=None, ge=3, le=1000)


class ApiKeyCreate(Schema):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Grafana", "scope": "reports"}]},
    )

    name: str = Field(min_length=1, max_length=200)
    scope: Scope


class ApiKeyRead(Schema):
    id: uuid.UUID
    name: str
    scope: Scope
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The whole key. Shown once; only its hash is stored.")
