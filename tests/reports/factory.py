"""Report test data written straight into the database: surveys, closed waves,
invitations, responses and answers, the way app/demo/surveys.py's ``_closed_wave``
writes them. Fast and deterministic; every answered person is recorded so tests can
count the expected figures themselves from what they inserted."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, update

from app.core.db import Database, new_id
from app.employees.models import Employee
from app.organizations.models import Organization
from app.surveys import waves
from app.surveys.models import Answer, Invitation, Response, Survey, Wave

OPTIONS = [{"key": k, "label": k.title()} for k in ("laptop", "phone", "desk")]
QUESTIONS: list[dict[str, Any]] = [
    {"key": "enps", "kind": "enps", "required": True, "prompt": "Recommend us?"},
    {"key": "workload", "kind": "rating", "scale": 5, "required": True, "prompt": "Workload"},
    {"key": "tool", "kind": "single_choice", "options": OPTIONS, "prompt": "Main tool"},
    {"key": "perks", "kind": "multi_choice", "options": OPTIONS, "prompt": "Perks"},
    {"key": "recognised", "kind": "yes_no", "required": False, "prompt": "Recognised?"},
    {"key": "comment", "kind": "text", "required": False, "prompt": "Anything else?"},
]
KINDS = {q["key"]: q["kind"] for q in QUESTIONS}


@dataclass
class Person:
    """One invitee: segments as the wave snapshot them, and the answers given (``None``:
    invited, did not answer). Reusing a Person across waves reuses its employee row."""

    team: str | None = None
    department: str | None = None
    manager_id: uuid.UUID | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    answers: dict[str, Any] | None = None
    employee_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Inserted:
    """An answered invitation as it went into the database."""

    wave_id: uuid.UUID
    survey_id: uuid.UUID
    occurrence_at: datetime
    person: Person

    @property
    def answers(self) -> dict[str, Any]:
        return self.person.answers or {}


def group_of(person: Person, group_by: str | None) -> Any:
    """The segment value a report groups this person under (None for no grouping)."""
    if group_by is None:
        return None
    if group_by == "manager":
        return person.manager_id
    if group_by in ("team", "department"):
        return getattr(person, group_by)
    return person.attributes.get(group_by.removeprefix("attribute:"))


def people(
    n: int,
    *,
    team: str | None = None,
    department: str | None = None,
    manager_id: uuid.UUID | None = None,
    attributes: dict[str, str] | None = None,
    enps: Iterable[int | None] | None = None,
    answered: bool = True,
    **answers: Any,
) -> list[Person]:
    """``n`` people of one segment; eNPS scores cycle through ``enps`` (default a
    spread over 0-10), other answers as given (a list cycles, a value repeats)."""
    scores = list(enps) if enps is not None else [10, 9, 8, 7, 6, 3, 9, 10, 0, 8]
    out = []
    for i in range(n):
        given: dict[str, Any] | None = None
        if answered:
            given = {}
            score = scores[i % len(scores)]
            if score is not None:
                given["enps"] = score
            for key, value in answers.items():
                given[key] = value[i % len(value)] if isinstance(value, list) else value
        out.append(
            Person(
                team=team,
                department=department,
                manager_id=manager_id,
                attributes=dict(attributes or {}),
                answers=given,
            )
        )
    return out


class Factory:
    """Inserts report data for one organization through the test's database."""

    def __init__(self, db: Database, org_id: uuid.UUID) -> None:
        self.db = db
        self.org_id = org_id
        self.inserted: list[Inserted] = []
        self._surveys: dict[uuid.UUID, dict[str, Any]] = {}
        self._emails = 0

    async def organization(
        self, *, timezone: str | None = None, min_group_size: int | None = None
    ) -> None:
        values: dict[str, Any] = {}
        if timezone is not None:
            values["default_timezone"] = timezone
        if min_group_size is not None:
            values["min_group_size"] = min_group_size
        async with self.db.sessionmaker() as session, session.begin():
            await session.execute(
                update(Organization).where(Organization.id == self.org_id).values(**values)
            )

    async def employee(self, name: str, **fields: Any) -> uuid.UUID:
        """A directory row (managers need one: reports show them by name)."""
        (employee_id,) = await self._employees([{"name": name, **fields}])
        return employee_id

    async def _employees(self, rows: Sequence[dict[str, Any]]) -> list[uuid.UUID]:
        values = []
        for row in rows:
            self._emails += 1
            email = f"person{self._emails}.{uuid.uuid4().hex[:8]}@example.com"
            values.append(
                {
                    "id": new_id(),
                    "organization_id": self.org_id,
                    "email": email,
                    "email_key": email,
                    "name": row.get("name", f"Person {self._emails}"),
                    "team": row.get("team"),
                    "department": row.get("department"),
                    "manager_id": row.get("manager_id"),
                    "locale": "en",
                    "timezone": "UTC",
                    "attributes": row.get("attributes") or {},
                    "active": True,
                }
            )
        async with self.db.sessionmaker() as session, session.begin():
            await session.execute(insert(Employee), values)
        return [v["id"] for v in values]

    async def survey(
        self,
        *,
        name: str = "Pulse",
        min_group_size: int = 5,
        comment_min_group_size: int | None = None,
        questions: list[dict[str, Any]] | None = None,
    ) -> uuid.UUID:
        survey_id = new_id()
        values = {
            "id": survey_id,
            "organization_id": self.org_id,
            "name": name,
            "status": "active",
            "anonymous": True,
            "min_group_size": min_group_size,
            "comment_min_group_size": comment_min_group_size or max(5, min_group_size),
            "questions": questions or QUESTIONS,
            "timezone": "UTC",
            "window_hours": 120,
            "reminders_hours": [48],
            "audience": {"teams": [], "departments": [], "attributes": {}},
        }
        async with self.db.sessionmaker() as session, session.begin():
            await session.execute(insert(Survey).values(**values))
        self._surveys[survey_id] = values
        return survey_id

    async def wave(
        self,
        survey_id: uuid.UUID,
        occurrence_at: datetime,
        invitees: Sequence[Person],
        *,
        status: str = "closed",
        closes_at: datetime | None = None,
    ) -> uuid.UUID:
        """A wave with its invitations, and a response (with answers) for each invitee
        who answered. An open wave closes a week from now unless ``closes_at`` says."""
        survey = self._surveys[survey_id]
        wave_id = new_id()
        if closes_at is None and status == "open":
            closes_at = datetime.now(occurrence_at.tzinfo) + timedelta(days=7)
        elif closes_at is None:
            closes_at = occurrence_at + timedelta(hours=survey["window_hours"])
        new = [p for p in invitees if p.employee_id is None]
        ids = await self._employees(
            [{"team": p.team, "department": p.department, "attributes": p.attributes} for p in new]
        )
        for p, employee_id in zip(new, ids, strict=True):
            p.employee_id = employee_id
        invitations, responses, answers = [], [], []
        for p in invitees:
            invitations.append(
                {
                    "id": new_id(),
                    "wave_id": wave_id,
                    "employee_id": p.employee_id,
                    "salt": os.urandom(16),
                    "key_id": "x",
                    "token_hash": os.urandom(32).hex(),
                    "team": p.team,
                    "department": p.department,
                    "manager_id": p.manager_id,
                    "attributes": p.attributes,
                    "locale": "en",
                    "answered": p.answers is not None,
                }
            )
            if p.answers is None:
                continue
            response_id = uuid.uuid4()
            responses.append(
                {
                    "id": response_id,
                    "wave_id": wave_id,
                    "survey_id": survey_id,
                    "organization_id": self.org_id,
                    "employee_id": None,
                    "team": p.team,
                    "department": p.department,
                    "manager_id": p.manager_id,
                    "attributes": p.attributes,
                    "answered_on": occurrence_at.date(),
                }
            )
            for key, value in p.answers.items():
                answers.append(_answer_row(response_id, wave_id, key, value))
            self.inserted.append(Inserted(wave_id, survey_id, occurrence_at, p))
        async with self.db.sessionmaker() as session, session.begin():
            await session.execute(
                insert(Wave).values(
                    id=wave_id,
                    organization_id=self.org_id,
                    survey_id=survey_id,
                    occurrence_at=occurrence_at,
                    opens_at=occurrence_at,
                    closes_at=closes_at,
                    closed_at=closes_at if status == "closed" else None,
                    status=status,
                    questions=survey["questions"],
                    anonymous=True,
                    min_group_size=survey["min_group_size"],
                    reminders_hours=survey["reminders_hours"],
                    reminders_sent=1,
                    invited=len(invitees),
                    created_at=occurrence_at,
                )
            )
            await session.execute(insert(Invitation), invitations)
            await waves.record_segments(session, wave_id)
            if responses:
                await session.execute(insert(Response), responses)
            if answers:
                await session.execute(insert(Answer), answers)
        return wave_id


def _answer_row(response_id: uuid.UUID, wave_id: uuid.UUID, key: str, value: Any) -> dict[str, Any]:
    """The stored form of one answer, as app/surveys/answering.py stores it."""
    kind = KINDS.get(key, "enps" if key.startswith("enps") else "text")
    row: dict[str, Any] = {
        "response_id": response_id,
        "question_key": key,
        "wave_id": wave_id,
        "kind": kind,
        "score": None,
        "choices": None,
        "text": None,
    }
    if kind in ("enps", "rating", "yes_no"):
        row["score"] = int(value)
    elif kind == "single_choice":
        row["choices"] = [value]
    elif kind == "multi_choice":
        row["choices"] = list(value)
    else:
        row["text"] = value
    return row


def day(value: str) -> date:
    return date.fromisoformat(value)
