"""Meetings of a series over time: materialised ahead (and only once, through worker
ticks and a crash), 09:00 local across daylight-saving changes, cancelled when the
series ends or a person leaves (with calendar CANCELs), rescheduled when the cadence
changes, and the pre-meeting check-in sent at its lead time."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, update

from app.checkins import meetings
from app.checkins import service as checkin_service
from app.checkins.models import CheckinSeries, Meeting, MeetingLink
from app.checkins.schemas import CheckinCreate, CheckinUpdate
from app.core.config import Settings
from app.core.db import Database, utcnow
from app.employees.models import Employee
from app.notifications.models import OutboxMessage
from app.notifications.sender import deliver_outbox
from app.scheduling import worker
from tests.checkins.test_ics import (
    body,
    calendar_part,
    create_series,
    employee,
    mailed_events,
    meeting_links,
    monday_before_change,
    smtp_settings_for,
)
from tests.conftest import Org, create_org, make_settings
from tests.databases import migrated_database, require_postgres
from tests.notifications.smtp import SmtpServer, running_smtp_server

BERLIN = ZoneInfo("Europe/Berlin")
MONDAYS = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
TUESDAYS = "FREQ=WEEKLY;BYDAY=TU;BYHOUR=9;BYMINUTE=0"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


@pytest.fixture
def smtp_settings(database_url: str, smtp: SmtpServer) -> Settings:
    return smtp_settings_for(database_url, smtp)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


async def _people(client: httpx.AsyncClient, org: Org) -> tuple[str, str]:
    return (
        await employee(client, org, "maya@acme.test"),
        await employee(client, org, "bo@acme.test"),
    )


async def _series_row(
    db: Database, org: Org, people: tuple[str, str], rrule: str, starts_at: datetime
) -> uuid.UUID:
    """A series straight in the database, with no meeting yet: the tests then decide
    which ``now`` materialises it."""
    async with db.sessionmaker() as session, session.begin():
        series = CheckinSeries(
            organization_id=org.id,
            manager_id=uuid.UUID(people[0]),
            employee_id=uuid.UUID(people[1]),
            rrule=rrule,
            timezone="Europe/Berlin",
            starts_at=starts_at,
            duration_minutes=30,
            questions=[],
            checkin_lead_hours=24,
            status="active",
        )
        session.add(series)
        await session.flush()
        return series.id


async def _materialise(
    db: Database, settings: Settings, series_id: uuid.UUID | str, now: datetime
) -> int:
    async with db.sessionmaker() as session, session.begin():
        series = await session.get(CheckinSeries, uuid.UUID(str(series_id)))
        assert series is not None
        return await meetings.materialise_series(session, series, settings, now=now)


async def _meetings(db: Database, series_id: uuid.UUID | str) -> list[Meeting]:
    async with db.sessionmaker() as session:
        return list(
            (
                await session.execute(
                    select(Meeting)
                    .where(Meeting.series_id == uuid.UUID(str(series_id)))
                    .order_by(Meeting.scheduled_at)
                )
            )
            .scalars()
            .all()
        )


async def _counts(db: Database, series_id: uuid.UUID | str) -> tuple[int, int, int]:
    """Meetings, links and queued invites of a series."""
    ids = [m.id for m in await _meetings(db, series_id)]
    async with db.sessionmaker() as session:
        links = await session.scalar(
            select(func.count()).select_from(MeetingLink).where(MeetingLink.meeting_id.in_(ids))
        )
        invites = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == "meeting_invite", OutboxMessage.group_id.in_(ids))
        )
    return len(ids), int(links or 0), int(invites or 0)


async def _outbox(db: Database, kind: str) -> list[OutboxMessage]:
    async with db.sessionmaker() as session:
        return list(
            (
                await session.execute(
                    select(OutboxMessage)
                    .where(OutboxMessage.kind == kind)
                    .order_by(OutboxMessage.created_at, OutboxMessage.dedupe_key)
                )
            )
            .scalars()
            .all()
        )


# --- materialising ahead ---------------------------------------------------------------


async def test_meetings_are_materialised_four_ahead_or_eight_weeks_whichever_holds_more(
    client: httpx.AsyncClient, org: Org, db: Database, settings: Settings
) -> None:
    people = await _people(client, org)
    now = datetime(2027, 1, 4, tzinfo=UTC)
    start = berlin(2027, 1, 4)  # a Monday
    expected = {
        "FREQ=DAILY;BYHOUR=9;BYMINUTE=0": 56,  # every day of the 8 weeks
        MONDAYS: 8,  # 8 weeks hold 8 Mondays
        "FREQ=WEEKLY;INTERVAL=3;BYDAY=MO;BYHOUR=9": 4,  # 3 in 8 weeks, so 4 ahead
        "FREQ=MONTHLY;BYHOUR=9;BYMINUTE=0": 4,  # 2 in 8 weeks, so 4 ahead
    }
    for rrule, count in expected.items():
        series_id = await _series_row(db, org, people, rrule, start)
        assert await _materialise(db, settings, series_id, now) == count, rrule
        rows = await _meetings(db, series_id)
        assert len(rows) == count, rrule
        assert rows[0].scheduled_at == berlin(2027, 1, 4, 9)
        assert all(m.status == "scheduled" and m.sequence == 0 for m in rows)
        assert all(m.duration_minutes == 30 for m in rows)
        if count > 4:
            assert (
                rows[-1].scheduled_at
                <= now + timedelta(weeks=8)
                < rows[-1].scheduled_at + (rows[1].scheduled_at - rows[0].scheduled_at)
            ), rrule
        assert await _counts(db, series_id) == (count, 2 * count, 2 * count), rrule

    # A week later the window has moved on by one Monday, and nothing is made twice.
    weekly = await _series_row(db, org, people, MONDAYS, start)
    await _materialise(db, settings, weekly, now)
    assert await _materialise(db, settings, weekly, now) == 0
    assert await _materialise(db, settings, weekly, now + timedelta(weeks=1)) == 1
    rows = await _meetings(db, weekly)
    assert [m.scheduled_at for m in rows] == [
        berlin(2027, 1, 4, 9) + timedelta(weeks=i) for i in range(9)
    ]
    assert await _counts(db, weekly) == (9, 18, 18)


async def test_a_series_created_through_the_api_is_materialised_from_now(
    client: httpx.AsyncClient, org: Org, db: Database
) -> None:
    manager, report = await _people(client, org)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).astimezone(BERLIN)
    series_id = await create_series(
        client, org, manager, report, rrule=MONDAYS, starts_at=tomorrow.isoformat()
    )
    rows = await _meetings(db, series_id)
    # 8 Mondays in 8 weeks, 9 when a daylight-saving change pulls the last one an hour
    # earlier in UTC.
    assert len(rows) in (8, 9)
    assert rows[0].scheduled_at > utcnow()
    assert rows[-1].scheduled_at <= utcnow() + timedelta(weeks=8)
    assert all(m.scheduled_at.astimezone(BERLIN).hour == 9 for m in rows)
    assert await _counts(db, series_id) == (len(rows), 2 * len(rows), 2 * len(rows))


@pytest.mark.parametrize(
    ("month", "utc_hours"),
    [
        pytest.param(3, [8, 8, 7, 7], id="spring"),
        pytest.param(10, [7, 7, 8, 8], id="autumn"),
    ],
)
async def test_weekly_0900_berlin_stays_0900_local_across_the_change(
    client: httpx.AsyncClient, org: Org, db: Database, month: int, utc_hours: list[int]
) -> None:
    manager, report = await _people(client, org)
    start = monday_before_change(month)
    series_id = await create_series(
        client, org, manager, report, rrule=MONDAYS, starts_at=start.isoformat()
    )
    rows = (await _meetings(db, series_id))[:4]
    # Aware arithmetic on a ZoneInfo time is wall-clock: Monday after Monday at 09:00.
    assert [m.scheduled_at for m in rows] == [
        (start + timedelta(weeks=i)).replace(hour=9) for i in range(4)
    ]
    assert [m.scheduled_at.hour for m in rows] == utc_hours


async def test_materialising_across_both_changes_of_a_year_keeps_local_times(
    client: httpx.AsyncClient, org: Org, db: Database, settings: Settings
) -> None:
    people = await _people(client, org)
    weekly = await _series_row(db, org, people, MONDAYS, berlin(2027, 1, 4))
    await _materialise(db, settings, weekly, datetime(2027, 3, 10, tzinfo=UTC))
    await _materialise(db, settings, weekly, datetime(2027, 10, 20, tzinfo=UTC))
    by_day = {
        m.scheduled_at.date().isoformat(): m.scheduled_at for m in await _meetings(db, weekly)
    }
    assert by_day["2027-03-22"] == datetime(2027, 3, 22, 8, tzinfo=UTC)
    assert by_day["2027-03-29"] == datetime(2027, 3, 29, 7, tzinfo=UTC)
    assert by_day["2027-10-25"] == datetime(2027, 10, 25, 7, tzinfo=UTC)
    assert by_day["2027-11-01"] == datetime(2027, 11, 1, 8, tzinfo=UTC)
    # 02:30 on the spring-forward Sunday does not exist: RFC 5545 moves it on by the
    # gap, to 03:30 CEST; in the repeated autumn hour the first 02:30 (CEST) is meant.
    night = await _series_row(
        db, org, people, "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=30", berlin(2027, 3, 1)
    )
    await _materialise(db, settings, night, datetime(2027, 3, 1, tzinfo=UTC))
    await _materialise(db, settings, night, datetime(2027, 10, 20, tzinfo=UTC))
    nights = {m.scheduled_at.date().isoformat(): m.scheduled_at for m in await _meetings(db, night)}
    assert nights["2027-03-28"] == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert nights["2027-03-28"].astimezone(BERLIN).hour == 3
    assert nights["2027-10-31"] == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


async def test_two_worker_ticks_materialise_each_meeting_once(
    client: httpx.AsyncClient, org: Org, db: Database, settings: Settings
) -> None:
    people = await _people(client, org)
    series_id = await _series_row(db, org, people, MONDAYS, utcnow())
    first = await worker.tick(db, settings)
    assert first["materialise_meetings"] >= 8
    counts = await _counts(db, series_id)
    assert counts[0] >= 8
    assert counts == (counts[0], 2 * counts[0], 2 * counts[0])
    second = await worker.tick(db, settings)
    assert second["materialise_meetings"] == 0
    assert await _counts(db, series_id) == counts
    assert await meetings.materialise_meetings(db, settings) == 0
    assert await _counts(db, series_id) == counts


async def test_a_crash_mid_series_rolls_back_and_the_next_run_leaves_no_gap(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = await _people(client, org)
    broken = await _series_row(db, org, people, MONDAYS, utcnow())
    healthy = await _series_row(db, org, people, TUESDAYS, utcnow())
    real_queue_invites = meetings.queue_invites
    calls = 0

    async def crash_on_third(
        session: Any, org_id: uuid.UUID, meeting_id: uuid.UUID, **kw: Any
    ) -> None:
        nonlocal calls
        series_id = await session.scalar(select(Meeting.series_id).where(Meeting.id == meeting_id))
        if series_id == broken:
            calls += 1
            if calls == 3:  # two meetings of this series are already in
                raise RuntimeError("worker killed mid-series")
        await real_queue_invites(session, org_id, meeting_id, **kw)

    monkeypatch.setattr(meetings, "queue_invites", crash_on_third)
    await meetings.materialise_meetings(db, settings)
    # The broken series' transaction went whole: no meeting, link or invite of it is
    # left; the other series was not held up by it.
    assert await _counts(db, broken) == (0, 0, 0)
    healthy_counts = await _counts(db, healthy)
    assert healthy_counts[0] >= 8

    monkeypatch.setattr(meetings, "queue_invites", real_queue_invites)
    await meetings.materialise_meetings(db, settings)
    rows = await _meetings(db, broken)
    assert len(rows) >= 8
    # Consecutive Mondays: no gap, and the unique key leaves no duplicate.
    assert all(
        b.scheduled_at - a.scheduled_at <= timedelta(weeks=1, hours=1)
        for a, b in itertools.pairwise(rows)
    )
    assert await _counts(db, broken) == (len(rows), 2 * len(rows), 2 * len(rows))
    assert await _counts(db, healthy) == healthy_counts


# --- cancelling -----------------------------------------------------------------------


async def _set_time(db: Database, meeting_id: uuid.UUID, at: datetime, **values: Any) -> None:
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Meeting).where(Meeting.id == meeting_id).values(scheduled_at=at, **values)
        )


async def test_invites_signed_by_a_retired_key_fail_where_hr_looks(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    database_url: str,
    smtp: SmtpServer,
) -> None:
    """The people still need their meeting links: not cancelled, not retried eight
    times over hours, but failed at once with the reason, for a retry once the key is
    back."""
    manager, report = await _people(client, org)
    await create_series(client, org, manager, report)
    rotated = make_settings(
        database_url, email_url=smtp.url, email_timeout_seconds=5.0, secret_key="n" * 40
    )

    await deliver_outbox(db, rotated)

    assert smtp.received == []
    invites = await _outbox(db, "meeting_invite")
    assert invites
    assert {(m.status, m.attempts, m.last_reply) for m in invites} == {
        ("failed", 1, "the key that signed this link was retired")
    }


async def test_ending_a_series_cancels_future_meetings_in_both_calendars(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager, report = await _people(client, org)
    series_id = await create_series(client, org, manager, report)
    await deliver_outbox(db, smtp_settings)
    invites = mailed_events(smtp.received)
    before = await _meetings(db, series_id)
    # The first meeting already took place: ending the series leaves it alone.
    await _set_time(db, before[0].id, utcnow() - timedelta(hours=2))

    response = await client.delete(f"/v1/checkins/{series_id}", headers=org.admin)
    assert response.status_code == 204
    after = await _meetings(db, series_id)
    assert (after[0].status, after[0].sequence) == ("scheduled", 0)
    assert all((m.status, m.sequence) == ("cancelled", 1) for m in after[1:])
    queued = await _outbox(db, "meeting_cancel")
    assert sorted(m.recipient for m in queued) == sorted(
        ["maya@acme.test", "bo@acme.test"] * (len(after) - 1)
    )
    hr = await client.get(f"/v1/checkins/{series_id}/meetings", headers=org.admin)
    assert [m["status"] for m in hr.json()["items"]].count("cancelled") == len(after) - 1

    await deliver_outbox(db, smtp_settings)
    cancels = mailed_events(smtp.received[len(invites) :])
    assert len(cancels) == 2 * (len(after) - 1)
    for (uid, person), got in cancels.items():
        assert got.part.get_param("method") == "CANCEL"
        assert str(got.calendar["METHOD"]) == "CANCEL"
        assert int(got.event["SEQUENCE"]) > int(invites[(uid, person)].event["SEQUENCE"])
    assert f"meeting-{after[0].id}@pulse" not in {uid for uid, _ in cancels}


async def test_a_series_ended_before_any_invite_went_out_mails_nobody(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager, report = await _people(client, org)
    series_id = await create_series(client, org, manager, report)
    response = await client.delete(f"/v1/checkins/{series_id}", headers=org.admin)
    assert response.status_code == 204
    # The invites are withdrawn instead of followed by a CANCEL for a meeting the
    # people never heard of.
    invites = await _outbox(db, "meeting_invite")
    assert invites
    assert {(m.status, m.last_reply) for m in invites} == {
        ("cancelled", "not sent: the meeting was cancelled")
    }
    assert await _outbox(db, "meeting_cancel") == []
    assert await deliver_outbox(db, smtp_settings) == 0
    assert smtp.received == []


async def test_a_deactivated_person_ends_their_series_at_the_next_worker_step(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    maya, bo = await _people(client, org)
    cy = await employee(client, org, "cy@acme.test")
    di = await employee(client, org, "di@acme.test")
    bo_reports = await create_series(client, org, maya, bo)  # Bo is the report
    bo_manages = await create_series(client, org, bo, cy)  # Bo is the manager
    untouched = await create_series(client, org, maya, di)
    await deliver_outbox(db, smtp_settings)
    invited = len(smtp.received)

    response = await client.delete(f"/v1/employees/{bo}", headers=org.admin)
    assert response.status_code == 204
    assert await meetings.end_series_of_inactive(db, settings) == 2
    assert await meetings.end_series_of_inactive(db, settings) == 0
    for series_id, status in ((bo_reports, "ended"), (bo_manages, "ended"), (untouched, "active")):
        body = (await client.get(f"/v1/checkins/{series_id}", headers=org.admin)).json()
        assert body["status"] == status
        rows = await _meetings(db, series_id)
        expected = "cancelled" if status == "ended" else "scheduled"
        assert {m.status for m in rows} == {expected}
    # An ended series is not materialised again by the worker.
    assert await meetings.materialise_meetings(db, settings) == 0

    await deliver_outbox(db, smtp_settings)
    cancels = smtp.received[invited:]
    per_person: dict[str, int] = {}
    for r in cancels:
        part, cal = calendar_part(r.message)
        assert part.get_param("method") == "CANCEL"
        assert str(cal["METHOD"]) == "CANCEL"
        per_person[r.rcpt_tos[0]] = per_person.get(r.rcpt_tos[0], 0) + 1
    n = len(await _meetings(db, bo_reports))
    m = len(await _meetings(db, bo_manages))
    assert per_person == {"maya@acme.test": n, "bo@acme.test": n + m, "cy@acme.test": m}


async def _set_status(
    client: httpx.AsyncClient, db: Database, settings: Settings, meeting_id: uuid.UUID, status: str
) -> None:
    """The manager marks a meeting, through their link."""
    [token] = [
        p.token
        for p in await meeting_links(db, settings, str(await _series_of(db, meeting_id)))
        if p.meeting_id == meeting_id and p.role == "manager"
    ]
    response = await client.post(
        f"/v1/meetings/{token}", json={"action": "set_status", "status": status}
    )
    assert response.status_code == 200, response.text


async def _series_of(db: Database, meeting_id: uuid.UUID) -> uuid.UUID:
    async with db.sessionmaker() as session:
        series_id = await session.scalar(select(Meeting.series_id).where(Meeting.id == meeting_id))
    assert series_id is not None
    return series_id


@pytest.mark.parametrize("how", ["series ended", "report deactivated"])
async def test_ending_a_series_cancels_a_meeting_skipped_ahead_too(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    smtp: SmtpServer,
    smtp_settings: Settings,
    how: str,
) -> None:
    manager, report = await _people(client, org)
    series_id = await create_series(client, org, manager, report)
    await deliver_outbox(db, smtp_settings)
    invites = mailed_events(smtp.received)
    before = await _meetings(db, series_id)
    # The first meeting took place and was marked held; the manager already knows they
    # will miss the second.
    await _set_time(db, before[0].id, utcnow() - timedelta(hours=2))
    await _set_status(client, db, settings, before[0].id, "held")
    await _set_status(client, db, settings, before[1].id, "skipped")

    if how == "series ended":
        response = await client.delete(f"/v1/checkins/{series_id}", headers=org.admin)
        assert response.status_code == 204
    else:
        response = await client.delete(f"/v1/employees/{report}", headers=org.admin)
        assert response.status_code == 204
        assert await meetings.end_series_of_inactive(db, settings) == 1

    hr = await client.get(f"/v1/checkins/{series_id}/meetings", headers=org.admin)
    statuses = [m["status"] for m in hr.json()["items"]]
    assert statuses == ["held"] + ["cancelled"] * (len(before) - 1)
    await deliver_outbox(db, smtp_settings)
    cancels = mailed_events(smtp.received[len(invites) :])
    skipped_uid = f"meeting-{before[1].id}@pulse"
    for person in ("maya@acme.test", "bo@acme.test"):
        got = cancels[(skipped_uid, person)]
        assert str(got.calendar["METHOD"]) == "CANCEL"
        assert int(got.event["SEQUENCE"]) > int(invites[(skipped_uid, person)].event["SEQUENCE"])
    assert len(cancels) == 2 * (len(before) - 1)
    assert f"meeting-{before[0].id}@pulse" not in {uid for uid, _ in cancels}


async def test_a_new_length_reaches_a_meeting_skipped_ahead_too(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager, report = await _people(client, org)
    series_id = await create_series(client, org, manager, report)
    await deliver_outbox(db, smtp_settings)
    sent = len(smtp.received)
    before = await _meetings(db, series_id)
    await _set_status(client, db, settings, before[1].id, "skipped")

    response = await client.patch(
        f"/v1/checkins/{series_id}", json={"duration_minutes": 45}, headers=org.admin
    )
    assert response.status_code == 200, response.text

    after = {m.id: m for m in await _meetings(db, series_id)}
    skipped = after[before[1].id]
    assert (skipped.status, skipped.sequence, skipped.duration_minutes) == ("skipped", 1, 45)
    await deliver_outbox(db, smtp_settings)
    mailed = mailed_events(smtp.received[sent:])
    for person in ("maya@acme.test", "bo@acme.test"):
        event = mailed[(f"meeting-{skipped.id}@pulse", person)].event
        assert int(event["SEQUENCE"]) == 1
        assert event["DTEND"].dt - event["DTSTART"].dt == timedelta(minutes=45)
    assert len(mailed) == 2 * len(after)


# --- rescheduling ---------------------------------------------------------------------


async def _write_for(client: httpx.AsyncClient, manager: str, report: str) -> None:
    """What people prepare for a meeting, through their links: the check-in, a talking
    point, an action item and each side's private note."""
    steps = [
        (report, {"action": "submit_checkin", "answers": {"feeling": 4, "on_mind": "Move"}}),
        (report, {"action": "add_talking_point", "text": "Conference budget"}),
        (manager, {"action": "add_action_item", "text": "Book it", "owner": "report"}),
        (manager, {"action": "save_note", "text": "Ask about the move"}),
        (report, {"action": "save_note", "text": "Mention the course"}),
    ]
    for token, action in steps:
        response = await client.post(f"/v1/meetings/{token}", json=action)
        assert response.status_code == 200, response.text


async def test_a_new_cadence_moves_each_meeting_with_its_uid_links_and_content(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager, report = await _people(client, org)
    series_id = await create_series(client, org, manager, report, rrule=MONDAYS)
    await deliver_outbox(db, smtp_settings)
    sent = len(smtp.received)
    mondays = await _meetings(db, series_id)
    tokens = {(p.meeting_id, p.role): p.token for p in await meeting_links(db, settings, series_id)}
    first = mondays[0].id
    await _write_for(client, tokens[(first, "manager")], tokens[(first, "report")])

    response = await client.patch(
        f"/v1/checkins/{series_id}", json={"rrule": TUESDAYS}, headers=org.admin
    )
    assert response.status_code == 200, response.text

    rows = await _meetings(db, series_id)
    live = [m for m in rows if m.status != "cancelled"]
    moved = min(len(mondays), len(live))
    # The same meetings, in the same order, now on Tuesdays at 09:00.
    assert [m.id for m in live[:moved]] == [m.id for m in mondays[:moved]]
    assert all(
        m.scheduled_at.astimezone(BERLIN).weekday() == 1
        and m.scheduled_at.astimezone(BERLIN).hour == 9
        for m in live
    )
    assert [(m.status, m.sequence) for m in live[:moved]] == [("scheduled", 1)] * moved
    # Both people's links still open the first meeting, at its new time, with what they
    # wrote for it.
    report_doc = (await client.get(f"/v1/meetings/{tokens[(first, 'report')]}")).json()
    manager_doc = (await client.get(f"/v1/meetings/{tokens[(first, 'manager')]}")).json()
    assert datetime.fromisoformat(report_doc["meeting"]["scheduled_at"]) == live[0].scheduled_at
    assert report_doc["checkin"]["answers"] == {"feeling": 4, "on_mind": "Move"}
    assert [p["text"] for p in report_doc["talking_points"]] == ["Conference budget"]
    assert [i["text"] for i in report_doc["action_items"]] == ["Book it"]
    assert report_doc["note"]["text"] == "Mention the course"
    assert manager_doc["note"]["text"] == "Ask about the move"
    page = await client.get(f"/m/{tokens[(first, 'manager')]}")
    assert page.status_code == 200
    assert "Conference budget" in page.text
    # Calendars move the event they have (same UID, higher SEQUENCE): no CANCEL.
    await deliver_outbox(db, smtp_settings)
    mailed = mailed_events(smtp.received[sent:])
    assert await _outbox(db, "meeting_cancel") == []
    for m in live[:moved]:
        for person in ("maya@acme.test", "bo@acme.test"):
            got = mailed[(f"meeting-{m.id}@pulse", person)]
            assert str(got.calendar["METHOD"]) == "REQUEST"
            assert int(got.event["SEQUENCE"]) == 1
            assert got.event["DTSTART"].dt == m.scheduled_at
    assert len(mailed) == 2 * len(live)

    # Back to Mondays: the same meetings move back.
    response = await client.patch(
        f"/v1/checkins/{series_id}", json={"rrule": MONDAYS}, headers=org.admin
    )
    assert response.status_code == 200, response.text
    back = [m for m in await _meetings(db, series_id) if m.status != "cancelled"]
    assert [m.id for m in back[:moved]] == [m.id for m in mondays[:moved]]
    assert [m.scheduled_at for m in back[:moved]] == [m.scheduled_at for m in mondays[:moved]]
    assert {m.sequence for m in back[:moved]} == {2}


async def test_a_cadence_changed_and_back_before_the_worker_ran_sends_one_request_each(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager, report = await _people(client, org)
    series_id = await create_series(client, org, manager, report, rrule=MONDAYS)
    await deliver_outbox(db, smtp_settings)
    sent = len(smtp.received)
    mondays = await _meetings(db, series_id)
    for rrule in (TUESDAYS, MONDAYS):
        response = await client.patch(
            f"/v1/checkins/{series_id}", json={"rrule": rrule}, headers=org.admin
        )
        assert response.status_code == 200, response.text
    # The Tuesday REQUESTs were overtaken before any went out; only the last one of each
    # meeting is sent, and nothing was ever cancelled.
    await deliver_outbox(db, smtp_settings)
    mailed = mailed_events(smtp.received[sent:])
    assert set(mailed) == {
        (f"meeting-{m.id}@pulse", person)
        for m in mondays
        for person in ("maya@acme.test", "bo@acme.test")
    }
    for got in mailed.values():
        assert str(got.calendar["METHOD"]) == "REQUEST"
        assert int(got.event["SEQUENCE"]) == 2
    assert await _outbox(db, "meeting_cancel") == []
    replaced = [m for m in await _outbox(db, "meeting_invite") if m.status == "cancelled"]
    assert len(replaced) == 2 * len(mondays)
    assert {m.last_reply for m in replaced} == {"not sent: replaced by a newer invitation"}


async def test_a_sparser_cadence_moves_the_next_meetings_and_cancels_the_rest(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager, report = await _people(client, org)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).astimezone(BERLIN)
    series_id = await create_series(
        client, org, manager, report, rrule=MONDAYS, starts_at=tomorrow.isoformat()
    )
    await deliver_outbox(db, smtp_settings)
    sent = len(smtp.received)
    weekly = await _meetings(db, series_id)
    tokens = {(p.meeting_id, p.role): p.token for p in await meeting_links(db, settings, series_id)}
    second = weekly[1].id
    await _write_for(client, tokens[(second, "manager")], tokens[(second, "report")])

    fortnightly = "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
    response = await client.patch(
        f"/v1/checkins/{series_id}", json={"rrule": fortnightly}, headers=org.admin
    )
    assert response.status_code == 200, response.text

    rows = await _meetings(db, series_id)
    live = [m for m in rows if m.status != "cancelled"]
    gone = [m for m in rows if m.status == "cancelled"]
    assert len(live) >= 4
    assert [m.id for m in live] == [m.id for m in weekly[: len(live)]]
    assert {b.scheduled_at - a.scheduled_at for a, b in itertools.pairwise(live)} <= {
        timedelta(weeks=2),
        timedelta(weeks=2, hours=1),
        timedelta(weeks=2, hours=-1),
    }
    assert sorted(m.id for m in gone) == sorted(m.id for m in weekly[len(live) :])
    # The second meeting is still the second, two weeks on, with what was written for it.
    doc = (await client.get(f"/v1/meetings/{tokens[(second, 'report')]}")).json()
    assert datetime.fromisoformat(doc["meeting"]["scheduled_at"]) == live[1].scheduled_at
    assert [p["text"] for p in doc["talking_points"]] == ["Conference budget"]
    # A cancelled one still says when it was planned, to the minute (in Bo's zone, the
    # organization's UTC).
    before = {m.id: m.scheduled_at for m in weekly}
    for m in gone:
        page = await client.get(f"/m/{tokens[(m.id, 'report')]}")
        assert page.status_code == 410
        assert before[m.id].strftime("%Y-%m-%d %H:%M (UTC)") in page.text

    await deliver_outbox(db, smtp_settings)
    mailed = mailed_events(smtp.received[sent:])
    methods = {uid: str(got.calendar["METHOD"]) for (uid, _), got in mailed.items()}
    # Whether the first Monday is one of the fortnight's depends on the week the series
    # started in; a meeting that kept its time kept its invite too.
    moved = [m for m in live if m.scheduled_at != before[m.id]]
    assert all(m.sequence == 1 for m in moved)
    assert all(m.sequence == 0 for m in live if m not in moved)
    assert methods == {
        **{f"meeting-{m.id}@pulse": "REQUEST" for m in moved},
        **{f"meeting-{m.id}@pulse": "CANCEL" for m in gone},
    }

    # Weekly again: one live meeting at every Monday, the moved ones first.
    response = await client.patch(
        f"/v1/checkins/{series_id}", json={"rrule": MONDAYS}, headers=org.admin
    )
    assert response.status_code == 200, response.text
    again = [m for m in await _meetings(db, series_id) if m.status != "cancelled"]
    assert [m.scheduled_at for m in again] == [m.scheduled_at for m in weekly]
    assert [m.id for m in again[: len(live)]] == [m.id for m in live]


async def test_a_new_length_keeps_the_meetings_and_updates_the_invites(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager, report = await _people(client, org)
    series_id = await create_series(client, org, manager, report)
    before = await _meetings(db, series_id)
    response = await client.patch(
        f"/v1/checkins/{series_id}", json={"duration_minutes": 45}, headers=org.admin
    )
    assert response.status_code == 200, response.text
    after = await _meetings(db, series_id)
    assert [(m.id, m.scheduled_at) for m in after] == [(m.id, m.scheduled_at) for m in before]
    assert all((m.status, m.sequence, m.duration_minutes) == ("scheduled", 1, 45) for m in after)
    assert await _outbox(db, "meeting_cancel") == []
    # The first invites had not gone out yet: only the new ones are sent.
    await deliver_outbox(db, smtp_settings)
    mailed = mailed_events(smtp.received)
    assert len(mailed) == len(smtp.received) == 2 * len(after)
    for got in mailed.values():
        assert int(got.event["SEQUENCE"]) == 1
        assert got.event["DTEND"].dt - got.event["DTSTART"].dt == timedelta(minutes=45)


# --- the pre-meeting check-in ---------------------------------------------------------


async def test_checkin_goes_to_the_report_once_at_the_lead_time(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager, report = await _people(client, org)
    series_id = await create_series(client, org, manager, report)
    rows = await _meetings(db, series_id)
    assert rows[0].scheduled_at > utcnow() + timedelta(hours=24)
    assert await meetings.send_checkins(db, settings) == 0  # every meeting is too far off

    now = utcnow()
    await _set_time(db, rows[0].id, now + timedelta(hours=23))  # inside the 24 h lead
    await _set_time(db, rows[1].id, now + timedelta(hours=25))  # not yet
    await _set_time(db, rows[2].id, now + timedelta(hours=2), status="cancelled")
    await _set_time(db, rows[3].id, now - timedelta(hours=1))  # already over
    assert await meetings.send_checkins(db, settings) == 1
    assert await meetings.send_checkins(db, settings) == 0  # not twice
    queued = await _outbox(db, "checkin_request")
    assert [(m.recipient, m.group_id) for m in queued] == [("bo@acme.test", rows[0].id)]
    state = {m.id: m.checkin_sent for m in await _meetings(db, series_id)}
    assert [state[m.id] for m in rows[:4]] == [True, False, False, False]

    # An hour later the second meeting is inside its lead time too.
    await _set_time(db, rows[1].id, now + timedelta(hours=23, minutes=59))
    assert await meetings.send_checkins(db, settings) == 1
    assert len(await _outbox(db, "checkin_request")) == 2

    await deliver_outbox(db, smtp_settings)
    checkins = [r for r in smtp.received if r.message["X-Pulse-Kind"] == "checkin_request"]
    assert [r.rcpt_tos for r in checkins] == [["bo@acme.test"], ["bo@acme.test"]]
    tokens = {(p.meeting_id, p.role): p.token for p in await meeting_links(db, settings, series_id)}
    texts = [body(r.message, "plain") for r in checkins]
    for meeting in rows[:2]:
        own = f"/m/{tokens[(meeting.id, 'report')]}"
        assert sum(own in text for text in texts) == 1
        assert not any(tokens[(meeting.id, "manager")] in text for text in texts)


async def test_a_meeting_skipped_ahead_gets_its_checkin_only_once_undone(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager, report = await _people(client, org)
    series_id = await create_series(client, org, manager, report)
    rows = await _meetings(db, series_id)
    await _set_status(client, db, settings, rows[0].id, "skipped")
    await _set_time(db, rows[0].id, utcnow() + timedelta(hours=23))  # inside the lead

    assert await meetings.send_checkins(db, settings) == 0

    await _set_status(client, db, settings, rows[0].id, "scheduled")
    assert await meetings.send_checkins(db, settings) == 1
    await deliver_outbox(db, smtp_settings)
    checkins = [r for r in smtp.received if r.message["X-Pulse-Kind"] == "checkin_request"]
    assert [r.rcpt_tos for r in checkins] == [["bo@acme.test"]]


async def test_a_series_without_questions_sends_no_checkin(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager, report = await _people(client, org)
    series_id = await create_series(client, org, manager, report, questions=[])
    rows = await _meetings(db, series_id)
    await _set_time(db, rows[0].id, utcnow() + timedelta(hours=23))  # inside the lead

    assert await meetings.send_checkins(db, settings) == 0
    await deliver_outbox(db, smtp_settings)
    kinds = {r.message["X-Pulse-Kind"] for r in smtp.received}
    assert kinds == {"meeting_invite"}

    # Questions added later are asked at the lead time, as for any series.
    question = {"key": "wins", "kind": "text", "prompt": {"en": "Any wins?"}}
    response = await client.patch(
        f"/v1/checkins/{series_id}", json={"questions": [question]}, headers=org.admin
    )
    assert response.status_code == 200, response.text
    assert await meetings.send_checkins(db, settings) == 1
    await deliver_outbox(db, smtp_settings)
    checkins = [r for r in smtp.received if r.message["X-Pulse-Kind"] == "checkin_request"]
    assert [r.rcpt_tos for r in checkins] == [["bo@acme.test"]]


async def test_a_checkin_queued_before_its_questions_were_removed_is_not_sent(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    manager, report = await _people(client, org)
    series_id = await create_series(client, org, manager, report)
    rows = await _meetings(db, series_id)
    await _set_time(db, rows[0].id, utcnow() + timedelta(hours=23))
    assert await meetings.send_checkins(db, settings) == 1

    response = await client.patch(
        f"/v1/checkins/{series_id}", json={"questions": []}, headers=org.admin
    )
    assert response.status_code == 200, response.text
    await deliver_outbox(db, smtp_settings)

    assert "checkin_request" not in {r.message["X-Pulse-Kind"] for r in smtp.received}
    [queued] = await _outbox(db, "checkin_request")
    assert queued.status == "cancelled"


async def test_a_worker_materialising_during_a_cadence_change_makes_no_second_set(
    tmp_path: Path,
) -> None:
    """Two sessions on PostgreSQL: the API moves the meetings to Tuesdays while a worker
    that read the series before the API committed materialises it. The worker must wait
    for the change and use the new rule, not fill the freed Monday times again."""
    require_postgres()
    with migrated_database("postgresql", tmp_path) as url:
        settings = make_settings(url)
        db = Database.from_url(url)
        try:
            org = await create_org(db, "Acme")
            async with db.sessionmaker() as session, session.begin():
                people = [
                    Employee(
                        organization_id=org.id,
                        email=f"{name}@acme.test",
                        email_key=f"{name}@acme.test",
                        name=name,
                        locale="en",
                        timezone="Europe/Berlin",
                        attributes={},
                        active=True,
                    )
                    for name in ("maya", "bo")
                ]
                session.add_all(people)
                await session.flush()
                series = await checkin_service.create_series(
                    session,
                    org.id,
                    CheckinCreate(
                        manager_id=people[0].id,
                        employee_id=people[1].id,
                        rrule=MONDAYS,
                        timezone="Europe/Berlin",
                        starts_at=utcnow(),
                    ),
                    settings,
                )
                series_id = series.id
            before = await _meetings(db, series_id)

            api = db.sessionmaker()
            await api.begin()
            await checkin_service.update_series(
                api, org.id, series_id, CheckinUpdate(rrule=TUESDAYS), settings
            )

            async def worker_step() -> int:
                async with db.sessionmaker() as session, session.begin():
                    stale = await session.get(CheckinSeries, series_id)  # the Monday rule
                    assert stale is not None
                    return await meetings.materialise_series(session, stale, settings)

            step = asyncio.create_task(worker_step())
            await asyncio.sleep(0.3)  # the worker is at the series lock (or its insert)
            await api.commit()
            await api.close()
            created = await step
        finally:
            await db.dispose()
            db = Database.from_url(url)
        try:
            after = await _meetings(db, series_id)
        finally:
            await db.dispose()
    live = [m for m in after if m.status != "cancelled"]
    assert created == 0
    assert len(live) == len(before)
    assert {m.scheduled_at.astimezone(BERLIN).weekday() for m in live} == {1}
