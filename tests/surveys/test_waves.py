"""Waves through the worker: the missed-occurrence rule, a wave's whole life with real
mail, idempotency, races between workers, crashes mid-step, anonymity in the schema and
set-based inviting.

Time is moved by rewriting the wave's or survey's times in the database, never by
sleeping."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from sqlalchemy import Connection, event, func, insert, inspect, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.employees.models import Employee
from app.notifications.models import OutboxMessage
from app.notifications.sender import deliver_outbox
from app.scheduling import worker
from app.surveys import links, waves
from app.surveys import service as survey_service
from app.surveys.models import Invitation, Response, Survey, Wave
from app.surveys.schemas import SurveyCreate
from tests.conftest import Org, create_org, make_settings
from tests.databases import migrated_database
from tests.live import free_port

BASE_URL = "https://pulse.example.com"
LINK = re.compile(re.escape(BASE_URL) + r"/r/([A-Za-z0-9_-]{43})")


# --- fixtures and helpers ----------------------------------------------------------------


class MailCatcher:
    """aiosmtpd handler: keeps every accepted message, parsed as a mail client would."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        parsed = email.message_from_bytes(
            bytes(envelope.original_content or b""), policy=email.policy.default
        )
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(parsed)
        return "250 2.0.0 queued"

    def received(self) -> list[EmailMessage]:
        with self.lock:
            return list(self.messages)


@pytest.fixture
def smtp() -> Iterator[tuple[str, MailCatcher]]:
    """A real SMTP server on a free port; yields its URL and what it received."""
    catcher = MailCatcher()
    port = free_port()
    controller = Controller(catcher, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", catcher
    finally:
        controller.stop()


def links_in(message: EmailMessage) -> tuple[set[str], set[str]]:
    """The survey link tokens in the text part and in the HTML part."""
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None
    assert html is not None
    return set(LINK.findall(plain.get_content())), set(LINK.findall(html.get_content()))


def _people(org_id: uuid.UUID, count: int, team: str, **fields: Any) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        address = f"{team.lower()}-{i}-{uuid.uuid4().hex[:6]}@example.com"
        rows.append(
            {
                "organization_id": org_id,
                "email": address,
                "email_key": address,
                "name": f"{team} {i}",
                "team": team,
                "locale": "en",
                "timezone": "UTC",
                "attributes": {},
                "active": True,
                **fields,
            }
        )
    return rows


async def add_people(
    db: Database, org_id: uuid.UUID, count: int, team: str = "Sales", **fields: Any
) -> list[uuid.UUID]:
    """Employees straight into the directory (one executemany); returns their ids."""
    async with db.sessionmaker() as session, session.begin():
        result = await session.execute(
            insert(Employee).returning(Employee.id), _people(org_id, count, team, **fields)
        )
        return list(result.scalars())


async def due_survey(
    db: Database,
    org_id: uuid.UUID,
    *,
    minutes_ago: int,
    window_hours: int = 48,
    reminders_hours: Sequence[int] = (),
    missed_days: int = 0,
    audience: dict[str, Any] | None = None,
) -> tuple[uuid.UUID, datetime]:
    """An active daily survey whose latest occurrence was ``minutes_ago`` minutes ago and
    whose stored next opening lies ``missed_days`` days before it (a worker that was
    down). Returns the survey id and that latest occurrence."""
    occurrence = (utcnow() - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0)
    data = SurveyCreate.model_validate(
        {
            "name": "Daily pulse",
            "status": "active",
            "questions": [{"key": "enps", "kind": "enps"}],
            "schedule": {
                "rrule": f"FREQ=DAILY;BYHOUR={occurrence.hour};BYMINUTE={occurrence.minute}",
                "timezone": "UTC",
                "starts_at": (occurrence - timedelta(days=30)).isoformat(),
            },
            "window_hours": window_hours,
            "reminders_hours": list(reminders_hours),
            "audience": audience or {},
        }
    )
    async with db.sessionmaker() as session, session.begin():
        survey = await survey_service.create_survey(session, org_id, data)
        survey.next_opening_at = occurrence - timedelta(days=missed_days)
        return survey.id, occurrence


async def survey_row(db: Database, survey_id: uuid.UUID) -> Survey:
    async with db.sessionmaker() as session:
        survey = await session.get(Survey, survey_id)
        assert survey is not None
        return survey


async def waves_of(db: Database, survey_id: uuid.UUID) -> list[Wave]:
    async with db.sessionmaker() as session:
        rows = await session.execute(
            select(Wave).where(Wave.survey_id == survey_id).order_by(Wave.occurrence_at)
        )
        return list(rows.scalars())


async def invitations_of(db: Database, wave_id: uuid.UUID) -> list[Invitation]:
    async with db.sessionmaker() as session:
        rows = await session.execute(select(Invitation).where(Invitation.wave_id == wave_id))
        return list(rows.scalars())


async def outbox_keys(db: Database, prefix: str) -> list[str]:
    async with db.sessionmaker() as session:
        rows = await session.execute(
            select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.like(f"{prefix}%"))
        )
        return sorted(rows.scalars())


async def shift_wave(db: Database, wave_id: uuid.UUID, by: timedelta) -> None:
    """Move a wave in time (negative: into the past), as if the clock had moved on."""
    async with db.sessionmaker() as session, session.begin():
        wave = await session.get(Wave, wave_id)
        assert wave is not None
        wave.occurrence_at += by
        wave.opens_at += by
        wave.closes_at += by


async def mark_answered(
    db: Database, wave_id: uuid.UUID, employee_ids: Sequence[uuid.UUID]
) -> None:
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Invitation)
            .where(Invitation.wave_id == wave_id, Invitation.employee_id.in_(employee_ids))
            .values(answered=True)
        )


# --- the missed-occurrence rule ------------------------------------------------------------


async def test_due_survey_opens_its_occurrence_and_moves_the_next_opening(
    db: Database, org: Org, settings: Settings
) -> None:
    people = await add_people(db, org.id, 3)
    survey_id, occurrence = await due_survey(db, org.id, minutes_ago=5)

    opened = await waves.open_due_waves(db, settings)

    assert opened == 1
    [wave] = await waves_of(db, survey_id)
    assert wave.occurrence_at == occurrence
    assert wave.closes_at == occurrence + timedelta(hours=48)
    assert {i.employee_id for i in await invitations_of(db, wave.id)} == set(people)
    assert (await survey_row(db, survey_id)).next_opening_at == occurrence + timedelta(days=1)


async def test_worker_that_was_down_opens_only_the_latest_missed_occurrence(
    db: Database, org: Org, settings: Settings
) -> None:
    await add_people(db, org.id, 2)
    survey_id, latest = await due_survey(db, org.id, minutes_ago=30, window_hours=2, missed_days=7)

    opened = await waves.open_due_waves(db, settings)
    again = await waves.open_due_waves(db, settings)

    assert (opened, again) == (1, 0)
    assert [w.occurrence_at for w in await waves_of(db, survey_id)] == [latest]
    next_opening = (await survey_row(db, survey_id)).next_opening_at
    assert next_opening == latest + timedelta(days=1)
    assert next_opening is not None
    assert next_opening > utcnow()


async def test_missed_occurrence_whose_window_has_closed_opens_nothing(
    db: Database, org: Org, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await add_people(db, org.id, 2)
    survey_id, latest = await due_survey(db, org.id, minutes_ago=180, window_hours=1, missed_days=3)

    with caplog.at_level(logging.WARNING, logger="pulse.waves"):
        opened = await waves.open_due_waves(db, settings)

    assert opened == 0
    assert await waves_of(db, survey_id) == []
    assert await outbox_keys(db, "invite:") == []
    next_opening = (await survey_row(db, survey_id)).next_opening_at
    assert next_opening == latest + timedelta(days=1)
    assert next_opening is not None
    assert next_opening > utcnow()
    assert "window has passed" in caplog.text


async def test_paused_and_draft_surveys_never_open(
    db: Database, org: Org, settings: Settings
) -> None:
    await add_people(db, org.id, 1)
    survey_id, _ = await due_survey(db, org.id, minutes_ago=5)
    async with db.sessionmaker() as session, session.begin():
        await session.execute(update(Survey).where(Survey.id == survey_id).values(status="paused"))

    assert await waves.open_due_waves(db, settings) == 0
    assert await waves_of(db, survey_id) == []


async def test_editing_a_due_survey_keeps_its_due_occurrence(
    db: Database, org: Org, settings: Settings, client: httpx.AsyncClient
) -> None:
    await add_people(db, org.id, 1)
    survey_id, occurrence = await due_survey(db, org.id, minutes_ago=5)

    renamed = await client.patch(
        f"/v1/surveys/{survey_id}", json={"name": "Renamed", "window_hours": 24}, headers=org.admin
    )
    opened = await waves.open_due_waves(db, settings)

    assert renamed.status_code == 200, renamed.text
    assert opened == 1
    assert [w.occurrence_at for w in await waves_of(db, survey_id)] == [occurrence]


async def test_one_broken_survey_does_not_stop_the_others(
    db: Database, org: Org, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await add_people(db, org.id, 1)
    broken, _ = await due_survey(db, org.id, minutes_ago=5)
    healthy, _ = await due_survey(db, org.id, minutes_ago=5)
    async with db.sessionmaker() as session, session.begin():
        # A stored rule that no longer parses (written by hand, or by an older release).
        await session.execute(update(Survey).where(Survey.id == broken).values(rrule="FREQ=NOPE"))

    with caplog.at_level(logging.ERROR, logger="pulse.waves"):
        opened = await waves.open_due_waves(db, settings)

    assert opened == 1
    assert len(await waves_of(db, healthy)) == 1
    assert await waves_of(db, broken) == []
    assert "could not open the due wave" in caplog.text


@pytest.mark.parametrize("env", ["development", "production"])
async def test_embedded_default_logs_each_mailed_link_and_production_never_does(
    db: Database,
    org: Org,
    client: httpx.AsyncClient,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    env: str,
) -> None:
    """`make run` writes mail to files; the links are logged so a developer can click
    through from the terminal. Outside development, tokens never reach a log line."""
    settings = make_settings(
        database_url,
        env=env,
        email_url=f"file://{tmp_path / 'mail'}",
        public_base_url=BASE_URL,
        **({"secret_key": "k" * 40} if env == "production" else {}),
    )
    await add_people(db, org.id, 2)
    await due_survey(db, org.id, minutes_ago=1)

    with caplog.at_level(logging.INFO, logger="pulse.email"):
        done = await worker.tick(db, settings)

    assert done["deliver_outbox"] == 2
    tokens = set()
    for path in (tmp_path / "mail").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        in_text, _ = links_in(message)
        tokens |= in_text
    assert len(tokens) == 2
    mailed = {f"{BASE_URL}/r/{token}" for token in tokens}
    logged = {r.link for r in caplog.records if r.getMessage() == "email link"}  # type: ignore[attr-defined]
    if env == "production":
        assert logged == set()
        assert not any(t in caplog.text for t in tokens)
        return
    assert logged == mailed
    for link in logged:  # and each logged link opens its answer page
        page = await client.get(link.removeprefix(BASE_URL))
        assert page.status_code == 200, page.text


# --- a wave's whole life, with real mail ------------------------------------------------------


async def test_wave_life_through_the_worker_with_real_mail(
    db: Database,
    org: Org,
    client: httpx.AsyncClient,
    database_url: str,
    smtp: tuple[str, MailCatcher],
) -> None:
    smtp_url, mailbox = smtp
    settings = make_settings(
        database_url, email_url=smtp_url, public_base_url=BASE_URL, email_timeout_seconds=5.0
    )
    answers, ignores, leaves = await add_people(db, org.id, 3, team="Sales")
    await add_people(db, org.id, 2, team="Finance")  # outside the audience
    await add_people(db, org.id, 1, team="Sales", active=False)  # already gone
    survey_id, _ = await due_survey(
        db,
        org.id,
        minutes_ago=1,
        window_hours=48,
        reminders_hours=[24],
        audience={"teams": ["Sales"]},
    )
    emails = {}
    async with db.sessionmaker() as session:
        for e in await session.execute(select(Employee.id, Employee.email)):
            emails[e.id] = e.email

    # 1. The tick opens the wave and mails the invitations.
    first = await worker.tick(db, settings)

    assert first["open_due_waves"] == 1
    assert first["deliver_outbox"] == 3
    [wave] = await waves_of(db, survey_id)
    invitations = {i.employee_id: i for i in await invitations_of(db, wave.id)}
    assert set(invitations) == {answers, ignores, leaves}
    invites = mailbox.received()
    assert sorted(str(m["To"].addresses[0].addr_spec) for m in invites) == sorted(
        emails[e] for e in (answers, ignores, leaves)
    )
    link_of: dict[str, str] = {}
    for message in invites:
        assert message["X-Pulse-Kind"] == "survey_invitation"
        in_text, in_html = links_in(message)
        assert len(in_text) == 1
        assert in_text == in_html
        link_of[message["To"].addresses[0].addr_spec] = in_text.pop()
    for employee_id, invitation in invitations.items():
        token = link_of[emails[employee_id]]
        # The database keeps only the token's hash, and that hash is this link's.
        assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert links.hash_token(token) == invitation.token_hash

    # 2. One person answers, one leaves the company; the reminder offset passes.
    await mark_answered(db, wave.id, [answers])
    removed = await client.delete(f"/v1/employees/{leaves}", headers=org.admin)
    assert removed.status_code in (200, 204), removed.text
    quiet = await worker.tick(db, settings)
    assert quiet["send_reminders"] == 0  # not yet: 24 hours have not passed
    await shift_wave(db, wave.id, -timedelta(hours=25))

    reminded = await worker.tick(db, settings)

    assert reminded["send_reminders"] == 1
    reminders = mailbox.received()[3:]
    assert [m["To"].addresses[0].addr_spec for m in reminders] == [emails[ignores]]
    [reminder] = reminders
    assert reminder["X-Pulse-Kind"] == "survey_reminder"
    in_text, in_html = links_in(reminder)
    assert in_text == in_html == {link_of[emails[ignores]]}  # the same personal link

    # 3. A second tick sends no second round.
    again = await worker.tick(db, settings)
    assert again["send_reminders"] == 0
    assert len(mailbox.received()) == 4

    # 4. The window ends: the worker closes the wave.
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Wave).where(Wave.id == wave.id).values(closes_at=utcnow() - timedelta(minutes=1))
        )
    closing = await worker.tick(db, settings)

    assert closing["close_due_waves"] == 1
    read = await client.get(f"/v1/waves/{wave.id}", headers=org.admin)
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["status"] == "closed"
    assert body["closed_at"] is not None
    assert (body["invited"], body["responded"], body["response_rate"]) == (3, 1, 0.333)
    assert body["deliveries"] == {"queued": 0, "sent": 4, "failed": 0, "cancelled": 0}
    assert len(mailbox.received()) == 4


async def test_late_opened_wave_does_not_send_an_overdue_reminder_with_its_invitation(
    db: Database, org: Org, settings: Settings
) -> None:
    await add_people(db, org.id, 2)
    # Occurrence 3 hours ago, reminder at 1 hour: the worker was down through both.
    survey_id, _ = await due_survey(db, org.id, minutes_ago=180, reminders_hours=[1])

    done = await worker.tick(db, settings)

    assert done["open_due_waves"] == 1
    assert done["send_reminders"] == 0
    assert await outbox_keys(db, "remind:") == []
    [wave] = await waves_of(db, survey_id)
    await shift_wave(db, wave.id, -timedelta(minutes=61))
    later = await worker.tick(db, settings)
    assert later["send_reminders"] == 2


async def test_worker_that_missed_several_reminder_rounds_sends_one(
    db: Database, org: Org, settings: Settings
) -> None:
    people = await add_people(db, org.id, 3)
    survey_id, _ = await due_survey(db, org.id, minutes_ago=1, reminders_hours=[12, 24, 36])
    await waves.open_due_waves(db, settings)
    [wave] = await waves_of(db, survey_id)
    await mark_answered(db, wave.id, people[:1])
    await shift_wave(db, wave.id, -timedelta(hours=30))

    first = await waves.send_reminders(db, settings)
    second = await waves.send_reminders(db, settings)

    assert (first, second) == (2, 0)
    keys = await outbox_keys(db, f"remind:{wave.id}:")
    assert len(keys) == 2
    assert all(k.endswith(":2") for k in keys)  # the latest due round, alone
    assert [w.reminders_sent for w in await waves_of(db, survey_id)] == [2]


async def test_reminder_to_someone_who_answered_meanwhile_is_cancelled_not_failed(
    db: Database,
    org: Org,
    client: httpx.AsyncClient,
    database_url: str,
    smtp: tuple[str, MailCatcher],
) -> None:
    """Reminders are queued for non-responders; one answers before the sender gets to
    theirs. HR must not see a failed delivery for it: mail is fine."""
    smtp_url, mailbox = smtp
    settings = make_settings(
        database_url, email_url=smtp_url, public_base_url=BASE_URL, email_timeout_seconds=5.0
    )
    quick, *_ = await add_people(db, org.id, 3)
    survey_id, _ = await due_survey(db, org.id, minutes_ago=1, reminders_hours=[24])
    await waves.open_due_waves(db, settings)
    [wave] = await waves_of(db, survey_id)
    assert await deliver_outbox(db, settings) == 3
    await shift_wave(db, wave.id, -timedelta(hours=25))
    assert await waves.send_reminders(db, settings) == 3
    await mark_answered(db, wave.id, [quick])

    await deliver_outbox(db, settings)

    assert len(mailbox.received()) == 5  # 3 invitations, 2 reminders
    shown = await client.get(f"/v1/waves/{wave.id}", headers=org.admin)
    assert shown.json()["deliveries"] == {"queued": 0, "sent": 5, "failed": 0, "cancelled": 1}
    failed = await client.get("/v1/deliveries", params={"status": "failed"}, headers=org.admin)
    assert failed.json()["items"] == []
    cancelled = await client.get(
        "/v1/deliveries", params={"status": "cancelled"}, headers=org.admin
    )
    [item] = cancelled.json()["items"]
    # The survey is anonymous: neither the address nor the reason may tell who answered.
    assert (item["kind"], item["recipient"], item["recipient_hidden"], item["last_reply"]) == (
        "survey_reminder",
        None,
        True,
        "not sent: no longer needed",
    )
    retry = await client.post(f"/v1/deliveries/{item['id']}/retry", headers=org.admin)
    assert retry.status_code == 409


async def test_invitation_signed_by_a_retired_key_fails_until_the_key_is_back(
    db: Database,
    org: Org,
    client: httpx.AsyncClient,
    database_url: str,
    smtp: tuple[str, MailCatcher],
) -> None:
    """Unlike an answered reminder, this invitee still needs their link: the delivery
    fails where HR looks, and a retry after restoring the key sends the same link."""
    smtp_url, mailbox = smtp
    old, new = "o" * 40, "n" * 40

    def keys(current: str, *older: str) -> Settings:
        return make_settings(
            database_url,
            email_url=smtp_url,
            public_base_url=BASE_URL,
            email_timeout_seconds=5.0,
            secret_key=current,
            old_secret_keys=list(older),
        )

    await add_people(db, org.id, 1)
    survey_id, _ = await due_survey(db, org.id, minutes_ago=1)
    await waves.open_due_waves(db, keys(old))
    [wave] = await waves_of(db, survey_id)
    [invitation] = await invitations_of(db, wave.id)

    await deliver_outbox(db, keys(new))

    assert mailbox.received() == []
    failed = await client.get("/v1/deliveries", params={"status": "failed"}, headers=org.admin)
    [item] = failed.json()["items"]
    assert (item["kind"], item["last_reply"]) == (
        "survey_invitation",
        "the key that signed this link was retired",
    )
    retry = await client.post(f"/v1/deliveries/{item['id']}/retry", headers=org.admin)
    assert retry.status_code == 200, retry.text
    await deliver_outbox(db, keys(new, old))

    [message] = mailbox.received()
    plain, html = links_in(message)
    assert len(plain) == 1
    assert plain == html
    assert links.hash_token(plain.pop()) == invitation.token_hash


# --- idempotency and crashes -----------------------------------------------------------------


async def test_ticking_twice_opens_one_wave_and_queues_each_invitation_once(
    db: Database, org: Org, settings: Settings
) -> None:
    people = await add_people(db, org.id, 4)
    survey_id, occurrence = await due_survey(db, org.id, minutes_ago=2)

    first = await worker.tick(db, settings)
    second = await worker.tick(db, settings)
    # Another worker still holding the old next opening tries the same occurrence again.
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Survey).where(Survey.id == survey_id).values(next_opening_at=occurrence)
        )
    third = await worker.tick(db, settings)
    async with db.sessionmaker() as session, session.begin():
        survey = await session.get(Survey, survey_id)
        assert survey is not None
        direct = await waves.open_wave(session, survey, occurrence, settings)

    assert (first["open_due_waves"], second["open_due_waves"], third["open_due_waves"]) == (1, 0, 0)
    assert direct is None
    [wave] = await waves_of(db, survey_id)
    assert wave.invited == 4
    assert len(await invitations_of(db, wave.id)) == 4
    assert await outbox_keys(db, "invite:") == sorted(f"invite:{wave.id}:{p}" for p in people)


async def test_crash_inside_open_wave_rolls_back_whole_and_the_rerun_fills_the_gap(
    db: Database,
    org: Org,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    people = await add_people(db, org.id, 5)
    survey_id, occurrence = await due_survey(db, org.id, minutes_ago=2)
    inserted_before_crash: list[int] = []

    invite = waves._invite_audience

    async def crash_after_invitations(session: Any, *args: Any) -> int:
        await invite(session, *args)
        for table in (Invitation, OutboxMessage):
            count = await session.scalar(select(func.count()).select_from(table))
            inserted_before_crash.append(count)
        raise RuntimeError("worker killed after the invitations and their emails")

    monkeypatch.setattr(waves, "_invite_audience", crash_after_invitations)
    with caplog.at_level(logging.ERROR, logger="pulse.waves"):
        crashed = await waves.open_due_waves(db, settings)

    assert crashed == 0
    assert inserted_before_crash == [5, 5]  # invitations and emails were in, then rolled back
    assert await waves_of(db, survey_id) == []
    async with db.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Invitation)) == 0
    assert await outbox_keys(db, "invite:") == []
    assert (await survey_row(db, survey_id)).next_opening_at == occurrence  # still due
    assert "could not open the due wave" in caplog.text

    monkeypatch.undo()
    rerun = await worker.tick(db, settings)

    assert rerun["open_due_waves"] == 1
    [wave] = await waves_of(db, survey_id)
    assert sorted(i.employee_id for i in await invitations_of(db, wave.id)) == sorted(people)
    assert await outbox_keys(db, "invite:") == sorted(f"invite:{wave.id}:{p}" for p in people)


async def test_failing_step_after_the_wave_opened_keeps_the_rest_of_the_tick(
    db: Database, org: Org, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = await add_people(db, org.id, 3)
    survey_id, _ = await due_survey(db, org.id, minutes_ago=2)

    async def broken(db: Database, settings: Settings) -> int:
        raise RuntimeError("reminder step crashed")

    steps = [(name, broken if name == "send_reminders" else step) for name, step in worker.STEPS]
    monkeypatch.setattr(worker, "STEPS", steps)
    crashed = await worker.tick(db, settings)
    monkeypatch.undo()
    rerun = await worker.tick(db, settings)

    assert crashed["open_due_waves"] == 1
    assert crashed["send_reminders"] == -1
    assert crashed["deliver_outbox"] == 3  # the invitations still went out
    assert rerun["open_due_waves"] == 0
    assert rerun["deliver_outbox"] == 0
    [wave] = await waves_of(db, survey_id)
    async with db.sessionmaker() as session:
        rows = (await session.execute(select(OutboxMessage))).scalars().all()
    assert sorted(r.dedupe_key for r in rows) == sorted(f"invite:{wave.id}:{p}" for p in people)
    assert {(r.status, r.attempts) for r in rows} == {("sent", 1)}


# --- two workers at once (PostgreSQL) -----------------------------------------------------------


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh migrated PostgreSQL database whose commits are real; skips without one."""
    with migrated_database("postgresql", tmp_path) as url:
        yield url


@pytest_asyncio.fixture
async def two_workers(pg_url: str) -> AsyncIterator[tuple[Database, Database]]:
    first, second = Database.from_url(pg_url), Database.from_url(pg_url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def test_racing_workers_on_postgresql_open_one_wave_and_remind_once(
    two_workers: tuple[Database, Database], pg_url: str
) -> None:
    a, b = two_workers
    settings = make_settings(pg_url)
    org = await create_org(a, "Acme")
    people = await add_people(a, org.id, 20)
    survey_id, _ = await due_survey(a, org.id, minutes_ago=2, reminders_hours=[24])

    opened = await asyncio.gather(*(waves.open_due_waves(db, settings) for db in (a, b, a, b)))

    assert sum(opened) == 1
    [wave] = await waves_of(a, survey_id)
    invited = [i.employee_id for i in await invitations_of(a, wave.id)]
    assert sorted(invited) == sorted(people)
    assert len(await outbox_keys(a, "invite:")) == 20

    # Both workers also try the same occurrence head-on: the unique key decides.
    async def open_same(db: Database) -> uuid.UUID | None:
        async with db.sessionmaker() as session, session.begin():
            survey = await session.get(Survey, survey_id)
            assert survey is not None
            return await waves.open_wave(session, survey, wave.occurrence_at, settings)

    assert await asyncio.gather(open_same(a), open_same(b)) == [None, None]

    await mark_answered(a, wave.id, people[:5])
    await shift_wave(a, wave.id, -timedelta(hours=25))
    reminded = await asyncio.gather(*(waves.send_reminders(db, settings) for db in (a, b, a, b)))

    assert sorted(reminded) == [0, 0, 0, 15]
    keys = await outbox_keys(a, "remind:")
    assert len(keys) == len(set(keys)) == 15
    assert len(await waves_of(a, survey_id)) == 1
    async with a.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Invitation)) == 20


async def test_racing_manual_and_scheduled_opening_on_postgresql_keep_invitations_unique(
    two_workers: tuple[Database, Database], pg_url: str
) -> None:
    a, b = two_workers
    settings = make_settings(pg_url)
    org = await create_org(a, "Acme")
    await add_people(a, org.id, 10)
    survey_id, _ = await due_survey(a, org.id, minutes_ago=2)

    async def manual(db: Database) -> None:
        async with db.sessionmaker() as session, session.begin():
            await waves.open_wave_now(session, org.id, survey_id, settings)

    await asyncio.gather(waves.open_due_waves(a, settings), manual(b))

    found = await waves_of(a, survey_id)
    assert len(found) == 2  # the scheduled occurrence and the one opened by hand
    for wave in found:
        employees = [i.employee_id for i in await invitations_of(a, wave.id)]
        assert len(employees) == len(set(employees)) == 10
    assert len(await outbox_keys(a, "invite:")) == 20


# --- anonymity lives in the schema ----------------------------------------------------------------


async def test_no_column_or_key_leads_from_an_anonymous_answer_to_a_person(
    engine: AsyncEngine,
) -> None:
    def read(conn: Connection) -> dict[str, Any]:
        inspector = inspect(conn)
        return {
            table: {
                "fks": inspector.get_foreign_keys(table),
                "columns": inspector.get_columns(table),
            }
            for table in ("invitation", "response", "answer")
        }

    async with engine.connect() as conn:
        schema = await conn.run_sync(read)

    response_fks = {
        (tuple(fk["constrained_columns"]), fk["referred_table"]) for fk in schema["response"]["fks"]
    }
    answer_fks = {
        (tuple(fk["constrained_columns"]), fk["referred_table"]) for fk in schema["answer"]["fks"]
    }
    # The only key from a response to a person is employee_id, for attributed surveys.
    assert {t for _, t in response_fks} <= {"wave", "survey", "organization", "employee"}
    assert [c for c, t in response_fks if t == "employee"] == [("employee_id",)]
    assert {t for _, t in answer_fks} == {"response", "wave"}
    for table in ("response", "answer"):
        names = {c["name"] for c in schema[table]["columns"]}
        assert not names & {"invitation_id", "token_hash", "email", "created_at", "updated_at"}
        assert all(c["default"] is None for c in schema[table]["columns"]), "no sequences"
    # No time of day anywhere near an answer: the response keeps the day, nothing finer.
    timed = {
        (table, c["name"])
        for table in ("invitation", "response", "answer")
        for c in schema[table]["columns"]
        if any(word in str(c["type"]).upper() for word in ("TIME", "DATE"))
    }
    assert timed == {("response", "answered_on")}
    answered_on = next(c for c in schema["response"]["columns"] if c["name"] == "answered_on")
    assert str(answered_on["type"]).upper() == "DATE"
    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            for table in ("response", "answer"):
                sql = await conn.scalar(
                    text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}
                )
                assert "WITHOUT ROWID" in sql.upper()  # no insertion order to read back


async def test_anonymous_response_row_has_no_employee(
    client: httpx.AsyncClient, app: FastAPI, org: Org, db: Database, settings: Settings
) -> None:
    await add_people(db, org.id, 2)
    tokens: dict[bool, str] = {}
    for anonymous in (True, False):
        created = await client.post(
            "/v1/surveys",
            json={
                "name": f"anonymous={anonymous}",
                "anonymous": anonymous,
                "questions": [{"key": "enps", "kind": "enps"}],
            },
            headers=org.admin,
        )
        assert created.status_code == 201, created.text
        wave = await client.post(f"/v1/surveys/{created.json()['id']}/waves", headers=org.admin)
        assert wave.status_code == 201, wave.text
        [invitation, *_] = await invitations_of(db, uuid.UUID(wave.json()["id"]))
        tokens[anonymous] = links.recompute(
            settings, invitation.id, invitation.salt, invitation.key_id
        )

    for anonymous, token in tokens.items():
        answered = await client.post(f"/v1/respond/{token}", json={"answers": {"enps": 9}})
        assert answered.status_code == 201, (anonymous, answered.text)

    async with db.sessionmaker() as session:
        rows = (await session.execute(select(Response, Wave.anonymous).join(Wave))).all()
    by_kind = {anonymous: response for response, anonymous in rows}
    assert by_kind[True].employee_id is None
    assert by_kind[False].employee_id is not None


# --- inviting is set-based ---------------------------------------------------------------


async def test_opening_a_wave_takes_the_same_number_of_inserts_for_3_or_300_people(
    db: Database, org: Org, settings: Settings, engine: AsyncEngine
) -> None:
    await add_people(db, org.id, 3, team="Small")
    await add_people(db, org.id, 300, team="Big")
    small, _ = await due_survey(db, org.id, minutes_ago=1, audience={"teams": ["Small"]})
    big, _ = await due_survey(db, org.id, minutes_ago=1, audience={"teams": ["Big"]})
    inserts: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if re.search(r"\bINSERT\s+INTO\b", statement, re.IGNORECASE):
            inserts.append(statement)

    async def statements_to_open(survey_id: uuid.UUID) -> int:
        inserts.clear()
        async with db.sessionmaker() as session, session.begin():
            survey = await session.get(Survey, survey_id)
            assert survey is not None
            await waves.open_wave(session, survey, utcnow(), settings)
        return len(inserts)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        for_three = await statements_to_open(small)
        for_three_hundred = await statements_to_open(big)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)

    # The wave, then its invitations and their emails (two statements on SQLite, one on
    # PostgreSQL: both inserts in one WITH statement), then the segment census.
    expected = 3 if engine.dialect.name == "postgresql" else 4
    assert for_three == for_three_hundred == expected
    [wave] = await waves_of(db, big)
    assert wave.invited == 300
    assert len(await outbox_keys(db, f"invite:{wave.id}:")) == 300


@pytest.mark.parametrize("counted", ["right", "stale"])
async def test_invitations_made_over_several_chunks_match_their_people_and_links(
    db: Database,
    org: Org,
    other_org: Org,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    counted: str,
) -> None:
    """Small chunks, so PostgreSQL builds a chunk's link material while it writes the
    previous one (SQLite writes the whole audience in one statement either way). A
    stale count (people who joined after it was taken) still invites everyone."""
    monkeypatch.setattr(waves, "CHUNK", 7)
    if counted == "stale":

        async def nobody(session: Any, survey: Any) -> int:
            return 0

        monkeypatch.setattr(waves, "_audience_size", nobody)
    [boss] = await add_people(db, org.id, 1, team="Board", department="Management")
    people = await add_people(
        db,
        org.id,
        30,
        team="Sales",
        department="Revenue",
        manager_id=boss,
        locale="ar",
        attributes={"site": "Cairo"},
    )
    await add_people(db, org.id, 2, team="Sales", active=False)
    await add_people(db, other_org.id, 3, team="Sales")
    survey_id, occurrence = await due_survey(db, org.id, minutes_ago=1)

    async with db.sessionmaker() as session, session.begin():
        survey = await session.get(Survey, survey_id)
        assert survey is not None
        wave_id = await waves.open_wave(session, survey, occurrence, settings)
    assert wave_id is not None

    [wave] = await waves_of(db, survey_id)
    invitations = await invitations_of(db, wave_id)
    assert wave.invited == len(invitations) == 31
    assert sorted(i.employee_id for i in invitations) == sorted([boss, *people])
    mine = [i for i in invitations if i.employee_id != boss]
    assert {(i.team, i.department, i.manager_id, i.locale) for i in mine} == {
        ("Sales", "Revenue", boss, "ar")
    }
    assert all(i.attributes == {"site": "Cairo"} and not i.answered for i in mine)
    # Each row's link opens that row alone: the salt and hash were made together.
    for invitation in invitations:
        token = links.recompute(settings, invitation.id, invitation.salt, invitation.key_id)
        assert links.hash_token(token) == invitation.token_hash
    assert len({i.salt for i in invitations}) == len({i.token_hash for i in invitations}) == 31

    async with db.sessionmaker() as session:
        messages = list(
            (
                await session.execute(
                    select(OutboxMessage).where(OutboxMessage.group_id == wave_id)
                )
            ).scalars()
        )
    by_invitation = {i.id: i for i in invitations}
    assert len(messages) == 31
    async with db.sessionmaker() as session:
        rows = await session.execute(
            select(Employee.id, Employee.email).where(Employee.organization_id == org.id)
        )
        emails = {row.id: row.email for row in rows}
    for message in messages:
        invitation = by_invitation[message.about_id]
        assert message.dedupe_key == f"invite:{wave_id}:{invitation.employee_id}"
        assert message.recipient == emails[invitation.employee_id]
        assert (message.kind, message.status, message.attempts) == (
            "survey_invitation",
            "pending",
            0,
        )
        assert message.locale == invitation.locale
        assert message.organization_id == org.id


async def test_after_a_directory_import_sqlite_reads_the_audience_in_id_order_unsorted(
    db: Database, client: httpx.AsyncClient, org: Org, settings: Settings, engine: AsyncEngine
) -> None:
    """Without statistics SQLite takes ``organization_id = ?`` as selective, walks the
    organization index and sorts the whole directory (25 % slower for 100,000 people);
    an import refreshes them (bench/bench_open_wave.py)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's autovacuum keeps its own statistics")
    rows = [{"email": f"p{i}@example.com", "name": f"P {i}", "team": "T"} for i in range(40)]
    imported = await client.post("/v1/employees/import", json=rows, headers=org.admin)
    assert imported.status_code == 200, imported.text
    survey_id, occurrence = await due_survey(db, org.id, minutes_ago=1)
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "INSERT INTO invitation" in statement:
            statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with db.sessionmaker() as session, session.begin():
            survey = await session.get(Survey, survey_id)
            assert survey is not None
            await waves.open_wave(session, survey, occurrence, settings)
            [(statement, parameters)] = statements
            plan = await session.run_sync(
                lambda s: [
                    row[3]
                    for row in s.connection().exec_driver_sql(
                        "EXPLAIN QUERY PLAN " + statement, parameters
                    )
                ]
            )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)

    assert not any("TEMP B-TREE" in step for step in plan), plan
    assert any("SCAN e" in step or "SCAN employee" in step for step in plan), plan


async def test_sqlite_link_functions_do_not_outlive_the_wave_opening(
    db: Database, org: Org, settings: Settings, engine: AsyncEngine
) -> None:
    """The function that makes link material holds the signing key in its closure; the
    pooled connection must not keep it callable afterwards."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL gets the material as arrays, no functions")
    await add_people(db, org.id, 3)
    survey_id, occurrence = await due_survey(db, org.id, minutes_ago=1)
    async with db.sessionmaker() as session, session.begin():
        survey = await session.get(Survey, survey_id)
        assert survey is not None
        assert await waves.open_wave(session, survey, occurrence, settings) is not None
        for function in ("pulse_link_material", "pulse_new_id"):
            with pytest.raises(DBAPIError, match="function raised exception"):
                async with session.begin_nested():
                    await session.execute(text(f"SELECT {function}()"))
