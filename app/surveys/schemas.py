from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.core.validation import TimeZone, check_locale
from app.scheduling.recurrence import check_rule

QuestionKind = Literal["enps", "rating", "single_choice", "multi_choice", "yes_no", "text"]
SurveyStatus = Literal["draft", "active", "paused", "archived"]
TEXT_MAX = 2000
KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

# The built-in eNPS prompt when a survey gives none ({org} is the organization's name).
DEFAULT_ENPS_PROMPT = {
    "en": "How likely are you to recommend {org} as a place to work?",
    "fr": "Quelle est la probabilité que vous recommandiez {org} comme employeur ?",
    "ar": "ما مدى احتمال أن توصي بـ {org} كمكان للعمل؟",
    "de": "Wie wahrscheinlich ist es, dass Sie {org} als Arbeitgeber weiterempfehlen?",
    "es": "¿Qué probabilidad hay de que recomiendes {org} como lugar de trabajo?",
}


def _check_prompt(value: str | dict[str, str] | None) -> str | dict[str, str] | None:
    if isinstance(value, dict):
        if not value:
            raise ValueError('give at least one locale, e.g. {"en": "..."}')
        for locale, text in value.items():
            check_locale(locale)
            if not text.strip():
                raise ValueError(f"the {locale!r} prompt is empty")
    elif isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value


Prompt = Annotated[
    str | dict[str, Annotated[str, Field(max_length=500)]] | None,
    Field(max_length=500),
    AfterValidator(_check_prompt),
]


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Annotated[str, Field(pattern=KEY.pattern)]
    label: Prompt


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Annotated[
        str, Field(pattern=KEY.pattern, description="Stable id: answers and reports use it.")
    ]
    kind: QuestionKind
    prompt: Prompt = Field(
        default=None, description="One string, or one per locale. eNPS has a default."
    )
    required: bool = True
    scale: int | None = Field(
        default=None, ge=3, le=10, description="rating only: 1 to scale (default 5)."
    )
    options: list[Option] | None = Field(
        default=None, max_length=20, description="choice questions."
    )

    @model_validator(mode="after")
    def _kind_rules(self) -> Question:
        if self.kind == "rating":
            self.scale = self.scale or 5
        elif self.scale is not None:
            raise ValueError(f"scale: only rating questions have a scale, not {self.kind}")
        if self.kind in ("single_choice", "multi_choice"):
            if not self.options or len(self.options) < 2:
                raise ValueError(f"options: a {self.kind} question needs at least 2 options")
            keys = [o.key for o in self.options]
            if len(set(keys)) != len(keys):
                raise ValueError("options: option keys must be unique")
            if any(o.label is None for o in self.options):
                raise ValueError("options: every option needs a label")
        elif self.options is not None:
            raise ValueError(f"options: only choice questions have options, not {self.kind}")
        if self.prompt is None and self.kind != "enps":
            raise ValueError("prompt: required for every kind but enps")
        return self


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rrule: str = Field(max_length=500, examples=["FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9;BYMINUTE=0"])
    timezone: TimeZone
    starts_at: datetime = Field(description="RFC 3339 with offset; the rule's anchor.")

    @model_validator(mode="after")
    def _rule_parses(self) -> Schedule:
        if self.starts_at.tzinfo is None:
            raise ValueError("starts_at: needs a UTC offset, e.g. 2027-01-01T00:00:00+01:00")
        try:
            check_rule(self.rrule, self.starts_at, self.timezone)
        except ValueError as exc:
            raise ValueError(f"rrule: {exc}") from exc
        return self


class StoredSchedule(BaseModel):
    """A stored schedule as the API shows it. Not checked again: FastAPI validates what
    an endpoint returns, and a rule stored under older, looser checks must still be
    shown (and run) rather than turn every GET into a 500."""

    rrule: str
    timezone: str
    starts_at: datetime


class Audience(BaseModel):
    """Who is invited; empty means every active employee. Within a list any value
    matches; across lists all must."""

    model_config = ConfigDict(extra="forbid")

    teams: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=200)
    departments: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=200
    )
    attributes: dict[str, Annotated[str, Field(max_length=200)]] = Field(
        default_factory=dict, max_length=20
    )


SURVEY_EXAMPLE: dict[str, Any] = {
    "name": "Monthly pulse",
    "anonymous": True,
    "min_group_size": 5,
    "questions": [
        {"key": "enps", "kind": "enps"},
        {
            "key": "workload",
            "kind": "rating",
            "prompt": {"en": "My workload is manageable", "ar": "عبء عملي معقول"},
            "scale": 5,
        },
        {"key": "comment", "kind": "text", "prompt": "Anything else?", "required": False},
    ],
    "schedule": {
        "rrule": "FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9;BYMINUTE=0",
        "timezone": "Europe/Berlin",
        "starts_at": "2027-01-01T00:00:00+01:00",
    },
    "window_hours": 120,
    "reminders_hours": [48, 96],
    "audience": {"teams": ["Sales"], "departments": [], "attributes": {"location": "Cairo"}},
}


def _check_questions(questions: list[Question]) -> list[Question]:
    keys = [q.key for q in questions]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate question key(s): {', '.join(dupes)}")
    enps = [q.key for q in questions if q.kind == "enps"]
    if len(enps) > 1:
        # eNPS is one score per person per wave; two would count each respondent twice.
        raise ValueError(
            f"at most one eNPS question per survey; {', '.join(enps)} are all kind enps"
        )
    return questions


Questions = Annotated[
    list[Question], Field(min_length=1, max_length=10), AfterValidator(_check_questions)
]


def _check_reminders(window_hours: int | None, reminders: list[int] | None) -> None:
    if window_hours is None or reminders is None:
        return
    outside = [h for h in reminders if h >= window_hours]
    if outside:
        raise ValueError(
            f"reminders_hours: {outside} fall outside the {window_hours}-hour window; "
            "a reminder must come before the wave closes"
        )


class SurveyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SURVEY_EXAMPLE]})

    name: str = Field(min_length=1, max_length=200)
    anonymous: bool = True
    min_group_size: int | None = Field(
        default=None, ge=3, le=1000, description="Default: the organization's."
    )
    comment_min_group_size: int | None = Field(
        default=None, ge=3, le=1000, description="Default 5; never below min_group_size."
    )
    questions: Questions
    schedule: Schedule | None = None
    window_hours: int = Field(default=120, ge=1, le=24 * 90)
    reminders_hours: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list, max_length=10)
    audience: Audience = Field(default_factory=Audience)
    status: Literal["draft", "active"] = "draft"

    @model_validator(mode="after")
    def _reminders_in_window(self) -> SurveyCreate:
        _check_reminders(self.window_hours, self.reminders_hours)
        self.reminders_hours = sorted(set(self.reminders_hours))
        return self


class SurveyUpdate(BaseModel):
    """Every field optional. Changes apply to waves opened from now on; open waves keep
    the questions they were opened with."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"status": "paused"}]}
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    anonymous: bool | None = None
    min_group_size: int | None = Field(default=None, ge=3, le=1000)
    comment_min_group_size: int | None = Field(default=None, ge=3, le=1000)
    questions: Questions | None = None
    schedule: Schedule | None = None
    window_hours: int | None = Field(default=None, ge=1, le=24 * 90)
    reminders_hours: list[Annotated[int, Field(ge=1)]] | None = Field(default=None, max_length=10)
    audience: Audience | None = None
    status: SurveyStatus | None = None


class SurveyRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    **SURVEY_EXAMPLE,
                    "id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7d",
                    "status": "active",
                    "comment_min_group_size": 5,
                    "next_opening_at": "2027-02-01T09:00:00+01:00",
                    "created_at": "2027-01-01T08:00:00Z",
                    "updated_at": "2027-01-01T08:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    name: str
    status: SurveyStatus
    anonymous: bool
    min_group_size: int
    comment_min_group_size: int
    questions: list[dict[str, Any]]
    schedule: StoredSchedule | None
    window_hours: int
    reminders_hours: list[int]
    audience: dict[str, Any]
    next_opening_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ScheduleRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "timezone": "Europe/Berlin",
                    "openings": ["2027-03-15T09:00:00+01:00", "2027-04-05T09:00:00+02:00"],
                }
            ]
        }
    )

    timezone: str
    openings: list[datetime]


class WaveRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7d",
                    "survey_id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7e",
                    "opens_at": "2027-03-15T08:00:00Z",
                    "closes_at": "2027-03-20T08:00:00Z",
                    "closed_at": None,
                    "status": "open",
                    "invited": 42,
                    "responded": 17,
                    "response_rate": 0.405,
                    "deliveries": {"queued": 0, "sent": 41, "failed": 1, "cancelled": 3},
                }
            ]
        },
    )

    id: uuid.UUID
    survey_id: uuid.UUID
    opens_at: datetime
    closes_at: datetime
    closed_at: datetime | None
    status: Literal["open", "closed"]
    invited: int
    responded: int
    response_rate: float | None = Field(
        description="responded / invited, 3 decimals; null with no invitations."
    )
    deliveries: dict[str, int] = Field(
        description="Invitation and reminder emails: queued, sent, failed, and cancelled "
        "(not sent on purpose: answered before the reminder went out, wave closed)."
    )
