from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.validation import Locale
from app.employees.schemas import Email

Status = Literal["pending", "sending", "sent", "failed", "cancelled"]


class DeliveryRead(BaseModel):
    """A queued or sent email as admins see it: never its text, link or token, and never
    who a message of an anonymous survey singles out (``recipient_hidden``)."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7d",
                    "kind": "survey_invitation",
                    "recipient": "lena.berg@example.com",
                    "recipient_hidden": False,
                    "status": "failed",
                    "attempts": 1,
                    "last_reply": "550 5.1.1 mailbox unavailable",
                    "about_type": "invitation",
                    "about_id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7e",
                    "group_id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7f",
                    "next_attempt_at": "2027-01-04T09:00:00Z",
                    "sent_at": None,
                    "created_at": "2027-01-04T09:00:00Z",
                    "updated_at": "2027-01-04T09:00:03Z",
                }
            ]
        },
    )

    id: uuid.UUID
    kind: str
    recipient: str | None = Field(
        description="The address; null when `recipient_hidden` is true.",
    )
    recipient_hidden: bool = Field(
        default=False,
        description="True for the reminders of an anonymous survey: reminders go only to "
        "people who have not answered, so their addresses (and the invitation they are "
        "about, and any address in the server's reply) would tell who did not answer. "
        "Status, attempts and the rest of the reply stay, and a failed one can be retried.",
    )
    status: Status
    attempts: int
    last_reply: str | None
    about_type: str | None
    about_id: uuid.UUID | None = Field(description="Null when `recipient_hidden` is true.")
    group_id: uuid.UUID | None
    next_attempt_at: datetime
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TestEmailCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"to": "hr@example.com", "name": "HR", "locale": "ar"}]},
    )

    to: Email
    name: str = Field(default="", max_length=200)
    locale: Locale = "en"


class DeliveryCounts(BaseModel):
    queued: int
    sent: int
    failed: int
    cancelled: int = Field(
        description="Not sent on purpose: the invitee answered before their reminder went "
        "out, the wave closed, the employee was deactivated."
    )
