"""The outbox table: queueing once per dedupe key, what a row holds (never the rendered
text), claims and leases, and the retry schedule."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import String, inspect, select

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.notifications import outbox
from app.notifications.models import OutboxMessage
from app.notifications.sender import deliver_outbox, retry_delay
from tests.conftest import Org, create_org, make_settings
from tests.notifications import support


async def test_enqueueing_the_same_dedupe_key_twice_is_a_no_op(db: Database, org: Org) -> None:
    first = {"organization_id": org.id, "kind": "test", "locale": "en"}
    async with db.sessionmaker() as session, session.begin():
        await outbox.enqueue(session, dedupe_key="invite:w1:e1", recipient="a@example.com", **first)
    async with db.sessionmaker() as session, session.begin():
        await outbox.enqueue(session, dedupe_key="invite:w1:e1", recipient="b@example.com", **first)
        await outbox.enqueue_many(
            session,
            [
                {**first, "dedupe_key": "invite:w1:e2", "recipient": "c@example.com"},
                {**first, "dedupe_key": "invite:w1:e2", "recipient": "d@example.com"},
            ],
        )

    queued = await support.rows(db)
    assert sorted(queued) == ["invite:w1:e1", "invite:w1:e2"]
    assert queued["invite:w1:e1"].recipient == "a@example.com", "the first one stays as it was"
    assert queued["invite:w1:e2"].recipient == "c@example.com"


async def test_enqueueing_nothing_writes_nothing(db: Database) -> None:
    async with db.sessionmaker() as session, session.begin():
        await outbox.enqueue_many(session, [])
    assert await support.rows(db) == {}


async def test_outbox_table_has_no_column_for_rendered_text(db: Database) -> None:
    async with db.sessionmaker() as session:
        connection = await session.connection()
        columns = await connection.run_sync(
            lambda c: {col["name"] for col in inspect(c).get_columns("outbox_message")}
        )
    assert columns == {c.name for c in OutboxMessage.__table__.columns}
    rendered = {"subject", "body", "text", "html", "body_text", "body_html", "content", "link"}
    assert not columns & rendered


async def test_sent_row_holds_neither_subject_nor_body(db: Database, tmp_path: Any) -> None:
    org = await create_org(db, "Zephyr Widgets")
    settings = make_settings("sqlite:///unused.db", email_url=(tmp_path / "mail").as_uri())
    await support.queue(db, org.id, ["private"], name="Lena Berg")

    await deliver_outbox(db, settings)

    (eml,) = (tmp_path / "mail").glob("*.eml")
    assert b"Zephyr Widgets" in eml.read_bytes(), "sanity: the message names the organization"
    table = OutboxMessage.__table__
    async with db.sessionmaker() as session:
        (raw,) = (await session.execute(select(table))).mappings().all()
    assert raw["status"] == "sent"
    texts = {c.name: raw[c.name] for c in table.columns if isinstance(c.type, String)}
    for name, value in texts.items():
        assert value is None or "Zephyr" not in value, f"{name} holds rendered text: {value!r}"
        assert value is None or "test message" not in value.lower(), name


async def test_claim_takes_each_due_row_once_until_its_lease_runs_out(
    db: Database, org: Org
) -> None:
    await support.queue(db, org.id, support.keys("claim", 3))
    lease = timedelta(minutes=5)
    now = utcnow()

    async with db.sessionmaker() as session, session.begin():
        first = await outbox.claim_batch(session, limit=2, lease=lease, now=now)
        second = await outbox.claim_batch(session, limit=2, lease=lease, now=now)
        third = await outbox.claim_batch(session, limit=2, lease=lease, now=now)
        before_expiry = await outbox.claim_batch(
            session, limit=10, lease=lease, now=now + lease - timedelta(seconds=1)
        )
        after_expiry = await outbox.claim_batch(
            session, limit=10, lease=lease, now=now + lease + timedelta(seconds=1)
        )

    assert (len(first), len(second), third, before_expiry) == (2, 1, [], [])
    assert {c.dedupe_key for c in first + second} == set(support.keys("claim", 3))
    assert {c.attempts for c in first + second} == {1}
    assert sorted(c.dedupe_key for c in after_expiry) == support.keys("claim", 3)
    assert {c.attempts for c in after_expiry} == {2}


async def test_message_deferred_for_later_is_not_claimed_before_its_time(
    db: Database, org: Org
) -> None:
    await support.queue(db, org.id, ["later"])
    now = utcnow()
    async with db.sessionmaker() as session, session.begin():
        (claimed,) = await outbox.claim_batch(session, limit=1, lease=timedelta(minutes=5))
        await outbox.mark_retry(session, claimed, "451 later", now + timedelta(minutes=1))
        assert await outbox.claim_batch(session, limit=1, lease=timedelta(minutes=5)) == []
        again = await outbox.claim_batch(
            session, limit=1, lease=timedelta(minutes=5), now=now + timedelta(minutes=2)
        )
    assert [c.dedupe_key for c in again] == ["later"]


class _Edge(random.Random):
    """Draws the lowest or the highest value ``uniform`` may return."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@pytest.fixture
def retry_settings() -> Settings:
    return make_settings(
        "sqlite:///unused.db", email_retry_base_seconds=60, email_retry_max_seconds=21_600
    )


def test_retry_delay_doubles_with_each_attempt_until_the_cap(retry_settings: Settings) -> None:
    highest = [retry_delay(n, retry_settings, _Edge(high=True)) for n in range(1, 12)]
    lowest = [retry_delay(n, retry_settings, _Edge(high=False)) for n in range(1, 12)]

    assert highest[:8] == [60, 120, 240, 480, 960, 1920, 3840, 7680]
    assert highest[8:] == [15360, 21_600, 21_600]
    assert lowest == [h / 2 for h in highest], "jitter draws from the upper half"


def test_retry_delay_stays_within_cap_for_any_attempt(retry_settings: Settings) -> None:
    rng = random.Random(20261126)
    for attempts in range(1, 101):
        ceiling = min(21_600, 60 * 2 ** (attempts - 1))
        for _ in range(20):
            delay = retry_delay(attempts, retry_settings, rng)
            assert ceiling / 2 <= delay <= ceiling <= 21_600


async def test_worker_whose_lease_ran_out_cannot_undo_the_new_holders_outcome(
    db: Database, org: Org
) -> None:
    await support.queue(db, org.id, ["contested"])
    lease = timedelta(minutes=5)
    now = utcnow()
    async with db.sessionmaker() as session, session.begin():
        (slow,) = await outbox.claim_batch(session, limit=1, lease=lease, now=now)
        (new_holder,) = await outbox.claim_batch(
            session, limit=1, lease=lease, now=now + lease + timedelta(seconds=1)
        )
        # The slow worker wakes up and records a deferral, then hands the row back ...
        await outbox.mark_retry(session, slow, "451 late news", now + timedelta(hours=1))
        await outbox.release(session, [slow])
        await outbox.mark_failed(session, slow, "550 late news")
        # ... none of which may touch the row the new holder is sending.
        mid_send = await support.row(db, "contested")
        await outbox.mark_sent(session, [(slow, "250 late"), (new_holder, "250 2.0.0 queued")])

    assert (mid_send.status, mid_send.attempts, mid_send.last_reply) == ("sending", 2, None)
    done = await support.row(db, "contested")
    assert (done.status, done.attempts, done.last_reply) == ("sent", 2, "250 2.0.0 queued")
