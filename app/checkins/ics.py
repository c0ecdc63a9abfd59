"""Calendar invites (RFC 5545 / iTIP RFC 5546) built with the icalendar library.

One VEVENT per meeting with a stable UID, so an update or a cancellation replaces the
event in Google Calendar, Outlook and Apple Calendar; SEQUENCE is raised on every
change; times carry their TZID and the calendar holds the matching VTIMEZONE."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

from app.checkins import messages
from app.core.db import utcnow

PRODID = "-//Pulse//One-on-ones//EN"
Method = Literal["REQUEST", "CANCEL"]


@dataclass(frozen=True)
class Person:
    name: str
    email: str


def meeting_uid(meeting_id: uuid.UUID) -> str:
    return f"meeting-{meeting_id}@pulse"


def wording(locale: str, other: str, url: str) -> tuple[str, str]:
    """SUMMARY and DESCRIPTION in the recipient's language, chosen from their locale
    exactly as their invitation email's is, so the event reads like the mail it came
    with and like the page it links to."""
    return (
        messages.text(locale, "title", name=other),
        messages.text(locale, "ics_description", link=url),
    )


def _address(person: Person, role: str, *, organizer: bool = False) -> vCalAddress:
    address = vCalAddress(f"mailto:{person.email}")
    address.params["CN"] = vText(person.name or person.email)
    if not organizer:
        address.params["ROLE"] = vText("REQ-PARTICIPANT")
        address.params["PARTSTAT"] = vText("NEEDS-ACTION" if role == "report" else "ACCEPTED")
        address.params["RSVP"] = vText("TRUE" if role == "report" else "FALSE")
    return address


def build_invite(
    *,
    meeting_id: uuid.UUID,
    method: Method,
    sequence: int,
    scheduled_at: datetime,
    duration_minutes: int,
    timezone: str,
    manager: Person,
    report: Person,
    summary: str,
    description: str,
    url: str | None = None,
) -> bytes:
    """The meeting as an iCalendar object: REQUEST for new or changed, CANCEL for gone."""
    zone = ZoneInfo(timezone)
    start = scheduled_at.astimezone(zone)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    event = Event()
    event.add("uid", meeting_uid(meeting_id))
    event.add("sequence", sequence)
    event.add("dtstamp", utcnow())
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=duration_minutes))
    event.add("summary", summary)
    event.add("description", description)
    if url:
        event.add("url", url)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("organizer", _address(manager, "manager", organizer=True))
    event.add("attendee", _address(manager, "manager"), encode=False)
    event.add("attendee", _address(report, "report"), encode=False)
    cal.add_component(event)
    # A VTIMEZONE for the TZID, limited to the years around the meeting to keep it short.
    cal.add_missing_timezones(
        first_date=(start - timedelta(days=400)).date(),
        last_date=(start + timedelta(days=400)).date(),
    )
    return bytes(cal.to_ical())
