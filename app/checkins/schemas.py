from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.validation import TimeZone
from app.scheduling.recurrence import check_rule
from app.surveys.schemas import Question

# The pre-meeting check-in when a series gives none.
DEFAULT_QUESTIONS: list[dict[str, Any]] = [
    {
        "key": "feeling",
        "kind": "rating",
        "scale": 5,
        "required": True,
        "prompt": {
            "en": "How are you feeling this week?",
            "fr": "Comment vous sentez-vous cette semaine ?",
            "ar": "كيف تشعر هذا الأسبوع؟",
        },
    },
    {
        "key": "on_mind",
        "kind": "text",
        "required": False,
        "prompt": {
            "en": "What is on your mind?",
            "fr": "Qu'avez-vous en tête ?",
            "ar": "ما الذي يشغل بالك؟",
        },
    },
    {
        "key": "discuss",
        "kind": "text",
        "required": False,
        "prompt": {
            "en": "What would you like to discuss?",
            "fr": "De quoi aimeriez-vous parler ?",
            "ar": "ما الذي تود مناقشته؟",
        },
    },
]

SERIES_EXAMPLE: dict[str, Any] = {
    "manager_id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7d",
    "employee_id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7e",
    "rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;BYHOUR=10;BYMINUTE=0",
    "timezone": "Europe/Berlin",
    "starts_at": "2027-01-05T00:00:00+01:00",
    "duration_minutes": 30,
    "checkin_lead_hours": 24,
}


def rule_problem(rrule: str, starts_at: datetime, timezone: str) -> tuple[str, str] | None:
    """The field to blame and why, when the rule has no occurrence from ``starts_at``.

    A rule that would run from today but not from this start (9999-12-31, or after its
    own UNTIL) is a bad start, not a bad rule: naming ``rrule`` there sends people to
    fix the wrong field."""
    try:
        # check_rule, not parse_rule: a rule that never occurs (COUNT=0, 30 February,
        # an UNTIL before the start) would make a series with no meetings at all.
        check_rule(rrule, starts_at, timezone)
    except ValueError as exc:
        try:
            check_rule(rrule, datetime.now(UTC), timezone)
        except ValueError:
            return "rrule", str(exc)
        return "starts_at", "the rule has no occurrence at or after this time"
    return None


def _check_keys(questions: list[Question]) -> None:
    keys = [q.key for q in questions]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"questions: duplicate key(s) {', '.join(dupes)}")


class CheckinCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SERIES_EXAMPLE]})

    manager_id: uuid.UUID
    employee_id: uuid.UUID
    rrule: str = Field(max_length=500)
    timezone: TimeZone
    starts_at: datetime
    duration_minutes: int = Field(default=60, ge=15, le=240)
    questions: list[Question] | None = Field(
        default=None, max_length=10, description="0-10; default: feeling, on your mind, to discuss."
    )
    checkin_lead_hours: int = Field(default=24, ge=1, le=336)

    @model_validator(mode="after")
    def _check(self) -> CheckinCreate:
        if self.manager_id == self.employee_id:
            raise ValueError("employee_id: a manager cannot hold a one-on-one with themselves")
        if self.starts_at.tzinfo is None:
            raise ValueError("starts_at: needs a UTC offset, e.g. 2027-01-05T00:00:00+01:00")
        problem = rule_problem(self.rrule, self.starts_at, self.timezone)
        if problem is not None:
            raise ValueError(f"{problem[0]}: {problem[1]}")
        if self.questions:
            _check_keys(self.questions)
        return self


class CheckinUpdate(BaseModel):
    """Every field optional. A new cadence, time zone, start or duration moves the
    future meetings (same links and content; calendars get an updated REQUEST),
    cancels those the new cadence has no room for and schedules any it adds."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"duration_minutes": 45}]}
    )

    rrule: str | None = Field(default=None, max_length=500)
    timezone: TimeZone | None = None
    starts_at: datetime | None = None
    duration_minutes: int | None = Field(default=None, ge=15, le=240)
    questions: list[Question] | None = Field(default=None, max_length=10)
    checkin_lead_hours: int | None = Field(default=None, ge=1, le=336)

    @model_validator(mode="after")
    def _check(self) -> CheckinUpdate:
        if self.starts_at is not None and self.starts_at.tzinfo is None:
            raise ValueError("starts_at: needs a UTC offset")
        if self.questions:
            _check_keys(self.questions)
        return self


class CheckinRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    **SERIES_EXAMPLE,
                    "id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7f",
                    "questions": [],
                    "status": "active",
                    "ended_at": None,
                    "created_at": "2027-01-01T08:00:00Z",
                    "updated_at": "2027-01-01T08:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    manager_id: uuid.UUID
    employee_id: uuid.UUID
    rrule: str
    timezone: str
    starts_at: datetime
    duration_minutes: int
    questions: list[dict[str, Any]]
    checkin_lead_hours: int
    status: Literal["active", "ended"]
    ended_at: datetime | None
    created_at: datetime
    updated_at: datetime


class MeetingRead(BaseModel):
    """What HR sees of a meeting: that it happens. Never what was said."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c80",
                    "scheduled_at": "2027-01-05T10:00:00+01:00",
                    "status": "held",
                    "checkin_submitted": True,
                }
            ]
        },
    )

    id: uuid.UUID
    scheduled_at: datetime
    status: Literal["scheduled", "held", "skipped", "cancelled"]
    checkin_submitted: bool
