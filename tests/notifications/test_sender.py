"""The sender under failure and concurrency, on databases whose commits are real: a
worker killed mid-batch, a worker shut down mid-batch, two workers on one queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from email.message import EmailMessage
from typing import Any, Literal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.notifications import outbox, render
from app.notifications.backends import Backend, Connection, SendResult, backend_from_url
from app.notifications.outbox import Claimed
from app.notifications.render import Kind
from app.notifications.sender import RECORD_EVERY, deliver_outbox
from tests.conftest import create_org
from tests.notifications import support
from tests.notifications.conftest import smtp_settings_for
from tests.notifications.smtp import SmtpServer


class WorkerKilled(Exception):
    """Stands for SIGKILL: nothing after it runs, nothing is recorded."""


class DyingBackend:
    """The real SMTP backend, until the worker dies right after the server accepted the
    ``after``-th message and before the sender could record it: by a crash (an error
    nobody handles) or by a shutdown (the task is cancelled)."""

    def __init__(self, inner: Backend, *, after: int, how: Literal["crash", "cancel"]) -> None:
        self.inner = inner
        self.after = after
        self.how = how
        self.sent = 0

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        async with self.inner.connect() as conn:
            yield _DyingConnection(self, conn)


class _DyingConnection:
    def __init__(self, backend: DyingBackend, inner: Connection) -> None:
        self.backend = backend
        self.inner = inner

    async def send(self, message: EmailMessage) -> SendResult:
        result = await self.inner.send(message)
        self.backend.sent += 1
        if self.backend.sent == self.backend.after:
            if self.backend.how == "crash":
                raise WorkerKilled
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)  # the cancellation lands here
        return result


async def test_worker_killed_mid_batch_loses_nothing_and_resends_only_messages_in_flight(
    committed_url: str, committed_db: Database, smtp: SmtpServer
) -> None:
    lease = timedelta(seconds=1.5)
    settings = smtp_settings_for(
        committed_url, smtp, email_lease_seconds=lease.total_seconds(), email_batch_size=50
    )
    org = await create_org(committed_db, "Acme")
    keys = support.keys("crash", 50)
    await support.queue(committed_db, org.id, keys)
    dying = DyingBackend(backend_from_url(settings.email_url), after=30, how="crash")

    with pytest.raises(WorkerKilled):
        await deliver_outbox(committed_db, settings, backend=dying)

    at_crash = await support.rows(committed_db)
    accepted = set(smtp.counts())
    assert len(accepted) == 30
    recorded = {k for k, m in at_crash.items() if m.status == "sent"}
    in_flight = {
        k
        for k, m in at_crash.items()
        if m.status == "sending" and support.expected_id(k, settings) in accepted
    }
    # Outcomes are written every RECORD_EVERY messages, or sooner when a third of the
    # lease has passed (a slow machine): what died unrecorded is less than RECORD_EVERY.
    assert recorded, "outcomes were written along the way"
    assert len(in_flight) == 30 - len(recorded)
    assert len(in_flight) < RECORD_EVERY
    assert {m.status for k, m in at_crash.items() if k not in recorded} == {"sending"}

    # Until the lease runs out nobody takes the dead worker's rows ...
    leases = {m.lease_until for m in at_crash.values() if m.status == "sending"}
    assert len(leases) == 1, "one claim, one lease"
    (lease_end,) = leases
    assert lease_end is not None
    async with committed_db.sessionmaker() as session, session.begin():
        just_before = lease_end - timedelta(milliseconds=1)
        taken = await outbox.claim_batch(session, limit=100, lease=lease, now=just_before)
        assert taken == []
    # ... then another worker does.
    await asyncio.sleep(max(0.0, (lease_end - utcnow()).total_seconds()) + 0.05)
    restarted = Database.from_url(committed_url)
    try:
        await support.deliver_until_settled(restarted, settings)
    finally:
        await restarted.dispose()

    final = await support.rows(committed_db)
    assert {m.status for m in final.values()} == {"sent"}
    assert {k for k, m in final.items() if m.attempts == 2} == set(keys) - recorded
    counts = smtp.counts()
    assert set(counts) == {support.expected_id(k, settings) for k in keys}, "a message was lost"
    duplicated = {k for k in keys if counts[support.expected_id(k, settings)] > 1}
    assert duplicated <= in_flight
    assert max(counts.values()) == 2


async def test_cancelled_worker_hands_back_untried_messages_without_spending_an_attempt(
    committed_url: str, committed_db: Database, smtp: SmtpServer
) -> None:
    settings = smtp_settings_for(committed_url, smtp, email_batch_size=50)
    org = await create_org(committed_db, "Acme")
    keys = support.keys("shutdown", 30)
    await support.queue(committed_db, org.id, keys)
    dying = DyingBackend(backend_from_url(settings.email_url), after=5, how="cancel")

    task = asyncio.create_task(deliver_outbox(committed_db, settings, backend=dying))
    with pytest.raises(asyncio.CancelledError):
        await task

    at_stop = await support.rows(committed_db)
    assert sorted(k for k, m in at_stop.items() if m.status == "sent") == keys[:4]
    handed_back = {k: m for k, m in at_stop.items() if m.status == "pending"}
    assert sorted(handed_back) == keys[4:], "nothing waits for a lease after a clean stop"
    assert {m.attempts for m in handed_back.values()} == {0}
    accepted = set(smtp.counts())
    in_flight = {k for k in handed_back if support.expected_id(k, settings) in accepted}
    assert in_flight == {keys[4]}

    assert await deliver_outbox(committed_db, settings) == len(handed_back)

    assert {m.status for m in (await support.rows(committed_db)).values()} == {"sent"}
    counts = smtp.counts()
    assert set(counts) == {support.expected_id(k, settings) for k in keys}
    assert {k for k in keys if counts[support.expected_id(k, settings)] > 1} <= in_flight


async def _organization_only(
    session: AsyncSession, claimed: Claimed, settings: Settings
) -> dict[str, Any]:
    return {"organization": "Acme"}


async def test_two_senders_on_postgresql_deliver_1000_messages_none_twice(
    postgres_url: str, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What is under test is the claim, not the rendering: skip the organization lookup
    # each test message makes, which would double the run time on a busy machine.
    monkeypatch.setitem(render.KINDS, "test", Kind("test", _organization_only))
    settings = smtp_settings_for(postgres_url, smtp, email_batch_size=25)
    setup = Database.from_url(postgres_url)
    senders = [Database.from_url(postgres_url) for _ in range(2)]
    try:
        org = await create_org(setup, "Acme")
        keys = support.keys("wave", 1000)
        await support.queue(setup, org.id, keys)

        attempted = await asyncio.gather(*(deliver_outbox(d, settings) for d in senders))

        assert sum(attempted) == 1000
        assert min(attempted) > 0, f"one sender did all the work: {attempted}"
        counts = smtp.counts()
        assert set(counts) == {support.expected_id(k, settings) for k in keys}
        twice = [m for m, n in counts.items() if n > 1]
        assert twice == [], f"{len(twice)} messages delivered more than once"
        final = (await support.rows(setup)).values()
        assert {(m.status, m.attempts) for m in final} == {("sent", 1)}
    finally:
        for d in [setup, *senders]:
            await d.dispose()


async def test_a_slow_server_keeps_the_batch_leased_so_no_other_sender_resends_it(
    committed_db: Database, committed_url: str, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten messages at 0.25 s each take 2.5 s, twice the 1.2 s lease: without renewal a
    second sender would claim the untried half and deliver it a second time."""
    monkeypatch.setitem(render.KINDS, "test", Kind("test", _organization_only))
    settings = smtp_settings_for(committed_url, smtp, email_batch_size=10, email_lease_seconds=1.2)
    org = await create_org(committed_db, "Acme")
    keys = support.keys("slow", 10)
    await support.queue(committed_db, org.id, keys)
    smtp.handler.policy.data_delay = 0.25
    other = Database.from_url(committed_url)
    try:
        first = asyncio.create_task(deliver_outbox(committed_db, settings))
        taken_by_other = 0
        while not first.done():
            taken_by_other += await deliver_outbox(other, settings, max_batches=1)
            await asyncio.sleep(0.05)
        assert await first == 10
    finally:
        await other.dispose()

    assert taken_by_other == 0
    counts = smtp.counts()
    assert set(counts) == {support.expected_id(k, settings) for k in keys}
    assert max(counts.values()) == 1
    assert {(m.status, m.attempts) for m in (await support.rows(committed_db)).values()} == {
        ("sent", 1)
    }
