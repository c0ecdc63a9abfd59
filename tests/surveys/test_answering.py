"""Answering through a personal link, as stored: the JSON twin's contract, every answer
rule naming its key, GETs that change nothing, anonymity in the rows themselves, one
answer per invitation under concurrency, the guessing brake, tokens kept out of logs."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import Date, DateTime, func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import Database
from app.main import create_app
from app.surveys import links
from app.surveys.answering import answers_from_form, check_answers
from app.surveys.models import Answer, Invitation, Response, Wave
from app.surveys.ratelimit import FailedLookupLimiter
from app.surveys.schemas import TEXT_MAX
from tests.conftest import Org, create_org, make_settings
from tests.databases import migrated_database
from tests.surveys.answering_support import QUESTIONS, VALID_ANSWERS, Opened, open_survey

UNKNOWN_TOKEN = "A" * links.TOKEN_LENGTH


@pytest_asyncio.fixture
async def opened(client: httpx.AsyncClient, org: Org, db: Database, settings: Settings) -> Opened:
    return await open_survey(
        client,
        org,
        db,
        settings,
        people=[("ana@example.com", "en"), ("amira@example.com", "ar"), ("bo@example.com", "en")],
    )


async def _count(db: Database, model: Any, **where: Any) -> int:
    async with db.sessionmaker() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int((await session.execute(query)).scalar_one())


async def _invitation(db: Database, invitation_id: uuid.UUID) -> Invitation:
    async with db.sessionmaker() as session:
        inv = await session.get(Invitation, invitation_id)
        assert inv is not None
        return inv


# --- The JSON twin ----------------------------------------------------------------------


async def test_get_shows_the_questions_in_the_employee_language(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    response = await client.get(f"/v1/respond/{opened.token('amira@example.com')}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["locale"], body["dir"], body["anonymous"]) == ("ar", "rtl", True)
    assert body["already_answered"] is False
    assert datetime.fromisoformat(body["closes_at"]) > datetime.now(UTC)
    by_key = {q["key"]: q for q in body["questions"]}
    assert [q["key"] for q in body["questions"]] == [q["key"] for q in QUESTIONS]
    assert by_key["workload"]["prompt"] == "عبء عملي معقول"
    assert "Acme" in by_key["enps"]["prompt"]
    assert by_key["enps"]["prompt_locale"] == "ar"
    assert (by_key["enps"]["min"], by_key["enps"]["max"]) == (0, 10)
    assert by_key["enps"]["anchors"]["low"] == "غير محتمل على الإطلاق"
    assert (by_key["workload"]["min"], by_key["workload"]["max"]) == (1, 5)
    # No Arabic given: the organization's default (English) is used, and says so.
    assert by_key["remote"]["prompt_locale"] == "en"
    assert [o["label"] for o in by_key["office"]["options"]] == ["القاهرة", "Paris"]
    assert by_key["comment"]["max_length"] == TEXT_MAX


async def test_answers_are_recorded_once_then_409(
    client: httpx.AsyncClient, db: Database, opened: Opened
) -> None:
    token = opened.token("ana@example.com")

    first = await client.post(f"/v1/respond/{token}", json={"answers": VALID_ANSWERS})
    again = await client.post(f"/v1/respond/{token}", json={"answers": VALID_ANSWERS})
    read = await client.get(f"/v1/respond/{token}")

    assert first.status_code == 201, first.text
    assert first.json() == {"status": "recorded", "anonymous": True}
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["code"] == "already_answered"
    assert read.status_code == 200
    assert read.json()["already_answered"] is True
    assert await _count(db, Response, wave_id=uuid.UUID(opened.wave_id)) == 1


async def test_answers_are_stored_by_kind_and_skipped_questions_store_nothing(
    client: httpx.AsyncClient, db: Database, opened: Opened
) -> None:
    answers = {"enps": 3, "workload": 5, "remote": False, "perks": ["train", "gym", "gym"]}

    posted = await client.post(
        f"/v1/respond/{opened.token('ana@example.com')}", json={"answers": answers}
    )

    assert posted.status_code == 201, posted.text
    async with db.sessionmaker() as session:
        rows = (
            await session.execute(select(Answer).where(Answer.wave_id == uuid.UUID(opened.wave_id)))
        ).scalars()
        stored = {a.question_key: (a.kind, a.score, a.choices, a.text) for a in rows}
    assert stored == {
        "enps": ("enps", 3, None, None),
        "workload": ("rating", 5, None, None),
        "remote": ("yes_no", 0, None, None),
        "perks": ("multi_choice", None, ["gym", "train"], None),  # survey order, once each
    }


async def test_whole_numbers_sent_as_floats_are_recorded_as_scores(
    client: httpx.AsyncClient, db: Database, opened: Opened
) -> None:
    """JSON has one number type: chat bots and JavaScript clients send 9 as 9.0."""
    answers = {**VALID_ANSWERS, "enps": 9.0, "workload": 4.0}

    posted = await client.post(
        f"/v1/respond/{opened.token('ana@example.com')}", json={"answers": answers}
    )

    assert posted.status_code == 201, posted.text
    async with db.sessionmaker() as session:
        rows = await session.execute(
            select(Answer.question_key, Answer.score).where(
                Answer.wave_id == uuid.UUID(opened.wave_id),
                Answer.question_key.in_(["enps", "workload"]),
            )
        )
        scores = {key: score for key, score in rows}
    assert scores == {"enps": 9, "workload": 4}


async def test_a_number_for_a_text_question_is_told_to_be_a_string(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    response = await client.post(
        f"/v1/respond/{opened.token('ana@example.com')}",
        json={"answers": {**VALID_ANSWERS, "comment": 5}},
    )

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"loc": ["body", "answers", "comment"], "msg": "must be a string"}
    ]


async def test_text_is_stored_trimmed_with_plain_line_breaks(
    client: httpx.AsyncClient, db: Database, opened: Opened
) -> None:
    posted = await client.post(
        f"/r/{opened.token('ana@example.com')}",
        data={"enps": "10", "workload": "2", "comment": "  first line\r\nsecond  "},
    )

    assert posted.status_code == 200, posted.text
    async with db.sessionmaker() as session:
        text = (
            await session.execute(select(Answer.text).where(Answer.question_key == "comment"))
        ).scalar_one()
    assert text == "first line\nsecond"


@pytest.mark.parametrize(
    ("answers", "key"),
    [
        pytest.param({"enps": 11}, "enps", id="enps-above-10"),
        pytest.param({"enps": -1}, "enps", id="enps-below-0"),
        pytest.param({"enps": "9"}, "enps", id="enps-string"),
        pytest.param({"enps": 9.5}, "enps", id="enps-fraction"),
        pytest.param({"enps": 11.0}, "enps", id="enps-whole-float-above-10"),
        pytest.param({"enps": True}, "enps", id="enps-boolean"),
        pytest.param({"enps": None}, "enps", id="enps-required-null"),
        pytest.param({"drop": "enps"}, "enps", id="enps-required-missing"),
        pytest.param({"workload": 0}, "workload", id="rating-below-1"),
        pytest.param({"workload": 6}, "workload", id="rating-above-scale"),
        pytest.param({"drop": "workload"}, "workload", id="rating-required-missing"),
        pytest.param({"remote": "yes"}, "remote", id="yes-no-string"),
        pytest.param({"remote": 1}, "remote", id="yes-no-number"),
        pytest.param({"office": "rome"}, "office", id="single-unknown-option"),
        pytest.param({"office": ["paris"]}, "office", id="single-list"),
        pytest.param({"perks": ["gym", "spa"]}, "perks", id="multi-unknown-option"),
        pytest.param({"perks": "gym"}, "perks", id="multi-not-a-list"),
        pytest.param({"perks": [1]}, "perks", id="multi-not-strings"),
        pytest.param({"comment": "x" * (TEXT_MAX + 1)}, "comment", id="text-too-long"),
        pytest.param({"comment": 5}, "comment", id="text-number"),
        pytest.param({"bogus": 1}, "bogus", id="unknown-question"),
    ],
)
async def test_every_invalid_answer_is_a_422_naming_its_key(
    client: httpx.AsyncClient,
    db: Database,
    opened: Opened,
    answers: dict[str, Any],
    key: str,
) -> None:
    body = {**VALID_ANSWERS, **answers}
    if "drop" in answers:
        body.pop("drop")
        body.pop(answers["drop"])
    person = opened.people["ana@example.com"]

    response = await client.post(f"/v1/respond/{person.token}", json={"answers": body})

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["loc"] == ["body", "answers", key]
    assert len(problem["errors"]) == 1, problem["errors"]
    assert key in problem["detail"]
    # Nothing was kept: the link is still unused.
    assert (await _invitation(db, person.invitation_id)).answered is False
    assert await _count(db, Response, wave_id=uuid.UUID(opened.wave_id)) == 0


async def test_a_rejected_submission_leaves_the_link_usable(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    token = opened.token("ana@example.com")

    bad = await client.post(f"/v1/respond/{token}", json={"answers": {"enps": 42}})
    good = await client.post(f"/v1/respond/{token}", json={"answers": VALID_ANSWERS})

    assert (bad.status_code, good.status_code) == (422, 201)


async def test_several_invalid_answers_are_all_listed(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    response = await client.post(
        f"/v1/respond/{opened.token('ana@example.com')}",
        json={"answers": {"workload": 9, "zzz": 1}},
    )

    assert response.status_code == 422
    locs = [tuple(e["loc"]) for e in response.json()["errors"]]
    assert sorted(locs) == sorted(
        [("body", "answers", "zzz"), ("body", "answers", "enps"), ("body", "answers", "workload")]
    )


async def test_body_without_answers_is_a_422(client: httpx.AsyncClient, opened: Opened) -> None:
    response = await client.post(f"/v1/respond/{opened.token('ana@example.com')}", json={"enps": 9})

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


def test_form_fields_become_the_same_typed_answers() -> None:
    items = [
        ("enps", "9"),
        ("workload", " "),
        ("remote", "no"),
        ("perks", "gym"),
        ("perks", "lunch"),
        ("comment", "hi"),
        ("office", "paris"),
        ("submit", "x"),  # not a question: ignored
    ]

    answers = answers_from_form(QUESTIONS, items)

    assert answers == {
        "enps": 9,
        "workload": None,
        "remote": False,
        "perks": ["gym", "lunch"],
        "comment": "hi",
        "office": "paris",
    }
    _, problems = check_answers(QUESTIONS, answers)
    assert [p.key for p in problems] == ["workload"]


def test_form_values_that_do_not_convert_are_reported_not_crashed_on() -> None:
    answers = answers_from_form(
        QUESTIONS,
        [("enps", "٩"), ("workload", "99999"), ("remote", "maybe"), ("comment", "a\x00b")],
    )

    _, problems = check_answers(QUESTIONS, answers)

    assert {p.key: p.code for p in problems} == {
        "enps": "err_scale",
        "workload": "err_scale",
        "remote": "err_yes_no",
        "comment": "err_text",
    }


# --- Reading changes nothing --------------------------------------------------------------


async def test_get_changes_nothing(client: httpx.AsyncClient, db: Database, opened: Opened) -> None:
    person = opened.people["ana@example.com"]

    for path in (f"/r/{person.token}", f"/r/{person.token}", f"/v1/respond/{person.token}"):
        response = await client.get(path)
        assert response.status_code == 200, response.text

    assert (await _invitation(db, person.invitation_id)).answered is False
    assert await _count(db, Response, wave_id=uuid.UUID(opened.wave_id)) == 0
    assert await _count(db, Answer, wave_id=uuid.UUID(opened.wave_id)) == 0


# --- Links that do not open -------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        UNKNOWN_TOKEN,
        "short",
        "has space",
        "x" * 500,
        "with/a/slash",
        "%00nul",
        "line%0Abreak",
        "",
    ],
)
async def test_unknown_and_malformed_tokens_are_404(
    client: httpx.AsyncClient, opened: Opened, token: str
) -> None:
    got = await client.get(f"/v1/respond/{token}")
    posted = await client.post(f"/v1/respond/{token}", json={"answers": VALID_ANSWERS})

    assert (got.status_code, posted.status_code) == (404, 404)
    assert got.json()["code"] == "link_not_found"
    assert got.json()["detail"] == posted.json()["detail"]


async def test_closed_wave_is_410(
    client: httpx.AsyncClient, org: Org, db: Database, opened: Opened
) -> None:
    closed = await client.post(f"/v1/waves/{opened.wave_id}/close", headers=org.admin)
    assert closed.status_code == 200, closed.text
    token = opened.token("ana@example.com")

    got = await client.get(f"/v1/respond/{token}")
    posted = await client.post(f"/v1/respond/{token}", json={"answers": VALID_ANSWERS})

    assert (got.status_code, posted.status_code) == (410, 410)
    assert got.json()["code"] == "wave_closed"
    assert closed.json()["closed_at"][:16] in got.json()["detail"].replace("+00:00", "Z")
    assert await _count(db, Response, wave_id=uuid.UUID(opened.wave_id)) == 0


async def test_wave_past_its_window_is_closed_before_the_worker_marks_it(
    client: httpx.AsyncClient, db: Database, opened: Opened
) -> None:
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Wave)
            .where(Wave.id == uuid.UUID(opened.wave_id))
            .values(closes_at=datetime.now(UTC) - timedelta(minutes=1))
        )

    posted = await client.post(
        f"/v1/respond/{opened.token('ana@example.com')}", json={"answers": VALID_ANSWERS}
    )

    assert posted.status_code == 410


async def test_links_of_a_retired_signing_key_stop_working(
    db: Database, database_url: str, opened: Opened
) -> None:
    rotated = create_app(make_settings(database_url, secret_key="n" * 40), db=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=rotated), base_url="http://pulse.test"
    ) as other:
        response = await other.get(f"/v1/respond/{opened.token('ana@example.com')}")

    assert response.status_code == 404


# --- Anonymity in storage ---------------------------------------------------------------


def _column_types(connection: Any, table: str) -> dict[str, Any]:
    return {c["name"]: c["type"] for c in inspect(connection).get_columns(table)}


async def _table(session: AsyncSession, table: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    connection = await session.connection()
    types = await connection.run_sync(_column_types, table)
    rows = (await session.execute(select(Response.__table__.metadata.tables[table]))).mappings()
    return types, [dict(r) for r in rows]


async def test_anonymous_response_holds_no_person_no_invitation_and_no_time(
    client: httpx.AsyncClient, db: Database, opened: Opened
) -> None:
    person = opened.people["ana@example.com"]
    posted = await client.post(f"/v1/respond/{person.token}", json={"answers": VALID_ANSWERS})
    assert posted.status_code == 201, posted.text

    async with db.sessionmaker() as session:
        tables = {name: await _table(session, name) for name in ("response", "answer")}
        invitation_types, _ = await _table(session, "invitation")
        inv = await session.get(Invitation, person.invitation_id)
        assert inv is not None

    employee_id, invitation_id = uuid.UUID(person.id), person.invitation_id
    forbidden = [str(employee_id), employee_id.hex, str(invitation_id), invitation_id.hex]
    for name, (types, rows) in tables.items():
        # No time of day anywhere: only the day it came in.
        assert not [c for c, t in types.items() if isinstance(t, DateTime)], name
        assert rows, name
        for row in rows:
            for column, value in row.items():
                shown = str(value).lower()
                assert not [f for f in forbidden if f in shown], f"{name}.{column} points back"
                assert not isinstance(value, datetime), f"{name}.{column} holds a time"
    assert "employee_id" not in tables["answer"][0]
    assert "invitation_id" not in tables["response"][0]
    assert "invitation_id" not in tables["answer"][0]
    (response,) = tables["response"][1]
    assert response["employee_id"] is None
    assert uuid.UUID(str(response["id"])).version == 4
    assert str(response["answered_on"]) == datetime.now(UTC).date().isoformat()
    assert isinstance(tables["response"][0]["answered_on"], Date)
    # The segments the invitation copied when the wave opened.
    assert (response["team"], response["department"]) == ("Sales", "Commercial")
    assert response["attributes"] == {"location": "Cairo"}
    assert response["manager_id"] == inv.manager_id
    # The invitation knows only that it was answered: a flag, and no time column at all.
    assert inv.answered is True
    assert not [c for c, t in invitation_types.items() if isinstance(t, DateTime)]


async def test_response_ids_are_random_not_ordered(
    client: httpx.AsyncClient, db: Database, opened: Opened
) -> None:
    for email in ("ana@example.com", "amira@example.com", "bo@example.com"):
        posted = await client.post(
            f"/v1/respond/{opened.token(email)}", json={"answers": VALID_ANSWERS}
        )
        assert posted.status_code == 201

    async with db.sessionmaker() as session:
        ids = (await session.execute(select(Response.id))).scalars().all()

    assert len(ids) == 3
    assert all(uuid.UUID(str(i)).version == 4 for i in ids)


async def test_attributed_survey_keeps_the_employee_and_says_so(
    client: httpx.AsyncClient, org: Org, db: Database, settings: Settings
) -> None:
    opened = await open_survey(client, org, db, settings, anonymous=False)
    person = opened.people["ana@example.com"]

    read = await client.get(f"/v1/respond/{person.token}")
    page = await client.get(f"/r/{person.token}")
    posted = await client.post(f"/v1/respond/{person.token}", json={"answers": VALID_ANSWERS})

    assert read.json()["anonymous"] is False
    assert "not anonymous" in read.json()["notice"]
    assert "not anonymous" in page.text
    assert posted.status_code == 201
    assert posted.json()["anonymous"] is False
    async with db.sessionmaker() as session:
        employee_id = (await session.execute(select(Response.employee_id))).scalar_one()
    assert str(employee_id) == person.id


# --- One answer per invitation, under real concurrency ---------------------------------


@pytest_asyncio.fixture
async def committing_app(backend: str, tmp_path: Path) -> AsyncIterator[tuple[FastAPI, Database]]:
    """An app on a database of its own that really commits (the rolled-back
    single-connection fixture serialises everything and cannot race)."""
    with migrated_database(backend, tmp_path) as url:
        app = create_app(make_settings(url))
        try:
            yield app, app.state.db
        finally:
            await app.state.db.dispose()


async def test_twenty_simultaneous_submissions_with_one_token_store_one_response(
    committing_app: tuple[FastAPI, Database],
) -> None:
    app, db = committing_app
    org = await create_org(db, "Race Inc")
    settings = app.state.settings
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://pulse.test"
    ) as client:
        opened = await open_survey(client, org, db, settings)
        token = opened.token("ana@example.com")

        responses = await asyncio.gather(
            *(
                client.post(
                    f"/v1/respond/{token}", json={"answers": {**VALID_ANSWERS, "enps": n % 11}}
                )
                for n in range(20)
            )
        )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 19, [r.text for r in responses if r.status_code >= 500]
    assert await _count(db, Response) == 1
    assert await _count(db, Answer) == len(VALID_ANSWERS)


# --- Guessing is braked -----------------------------------------------------------------


async def test_failed_lookups_are_limited_per_client_but_valid_links_still_work(
    app: FastAPI, client: httpx.AsyncClient, opened: Opened
) -> None:
    app.state.link_limiter = FailedLookupLimiter(failures=3, per_seconds=600)
    token = opened.token("ana@example.com")

    misses = [(await client.get(f"/r/bad-{n}")).status_code for n in range(3)]
    braked_json = await client.get(f"/v1/respond/{UNKNOWN_TOKEN}")
    braked_page = await client.post(f"/r/{UNKNOWN_TOKEN}", data={"enps": "9"})
    valid_page = await client.get(f"/r/{token}")
    valid_post = await client.post(f"/v1/respond/{token}", json={"answers": VALID_ANSWERS})
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://pulse.test") as neighbour:
        elsewhere = await neighbour.get(f"/v1/respond/{UNKNOWN_TOKEN}")

    assert misses == [404, 404, 404]
    assert braked_json.status_code == 429
    assert braked_json.json()["code"] == "too_many_attempts"
    assert int(braked_json.headers["retry-after"]) >= 1
    assert braked_page.status_code == 429
    assert braked_page.headers["content-type"].startswith("text/html")
    assert int(braked_page.headers["retry-after"]) >= 1
    assert valid_page.status_code == 200
    assert valid_post.status_code == 201
    assert elsewhere.status_code == 404  # another client has its own budget


async def test_valid_links_never_count_against_the_client(
    app: FastAPI, client: httpx.AsyncClient, opened: Opened
) -> None:
    app.state.link_limiter = FailedLookupLimiter(failures=2, per_seconds=600)
    token = opened.token("ana@example.com")

    for _ in range(10):
        assert (await client.get(f"/v1/respond/{token}")).status_code == 200
    misses = [(await client.get(f"/v1/respond/{UNKNOWN_TOKEN}")).status_code for _ in range(3)]

    assert misses == [404, 404, 429]


def test_limiter_refills_with_time_and_forgets_the_oldest_clients() -> None:
    now = [0.0]
    limiter = FailedLookupLimiter(failures=30, per_seconds=600, max_clients=3, clock=lambda: now[0])

    assert [limiter.record_failure("a") for _ in range(30)] == [None] * 30
    assert limiter.record_failure("a") == 20  # one attempt back every 20 s
    now[0] += 20
    assert limiter.record_failure("a") is None
    assert limiter.record_failure("a") == 20
    for client in ("b", "c", "d"):
        limiter.record_failure(client)
    assert len(limiter) == 3  # "a" (least recently seen) was forgotten
    assert limiter.record_failure("a") is None


# --- Tokens stay out of logs ------------------------------------------------------------


async def test_access_log_masks_the_token(
    client: httpx.AsyncClient, opened: Opened, caplog: pytest.LogCaptureFixture
) -> None:
    token = opened.token("ana@example.com")
    caplog.set_level(logging.DEBUG)

    await client.get(f"/r/{token}")
    await client.post(f"/r/{token}", data={"enps": "8", "workload": "3"})
    await client.get(f"/v1/respond/{token}")
    await client.get(f"/r/{UNKNOWN_TOKEN}")

    access = [r.getMessage() for r in caplog.records if r.name == "pulse.access"]
    assert "GET /r/*** 200" in access
    assert "POST /r/*** 200" in access
    assert "GET /v1/respond/*** 200" in access
    assert "GET /r/*** 404" in access
    # Every server-side record (httpx's own lines are the client's, the employee's side).
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert server
    for record in server:
        line = f"{record.getMessage()} {vars(record)}"
        assert token not in line, record.name
        assert UNKNOWN_TOKEN not in line, record.name
