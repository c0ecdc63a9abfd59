"""Delivery to a real SMTP server: what arrives, and what the outbox records when the
server refuses, defers, drops the connection or is not there at all."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.notifications import outbox, render
from app.notifications.models import OutboxMessage
from app.notifications.outbox import Claimed
from app.notifications.render import Attachment, Kind
from app.notifications.sender import deliver_outbox
from tests.conftest import Org, create_org
from tests.notifications import support
from tests.notifications.conftest import smtp_settings_for
from tests.notifications.smtp import DROP, SmtpServer


def lines(body: str) -> list[str]:
    """A body as a reader sees it: line breaks are CRLF on the wire, LF once rendered."""
    return body.strip().splitlines()


def ics_for(key: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Pulse//tests//EN\r\nMETHOD:REQUEST\r\n"
        f"BEGIN:VEVENT\r\nUID:{key}@pulse.test\r\nDTSTART:20270104T090000Z\r\n"
        "SUMMARY:One-on-one\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


async def _ics_attachment(
    session: AsyncSession, claimed: Claimed, settings: Settings, context: dict[str, Any]
) -> list[Attachment]:
    return [
        Attachment(
            "invite.ics", ics_for(claimed.dedupe_key), "text", "calendar", {"method": "REQUEST"}
        )
    ]


async def test_batch_arrives_with_headers_bodies_and_attachment(
    db: Database,
    org: Org,
    smtp: SmtpServer,
    smtp_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    test_kind = render.KINDS["test"]
    monkeypatch.setitem(render.KINDS, "test", Kind("test", test_kind.context, _ics_attachment))
    keys = support.keys("batch", 3)
    await support.queue(db, org.id, keys, name="Lena Berg")

    assert await deliver_outbox(db, smtp_settings) == 3

    assert smtp.counts() == {support.expected_id(k, smtp_settings): 1 for k in keys}
    arrived = smtp.by_recipient()
    for key in keys:
        to = support.recipient(key)
        got = arrived[to]
        assert got.mail_from == "pulse@localhost"
        assert got.rcpt_tos == [to]
        msg = got.message
        assert msg["From"] == smtp_settings.email_from
        assert msg["To"].addresses[0].addr_spec == to
        assert msg["To"].addresses[0].display_name == "Lena Berg"
        assert msg["Subject"] == "Pulse test message for Acme"
        assert msg["Message-ID"] == support.expected_id(key, smtp_settings)
        assert msg["Date"].datetime > utcnow() - timedelta(minutes=5)
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["X-Pulse-Kind"] == "test"
        assert msg.get_content_type() == "multipart/mixed"

        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        assert text is not None
        assert html is not None
        assert "Hello Lena Berg," in text.get_content()
        assert "test message from Pulse for Acme" in text.get_content()
        html_body = html.get_content()
        assert '<html lang="en" dir="ltr">' in html_body
        assert "<strong>Acme</strong>" in html_body
        assert "<title>Pulse test message for Acme</title>" in html_body

        # The event as Google Calendar sends one: a third alternative that Outlook and
        # Gmail show as a meeting request, and the same event as an invite.ics file.
        alternatives = next(p for p in msg.iter_parts() if p.is_multipart())
        assert alternatives.get_content_type() == "multipart/alternative"
        kinds = [p.get_content_type() for p in alternatives.iter_parts()]
        assert kinds == ["text/plain", "text/html", "text/calendar"]
        event = list(alternatives.iter_parts())[2]
        assert event.get_param("method") == "REQUEST"
        assert event.get_content_disposition() is None  # inline, not an attachment
        assert event.get_payload(decode=True) == ics_for(key)
        (attachment,) = list(msg.iter_attachments())
        assert attachment.get_filename() == "invite.ics"
        assert attachment.get_content_type() == "application/ics"
        assert attachment.get_payload(decode=True) == ics_for(key)

    for m in (await support.rows(db)).values():
        assert (m.status, m.attempts) == ("sent", 1)
        assert m.sent_at is not None
        assert m.lease_until is None
        assert m.last_reply is not None
        assert m.last_reply.startswith("250")


async def test_temporary_refusal_is_retried_later_and_delivered(
    db: Database, org: Org, smtp: SmtpServer, database_url: str
) -> None:
    settings = smtp_settings_for(
        database_url, smtp, email_retry_base_seconds=0.6, email_retry_max_seconds=1.0
    )
    smtp.policy.data.append("451 4.7.1 greylisted, try again later")
    await support.queue(db, org.id, ["greylisted"])
    before = utcnow()

    assert await deliver_outbox(db, settings, max_batches=1) == 1

    deferred = await support.row(db, "greylisted")
    assert (deferred.status, deferred.attempts) == ("pending", 1)
    assert deferred.last_reply == "451 4.7.1 greylisted, try again later"
    # first retry: base·2⁰ = 0.6 s, drawn from its upper half
    assert before + timedelta(seconds=0.3) <= deferred.next_attempt_at
    assert deferred.next_attempt_at <= utcnow() + timedelta(seconds=0.6)
    assert smtp.received == []
    async with db.sessionmaker() as session, session.begin():
        just_before = deferred.next_attempt_at - timedelta(milliseconds=1)
        early = await outbox.claim_batch(
            session, limit=1, lease=timedelta(minutes=5), now=just_before
        )
    assert early == [], "retried before its time"

    await asyncio.sleep((deferred.next_attempt_at - utcnow()).total_seconds() + 0.02)
    assert await deliver_outbox(db, settings) == 1

    delivered = await support.row(db, "greylisted")
    assert (delivered.status, delivered.attempts) == ("sent", 2)
    assert smtp.counts() == {support.expected_id("greylisted", settings): 1}


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
async def test_permanent_refusal_is_failed_with_server_reply_and_batch_goes_on(
    db: Database, org: Org, smtp: SmtpServer, smtp_settings: Settings, stage: str
) -> None:
    reply = "550 5.1.1 mailbox unavailable"
    await support.queue(db, org.id, ["a-refused", "b-fine"])
    if stage == "RCPT":
        smtp.policy.rcpt[support.recipient("a-refused")] = reply
    else:
        smtp.policy.data.append(reply)  # the first message sent: ids sort "a" first

    assert await deliver_outbox(db, smtp_settings, max_batches=1) == 2

    refused = await support.row(db, "a-refused")
    assert (refused.status, refused.attempts) == ("failed", 1)
    assert refused.last_reply == reply
    assert refused.sent_at is None
    assert (await support.row(db, "b-fine")).status == "sent"
    assert list(smtp.by_recipient()) == [support.recipient("b-fine")]
    assert await deliver_outbox(db, smtp_settings) == 0, "a failed message is not retried"


async def test_server_down_then_back_delivers_everything_once(
    db: Database, org: Org, smtp: SmtpServer, smtp_settings: Settings
) -> None:
    keys = support.keys("outage", 5)
    await support.queue(db, org.id, keys)
    smtp.stop()

    assert await deliver_outbox(db, smtp_settings, max_batches=1) == 5

    for m in (await support.rows(db)).values():
        assert (m.status, m.attempts) == ("pending", 1)
        assert m.last_reply is not None
        assert "connect" in m.last_reply.lower()

    smtp.start()
    await support.deliver_until_settled(db, smtp_settings)

    assert {m.status for m in (await support.rows(db)).values()} == {"sent"}
    assert smtp.counts() == {support.expected_id(k, smtp_settings): 1 for k in keys}


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
async def test_dropped_connection_is_retried_and_the_rest_of_the_batch_delivered(
    db: Database, org: Org, smtp: SmtpServer, smtp_settings: Settings, stage: str
) -> None:
    keys = support.keys("drop", 4)
    await support.queue(db, org.id, keys)
    if stage == "RCPT":
        smtp.policy.rcpt[support.recipient(keys[1])] = DROP
    else:
        smtp.policy.data.append(DROP)

    assert await deliver_outbox(db, smtp_settings, max_batches=1) == 4

    dropped = [m for m in (await support.rows(db)).values() if m.status == "pending"]
    assert len(dropped) == 1
    assert dropped[0].attempts == 1
    assert len(smtp.received) == 3, "the connection was reopened for the next messages"

    smtp.policy.rcpt.clear()
    await support.deliver_until_settled(db, smtp_settings)

    assert smtp.counts() == {support.expected_id(k, smtp_settings): 1 for k in keys}
    assert sorted(m.attempts for m in (await support.rows(db)).values()) == [1, 1, 1, 2]


async def test_server_refusing_every_fifth_message_still_gets_each_once(
    db: Database, org: Org, smtp: SmtpServer, smtp_settings: Settings
) -> None:
    keys = support.keys("flaky", 60)
    await support.queue(db, org.id, keys)
    smtp.policy.flaky_every = 5

    await support.deliver_until_settled(db, smtp_settings)

    assert smtp.counts() == {support.expected_id(k, smtp_settings): 1 for k in keys}
    outbox_rows = (await support.rows(db)).values()
    assert {m.status for m in outbox_rows} == {"sent"}
    assert sum(m.attempts for m in outbox_rows) > len(keys), "no message was ever refused"


async def test_message_that_keeps_failing_is_failed_after_max_attempts(
    db: Database, org: Org, smtp: SmtpServer, database_url: str
) -> None:
    settings = smtp_settings_for(database_url, smtp, email_max_attempts=3)
    smtp.policy.flaky_every = 1  # every DATA: 451
    await support.queue(db, org.id, ["hopeless"])

    await support.deliver_until_settled(db, settings)

    given_up = await support.row(db, "hopeless")
    assert (given_up.status, given_up.attempts) == ("failed", 3)
    assert given_up.last_reply is not None
    assert given_up.last_reply.startswith("gave up after 3 attempts: 451 4.3.0")
    assert smtp.received == []


async def test_arabic_subject_and_body_survive_a_real_smtp_round_trip(
    db: Database, smtp: SmtpServer, smtp_settings: Settings
) -> None:
    org = await create_org(db, "شركة النور")
    await support.queue(db, org.id, ["arabic"], locale="ar", name="ليلى حداد")
    async with db.sessionmaker() as session:
        expected = await render.render(
            session, support.claimed(org.id, locale="ar", name="ليلى حداد"), smtp_settings
        )

    await deliver_outbox(db, smtp_settings)

    (got,) = smtp.received
    msg = got.message
    assert msg["Subject"] == expected.subject == "رسالة تجريبية من Pulse إلى شركة النور"
    assert msg["To"].addresses[0].display_name == "ليلى حداد"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content_charset() == "utf-8"
    assert lines(text.get_content()) == lines(expected.text)
    assert "مرحبًا ليلى حداد،" in text.get_content()
    assert lines(html.get_content()) == lines(expected.html)
    assert '<html lang="ar" dir="rtl">' in html.get_content()


async def test_message_whose_last_attempt_died_with_its_worker_is_given_up_unsent(
    db: Database, org: Org, smtp: SmtpServer, database_url: str
) -> None:
    settings = smtp_settings_for(database_url, smtp, email_max_attempts=1)
    await support.queue(db, org.id, ["last-chance"])
    async with db.sessionmaker() as session, session.begin():
        # claimed by a worker that then died, and its lease has run out since
        await outbox.claim_batch(session, limit=1, lease=timedelta(minutes=5))
        await session.execute(
            update(OutboxMessage).values(lease_until=utcnow() - timedelta(seconds=1))
        )

    assert await deliver_outbox(db, settings) == 1

    given_up = await support.row(db, "last-chance")
    assert (given_up.status, given_up.attempts) == ("failed", 2)
    assert given_up.last_reply == "gave up after 1 attempts"
    assert smtp.received == []
