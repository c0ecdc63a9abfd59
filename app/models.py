"""Imports every domain's models so ``Base.metadata`` knows every table (Alembic, tests)."""

from app.checkins.models import (
    ActionItem,
    CheckinSeries,
    Meeting,
    MeetingLink,
    PrivateNote,
    TalkingPoint,
)
from app.core.idempotency import IdempotencyRecord
from app.employees.models import Employee
from app.notifications.models import OutboxMessage
from app.organizations.models import ApiKey, Organization
from app.surveys.models import Answer, Invitation, Response, Survey, Wave

__all__ = [
    "ActionItem",
    "Answer",
    "ApiKey",
    "CheckinSeries",
    "Employee",
    "IdempotencyRecord",
    "Invitation",
    "Meeting",
    "MeetingLink",
    "Organization",
    "OutboxMessage",
    "PrivateNote",
    "Response",
    "Survey",
    "TalkingPoint",
    "Wave",
]
