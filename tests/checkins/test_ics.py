"""Calendar invites as the recipient gets them: delivered to a real SMTP server, the
``.ics`` part parsed back with icalendar and checked field by field (RFC 5545 / iTIP
RFC 5546), then cancelled with the same UID and a higher SEQUENCE.

The helpers here (people, a series, links, parsed mail) serve test_meetings.py too."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import icalendar
import pytest
from sqlalchemy import select

from app.checkins.models import Meeting, MeetingLink
from app.core.config import Settings
from app.core.db import Database
from app.notifications.sender import deliver_outbox
from app.surveys import links
from tests.conftest import Org, make_settings
from tests.notifications.smtp import Received, SmtpServer, running_smtp_server

BERLIN = ZoneInfo("Europe/Berlin")


def last_sunday(year: int, month: int) -> date:
    day = date(year, month + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def monday_before_change(month: int) -> datetime:
    """Midnight in Berlin of the Monday 13 days before the next daylight-saving change
    in ``month`` (3: spring, 10: autumn) that is more than two days away (so the first
    meeting is beyond a 24-hour check-in lead): a weekly Monday series from there has
    two meetings before the change and the rest after."""
    today = datetime.now(BERLIN).date()
    year = today.year
    while (monday := last_sunday(year, month) - timedelta(days=13)) <= today + timedelta(days=2):
        year += 1
    return datetime(monday.year, monday.month, monday.day, tzinfo=BERLIN)


def smtp_settings_for(database_url: str, server: SmtpServer) -> Settings:
    """Same secret as the app's settings, so links recomputed here are the mailed ones."""
    return make_settings(database_url, email_url=server.url, email_timeout_seconds=5.0)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


@pytest.fixture
def smtp_settings(database_url: str, smtp: SmtpServer) -> Settings:
    return smtp_settings_for(database_url, smtp)


async def employee(
    client: httpx.AsyncClient, org: Org, email: str, locale: str = "en", name: str = ""
) -> str:
    body = {"email": email, "name": name or email.split("@")[0].title(), "locale": locale}
    response = await client.post("/v1/employees", json=body, headers=org.admin)
    assert response.status_code == 201, response.text
    employee_id: str = response.json()["id"]
    return employee_id


async def create_series(
    client: httpx.AsyncClient, org: Org, manager_id: str, report_id: str, **overrides: Any
) -> str:
    body = {
        "manager_id": manager_id,
        "employee_id": report_id,
        "rrule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
        "timezone": "Europe/Berlin",
        "starts_at": monday_before_change(3).isoformat(),
        "duration_minutes": 30,
        **overrides,
    }
    response = await client.post("/v1/checkins", json=body, headers=org.admin)
    assert response.status_code == 201, response.text
    series_id: str = response.json()["id"]
    return series_id


@dataclass(frozen=True)
class Link:
    meeting_id: uuid.UUID
    scheduled_at: datetime
    role: str
    token: str


async def meeting_links(db: Database, settings: Settings, series_id: str) -> list[Link]:
    """Every personal link of the series, recomputed from its salt (the database holds
    no token), earliest meeting first."""
    async with db.sessionmaker() as session:
        rows = (
            await session.execute(
                select(Meeting.id, Meeting.scheduled_at, MeetingLink)
                .join(MeetingLink, MeetingLink.meeting_id == Meeting.id)
                .where(Meeting.series_id == uuid.UUID(series_id))
                .order_by(Meeting.scheduled_at, MeetingLink.role)
            )
        ).all()
    return [
        Link(m, at, link.role, links.recompute(settings, link.id, link.salt, link.key_id))
        for m, at, link in rows
    ]


def calendar_part(message: EmailMessage) -> tuple[EmailMessage, icalendar.Calendar]:
    """The one text/calendar part of a mail, and its content parsed back."""
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in message.walk()]
    part = parts[0]
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    raw = content.encode() if isinstance(content, str) else content
    return part, icalendar.Calendar.from_ical(raw)


def body(message: EmailMessage, subtype: str) -> str:
    """The text of the plain or HTML alternative, as a mail client shows it."""
    part = message.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    content = part.get_content()
    assert isinstance(content, str)
    return content


@dataclass(frozen=True)
class Mailed:
    message: EmailMessage
    part: EmailMessage
    calendar: icalendar.Calendar
    event: icalendar.Event


def only_event(cal: icalendar.Calendar) -> icalendar.Event:
    events = cal.walk("VEVENT")
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, icalendar.Event)
    return event


def mailed_events(received: list[Received]) -> dict[tuple[str, str], Mailed]:
    """What each person got, keyed by (UID, recipient); each event arrives once."""
    out: dict[tuple[str, str], Mailed] = {}
    for r in received:
        message = r.message
        part, cal = calendar_part(message)
        event = only_event(cal)
        key = (str(event["UID"]), r.rcpt_tos[0])
        assert key not in out, f"{key} arrived twice"
        out[key] = Mailed(message, part, cal, event)
    return out


def _onsets(component: icalendar.cal.Component) -> list[datetime]:
    """The local times a VTIMEZONE sub-component takes effect (DTSTART and RDATEs)."""
    found = [component["DTSTART"].dt]
    rdates = component.get("RDATE", [])
    for rdate in rdates if isinstance(rdates, list) else [rdates]:
        found += [d.dt for d in rdate.dts]
    return found


def offset_from_vtimezone(cal: icalendar.Calendar, tzid: str, local: datetime) -> timedelta:
    """The UTC offset the calendar's own VTIMEZONE gives a local time: what a client
    that does not know the IANA name uses."""
    zones = [z for z in cal.walk("VTIMEZONE") if str(z["TZID"]) == tzid]
    assert len(zones) == 1, f"one VTIMEZONE {tzid} expected"
    latest: tuple[datetime, timedelta] | None = None
    for sub in zones[0].subcomponents:
        for onset in _onsets(sub):
            if onset <= local and (latest is None or onset > latest[0]):
                latest = (onset, sub["TZOFFSETTO"].td)
    assert latest is not None, f"the VTIMEZONE does not cover {local}"
    return latest[1]


async def test_each_person_gets_a_request_they_can_import_field_by_field(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager = await employee(client, org, "maya@acme.test", name="Maya Lind")
    report = await employee(client, org, "bo@acme.test", name="Bo Berg")
    series_id = await create_series(client, org, manager, report)
    people = await meeting_links(db, settings, series_id)
    starts = sorted({p.scheduled_at for p in people})
    assert len(starts) >= 4
    # 09:00 in Berlin is 08:00Z before the March change and 07:00Z after it.
    assert [at.hour for at in starts] == [8, 8] + [7] * (len(starts) - 2)

    assert await deliver_outbox(db, smtp_settings) == len(people)
    mailed = mailed_events(smtp.received)
    assert len(mailed) == len(people) == 2 * len(starts)
    for link in people:
        email = "maya@acme.test" if link.role == "manager" else "bo@acme.test"
        got = mailed[(f"meeting-{link.meeting_id}@pulse", email)]
        event = got.event
        assert got.message["X-Pulse-Kind"] == "meeting_invite"
        # Outlook reads the method from the Content-Type, the others from the body.
        assert got.part.get_param("method") == "REQUEST"
        assert str(got.calendar["METHOD"]) == "REQUEST"
        assert str(got.calendar["VERSION"]) == "2.0"
        assert int(event["SEQUENCE"]) == 0
        assert str(event["STATUS"]) == "CONFIRMED"
        # DTSTART in the series' zone at 09:00 local, whatever the UTC offset that day.
        start = event["DTSTART"]
        assert start.params["TZID"] == "Europe/Berlin"
        assert start.dt == link.scheduled_at
        assert (start.dt.hour, start.dt.minute, start.dt.weekday()) == (9, 0, 0)
        assert event["DTEND"].params["TZID"] == "Europe/Berlin"
        assert event["DTEND"].dt - start.dt == timedelta(minutes=30)
        # A client that knows only the attached VTIMEZONE places it at the same instant.
        local = start.dt.replace(tzinfo=None)
        offset = offset_from_vtimezone(got.calendar, "Europe/Berlin", local)
        assert local - offset == link.scheduled_at.replace(tzinfo=None)
        # The manager organises; both are attendees.
        assert str(event["ORGANIZER"]) == "mailto:maya@acme.test"
        assert event["ORGANIZER"].params["CN"] == "Maya Lind"
        attendees = sorted(str(a) for a in event["ATTENDEE"])
        assert attendees == ["mailto:bo@acme.test", "mailto:maya@acme.test"]
        # The recipient's own page, and nobody else's.
        own = f"{settings.public_base_url}/m/{link.token}"
        assert own in str(event["DESCRIPTION"])
        assert str(event["URL"]) == own
        assert own in body(got.message, "plain")
        other = next(
            p.token for p in people if p.meeting_id == link.meeting_id and p.role != link.role
        )
        assert other not in str(event["DESCRIPTION"])
        assert other not in body(got.message, "plain")


async def test_cancel_keeps_the_uid_and_raises_the_sequence(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager = await employee(client, org, "maya@acme.test")
    report = await employee(client, org, "bo@acme.test")
    series_id = await create_series(client, org, manager, report)
    await deliver_outbox(db, smtp_settings)
    invites = mailed_events(smtp.received)

    response = await client.delete(f"/v1/checkins/{series_id}", headers=org.admin)
    assert response.status_code == 204
    await deliver_outbox(db, smtp_settings)
    cancels_received = smtp.received[len(invites) :]
    cancels = mailed_events(cancels_received)
    # Every event either person had in their calendar is taken out again.
    assert set(cancels) == set(invites)
    for key, got in cancels.items():
        assert got.part.get_param("method") == "CANCEL"
        assert str(got.calendar["METHOD"]) == "CANCEL"
        assert got.message["X-Pulse-Kind"] == "meeting_cancel"
        event, invite = got.event, invites[key].event
        assert str(event["UID"]) == str(invite["UID"])
        assert int(event["SEQUENCE"]) > int(invite["SEQUENCE"])
        assert str(event["STATUS"]) == "CANCELLED"
        assert event["DTSTART"].dt == invite["DTSTART"].dt
        assert event["DTEND"].dt == invite["DTEND"].dt


async def test_arabic_recipient_gets_the_invite_in_arabic(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager = await employee(client, org, "maya@acme.test", "en", name="Maya")
    report = await employee(client, org, "layla@acme.test", "ar", name="ليلى")
    await create_series(client, org, manager, report)
    await deliver_outbox(db, smtp_settings)
    arabic = [r.message for r in smtp.received if r.rcpt_tos == ["layla@acme.test"]]
    english = [r.message for r in smtp.received if r.rcpt_tos == ["maya@acme.test"]]
    assert arabic
    assert len(arabic) == len(english)
    for message in arabic:
        assert str(message["Subject"]).startswith("اجتماع فردي مع Maya")
        text = body(message, "plain")
        assert "مرحبًا ليلى" in text
        assert "موعد اجتماعك الفردي مع Maya" in text
        html = body(message, "html")
        assert 'lang="ar" dir="rtl"' in html
        calendar_part(message)  # the invite is attached in every language
    for message in english:
        assert str(message["Subject"]).startswith("One-on-one with ليلى")
        html = body(message, "html")
        assert 'lang="en" dir="ltr"' in html


async def test_the_calendar_event_speaks_each_recipients_language(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager = await employee(client, org, "maya@acme.test", "en", name="Maya")
    report = await employee(client, org, "layla@acme.test", "ar", name="ليلى")
    series_id = await create_series(client, org, manager, report)
    await deliver_outbox(db, smtp_settings)
    mailed = mailed_events(smtp.received)
    own = {(p.meeting_id, p.role): p.token for p in await meeting_links(db, settings, series_id)}

    for (uid, recipient), got in mailed.items():
        meeting_id = uuid.UUID(uid.removeprefix("meeting-").removesuffix("@pulse"))
        role = "report" if recipient == "layla@acme.test" else "manager"
        link = f"{settings.public_base_url}/m/{own[(meeting_id, role)]}"
        summary, description = str(got.event["SUMMARY"]), str(got.event["DESCRIPTION"])
        if role == "report":
            assert summary == "اجتماع فردي مع Maya"
            assert description.startswith("صفحة اجتماعك (أسئلة ما قبل الاجتماع")
        else:
            assert summary == "One-on-one with ليلى"
            assert description.startswith("Your meeting page (check-in")
        assert description.endswith(link)

    # The file behind the page's "Add to calendar" says the same as the mailed one, here
    # for a French manager.
    claire = await employee(client, org, "claire@acme.test", "fr", name="Claire")
    french = await create_series(client, org, claire, report)
    token = next(p.token for p in await meeting_links(db, settings, french) if p.role == "manager")
    response = await client.get(f"/m/{token}/invite.ics")
    event = only_event(icalendar.Calendar.from_ical(response.content))
    assert str(event["SUMMARY"]) == "Entretien individuel avec ليلى"
    assert str(event["DESCRIPTION"]) == (
        "Votre page d’entretien (questions préalables, sujets, actions, vos notes "
        f"personnelles) : {settings.public_base_url}/m/{token}"
    )
