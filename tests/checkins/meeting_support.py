"""What the meeting-page tests share: a manager and a report, a check-in series created
through the API (its meetings are materialised in that request), and each meeting's two
personal links, recomputed from their salts (the database holds no token)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from app.checkins.models import Meeting, MeetingLink
from app.core.config import Settings
from app.core.db import Database
from app.surveys import links

UNKNOWN_TOKEN = "A" * links.TOKEN_LENGTH


@dataclass
class MeetingLinks:
    id: uuid.UUID
    scheduled_at: datetime
    manager: str
    report: str

    def token(self, role: str) -> str:
        return self.manager if role == "manager" else self.report


@dataclass
class Series:
    id: str
    manager_id: str
    report_id: str
    meetings: list[MeetingLinks] = field(default_factory=list)

    @property
    def first(self) -> MeetingLinks:
        return self.meetings[0]


async def meeting_links(db: Database, settings: Settings, series_id: str) -> list[MeetingLinks]:
    """Every meeting of a series, earliest first, with both people's tokens."""
    async with db.sessionmaker() as session:
        rows = (
            await session.execute(
                select(Meeting.id, Meeting.scheduled_at, MeetingLink)
                .join(MeetingLink, MeetingLink.meeting_id == Meeting.id)
                .where(Meeting.series_id == uuid.UUID(series_id))
                .order_by(Meeting.scheduled_at)
            )
        ).all()
    found: dict[uuid.UUID, MeetingLinks] = {}
    for meeting_id, scheduled_at, link in rows:
        entry = found.setdefault(meeting_id, MeetingLinks(meeting_id, scheduled_at, "", ""))
        token = links.recompute(settings, link.id, link.salt, link.key_id)
        if link.role == "manager":
            entry.manager = token
        else:
            entry.report = token
    return sorted(found.values(), key=lambda m: m.scheduled_at)


async def start_meeting(
    db: Database, meeting_id: uuid.UUID, ago: timedelta = timedelta(minutes=5)
) -> datetime:
    """Move a meeting's start into the past, as if the clock had reached it: only a
    started meeting may be marked held. Returns the new start."""
    at = datetime.now(UTC) - ago
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Meeting).where(Meeting.id == meeting_id).values(scheduled_at=at)
        )
    return at


def person(email: str, locale: str, **extra: Any) -> dict[str, Any]:
    return {
        "email": email,
        "name": email.split("@")[0].replace(".", " ").title(),
        "locale": locale,
        "timezone": "Europe/Berlin",
        **extra,
    }


async def create_series(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    manager: dict[str, Any],
    report: dict[str, Any],
    questions: list[dict[str, Any]] | None = None,
) -> Series:
    """Both people (through the API) and a weekly series starting tomorrow."""
    ids = []
    for body in (manager, report):
        response = await client.post("/v1/employees", json=body, headers=headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    series_body: dict[str, Any] = {
        "manager_id": ids[0],
        "employee_id": ids[1],
        "rrule": "FREQ=WEEKLY;BYHOUR=10;BYMINUTE=0",
        "timezone": "Europe/Berlin",
        "starts_at": tomorrow.isoformat(),
        "duration_minutes": 30,
    }
    if questions is not None:
        series_body["questions"] = questions
    response = await client.post("/v1/checkins", json=series_body, headers=headers)
    assert response.status_code == 201, response.text
    return Series(response.json()["id"], ids[0], ids[1])
