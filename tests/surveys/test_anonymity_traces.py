"""On PostgreSQL, nothing the database itself records links a response to its person.

Answering flips the invitation and inserts the response in one transaction, so both rows
carry the same ``xmin`` and land at the ends of their tables in answer order. The
``scrub_answer_traces`` worker step must erase both links."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio
from sqlalchemy import text

from app.core.db import Database
from app.main import create_app
from app.surveys.anonymity import scrub_answer_traces
from tests.conftest import Org, create_org, make_settings
from tests.databases import migrated_database
from tests.surveys.answering_support import VALID_ANSWERS, open_survey


@pytest_asyncio.fixture
async def committing(tmp_path: Path) -> AsyncIterator[tuple[Database, str]]:
    with migrated_database("postgresql", tmp_path) as url:
        db = Database.from_url(url)
        try:
            yield db, url
        finally:
            await db.dispose()


async def _xmins(db: Database, sql: str, wave_id: str) -> list[str]:
    async with db.sessionmaker() as session:
        rows = await session.execute(text(sql), {"w": uuid.UUID(wave_id)})
        return [r[0] for r in rows.all()]


async def test_scrub_erases_transaction_ids_and_answer_order(
    committing: tuple[Database, str],
) -> None:
    db, url = committing
    settings = make_settings(url)
    app = create_app(settings, db=db)
    org: Org = await create_org(db, "Acme")
    people = [(f"p{i}@example.com", "en") for i in range(6)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        opened = await open_survey(c, org, db, settings, people=people)
        # Answer in an order unlike the invitations' (creation) order.
        for email in ["p4@example.com", "p1@example.com", "p5@example.com", "p2@example.com"]:
            r = await c.post(f"/v1/respond/{opened.token(email)}", json={"answers": VALID_ANSWERS})
            assert r.status_code == 201, r.text

        invitation_xmin = "SELECT xmin::text FROM invitation WHERE wave_id = :w AND answered"
        response_xmin = "SELECT xmin::text FROM response WHERE wave_id = :w"
        # The trace exists before the scrub: each response shares its invitation's xmin.
        before = set(await _xmins(db, invitation_xmin, opened.wave_id))
        assert before & set(await _xmins(db, response_xmin, opened.wave_id))
        assert len(before) == 4

        closed = await c.post(f"/v1/waves/{opened.wave_id}/close", headers=org.admin)
        assert closed.status_code == 200
    assert await scrub_answer_traces(db, settings) == 1

    inv = await _xmins(db, invitation_xmin, opened.wave_id)
    res = await _xmins(db, response_xmin, opened.wave_id)
    assert len(inv) == 4
    assert len(set(inv)) == 1, "answered invitations must share one transaction id"
    assert len(set(res)) == 1, "responses must share one transaction id"

    async with db.sessionmaker() as session:
        by_storage = (
            (await session.execute(text("SELECT id FROM response ORDER BY ctid"))).scalars().all()
        )
        invitations = (
            (await session.execute(text("SELECT id FROM invitation ORDER BY ctid"))).scalars().all()
        )
    assert list(by_storage) == sorted(by_storage), "responses stored in random-id order"
    assert list(invitations) == sorted(invitations), "invitations stored in creation order"
    # A second run has nothing left to do for a closed, scrubbed wave.
    assert await scrub_answer_traces(db, settings) == 0


async def test_scrub_is_a_no_op_on_sqlite(tmp_path: Path) -> None:
    with migrated_database("sqlite", tmp_path) as url:
        db = Database.from_url(url)
        try:
            assert await scrub_answer_traces(db, make_settings(url)) == 0
        finally:
            await db.dispose()
