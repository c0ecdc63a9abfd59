from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.core.validation import Locale, TimeZone

Scope = Literal["admin", "reports"]

# Surrounding blanks are trimmed, so "  Acme" cannot pass for a second "Acme" and a name
# of spaces is refused as empty.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# Below 3, suppressing small groups would no longer protect anyone's anonymity.
GroupSize = Annotated[int, Field(ge=3, le=1000)]


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


def _settings_schema(schema: dict[str, Any]) -> None:
    """``None`` only stands for "not sent" (see ``_not_null``), so the published schema
    offers each field's own type, not null."""
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)
        options = prop.pop("anyOf", None)
        if options is not None:
            prop.update(next(o for o in options if o != {"type": "null"}))
    schema["examples"] = [{"default_timezone": "Europe/Berlin", "min_group_size": 7}]


class OrganizationUpdate(Schema):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_settings_schema)

    name: Name | None = None
    default_locale: Locale | None = None
    default_timezone: TimeZone | None = None
    min_group_size: GroupSize | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        """``None`` stands for "not sent"; an explicit ``null`` would otherwise be dropped
        silently and answer 200 for a change that never happened. Every setting has a
        value, so null is refused, naming the field."""
        if value is None:
            raise ValueError("may not be null; leave the field out to keep its value")
        return value


class ApiKeyCreate(Schema):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Grafana", "scope": "reports"}]},
    )

    name: Name
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
