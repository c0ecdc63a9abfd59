"""The HR side of one-on-ones (``/v1/checkins``): what a series may be, who may see it,
and that HR sees meetings as metadata only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest_asyncio
from sqlalchemy import func, select

from app.checkins.schemas import DEFAULT_QUESTIONS
from app.core.db import Database
from app.notifications.models import OutboxMessage
from tests.conftest import Org
from tests.employees.helpers import assert_problem

BERLIN = ZoneInfo("Europe/Berlin")
WEEKLY = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
MEETING_FIELDS = {"id", "scheduled_at", "status", "checkin_submitted"}


def _next_monday() -> datetime:
    """Midnight in Berlin of a Monday at least two days away: every meeting is ahead."""
    day = datetime.now(BERLIN).date() + timedelta(days=2)
    day += timedelta(days=-day.weekday() % 7)
    return datetime(day.year, day.month, day.day, tzinfo=BERLIN)


async def _employee(client: httpx.AsyncClient, org: Org, email: str) -> str:
    body = {"email": email, "name": email.split("@")[0].title(), "locale": "en"}
    response = await client.post("/v1/employees", json=body, headers=org.admin)
    assert response.status_code == 201, response.text
    employee_id: str = response.json()["id"]
    return employee_id


@pytest_asyncio.fixture
async def pair(client: httpx.AsyncClient, org: Org) -> tuple[str, str]:
    """Maya (manager) and Bo (report) in Acme."""
    return (
        await _employee(client, org, "maya@acme.test"),
        await _employee(client, org, "bo@acme.test"),
    )


def _body(pair: tuple[str, str], **overrides: Any) -> dict[str, Any]:
    return {
        "manager_id": pair[0],
        "employee_id": pair[1],
        "rrule": WEEKLY,
        "timezone": "Europe/Berlin",
        "starts_at": _next_monday().isoformat(),
        "duration_minutes": 30,
        **overrides,
    }


async def _create(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str], **overrides: Any
) -> dict[str, Any]:
    response = await client.post("/v1/checkins", json=_body(pair, **overrides), headers=org.admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _question(key: str) -> dict[str, Any]:
    return {"key": key, "kind": "text", "prompt": f"About {key}?", "required": False}


async def test_series_without_questions_gets_the_default_checkin(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str]
) -> None:
    body = _body(pair)
    del body["duration_minutes"]
    response = await client.post("/v1/checkins", json=body, headers=org.admin)
    assert response.status_code == 201, response.text
    series = response.json()
    assert series["questions"] == DEFAULT_QUESTIONS
    assert series["duration_minutes"] == 60
    assert series["checkin_lead_hours"] == 24
    assert series["status"] == "active"
    assert series["ended_at"] is None
    assert (series["manager_id"], series["employee_id"]) == pair
    fetched = await client.get(f"/v1/checkins/{series['id']}", headers=org.admin)
    assert fetched.json() == series


async def test_series_keeps_the_questions_it_is_given_even_none(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str]
) -> None:
    ten = await _create(client, org, pair, questions=[_question(f"q{i}") for i in range(10)])
    assert [q["key"] for q in ten["questions"]] == [f"q{i}" for i in range(10)]
    empty = await _create(client, org, pair, questions=[])
    assert empty["questions"] == []


# (case, body changes, the field the 422 must name)
INVALID_CREATE: list[tuple[str, dict[str, Any], str]] = [
    ("manager is the report", {"employee_id": "<manager>"}, "employee_id"),
    ("rrule that is not one", {"rrule": "EVERY MONDAY"}, "rrule"),
    ("hourly", {"rrule": "FREQ=HOURLY"}, "rrule"),
    ("twice a day", {"rrule": "FREQ=DAILY;BYHOUR=9,17"}, "rrule"),
    ("never occurs", {"rrule": "FREQ=WEEKLY;UNTIL=20200101T000000Z"}, "rrule"),
    ("DTSTART inside", {"rrule": "DTSTART:20270101T090000\nRRULE:FREQ=WEEKLY"}, "rrule"),
    ("unknown time zone", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("10 minutes", {"duration_minutes": 10}, "duration_minutes"),
    ("300 minutes", {"duration_minutes": 300}, "duration_minutes"),
    ("11 questions", {"questions": [_question(f"q{i}") for i in range(11)]}, "questions"),
    ("duplicate keys", {"questions": [_question("same"), _question("same")]}, "questions"),
    ("naive starts_at", {"starts_at": "2027-03-01T00:00:00"}, "starts_at"),
    ("no lead time", {"checkin_lead_hours": 0}, "checkin_lead_hours"),
    ("unknown field", {"location": "Room 4"}, "location"),
]


async def test_create_rejects_each_invalid_field_by_name(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str], db: Database
) -> None:
    for case, overrides, field in INVALID_CREATE:
        if overrides.get("employee_id") == "<manager>":
            overrides = {"employee_id": pair[0]}
        response = await client.post(
            "/v1/checkins", json=_body(pair, **overrides), headers=org.admin
        )
        assert response.status_code == 422, (case, response.text)
        assert_problem(response, 422, field=field)
    assert await _count_series(client, org) == 0
    assert await _outbox_rows(db) == 0


async def _count_series(client: httpx.AsyncClient, org: Org) -> int:
    response = await client.get("/v1/checkins", headers=org.admin)
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


async def _outbox_rows(db: Database) -> int:
    async with db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def test_create_rejects_a_person_who_cannot_take_part(
    client: httpx.AsyncClient, org: Org, other_org: Org, pair: tuple[str, str]
) -> None:
    gone = await _employee(client, org, "gone@acme.test")
    deleted = await client.delete(f"/v1/employees/{gone}", headers=org.admin)
    assert deleted.status_code == 204
    people = {
        "unknown": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7d",
        "in another organization": await _employee(client, other_org, "eve@globex.test"),
        "deactivated": gone,
    }
    for field in ("manager_id", "employee_id"):
        for case, person in people.items():
            response = await client.post(
                "/v1/checkins", json=_body(pair, **{field: person}), headers=org.admin
            )
            assert response.status_code == 422, (field, case, response.text)
            assert_problem(response, 422, field=field)
    assert await _count_series(client, org) == 0


INVALID_PATCH: list[tuple[dict[str, Any], str]] = [
    *(
        ({field: None}, field)
        for field in (
            "rrule",
            "timezone",
            "starts_at",
            "duration_minutes",
            "questions",
            "checkin_lead_hours",
        )
    ),
    ({"rrule": "FREQ=HOURLY"}, "rrule"),
    ({"rrule": "FREQ=WEEKLY;COUNT=0"}, "rrule"),
    ({"timezone": "Europe/Atlantis"}, "timezone"),
    ({"duration_minutes": 300}, "duration_minutes"),
    ({"duration_minutes": 10}, "duration_minutes"),
    ({"starts_at": "2027-03-01T09:00:00"}, "starts_at"),
    ({"questions": [_question("a"), _question("a")]}, "questions"),
    ({"questions": [_question(f"q{i}") for i in range(11)]}, "questions"),
    ({"manager_id": None}, "manager_id"),  # the people of a series are fixed
    ({"status": "ended"}, "status"),  # ending is DELETE
]


async def test_patch_rejects_an_invalid_field_and_changes_nothing(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str], db: Database
) -> None:
    series = await _create(client, org, pair)
    meetings = await _meetings(client, org, series["id"])
    queued = await _outbox_rows(db)
    for change, field in INVALID_PATCH:
        response = await client.patch(
            f"/v1/checkins/{series['id']}", json=change, headers=org.admin
        )
        assert response.status_code == 422, (change, response.text)
        assert_problem(response, 422, field=field)
    after = await client.get(f"/v1/checkins/{series['id']}", headers=org.admin)
    assert after.json() == series
    assert await _meetings(client, org, series["id"]) == meetings
    assert await _outbox_rows(db) == queued


async def test_a_start_the_rule_cannot_reach_is_blamed_on_starts_at(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str], db: Database
) -> None:
    """The rule is fine (it runs from today); no Monday 09:00 follows these starts."""
    series = await _create(client, org, pair)
    for starts_at in ("9999-12-31T00:00:00Z", "9999-12-31T23:30:00Z"):
        created = await client.post(
            "/v1/checkins", json=_body(pair, starts_at=starts_at), headers=org.admin
        )
        changed = await client.patch(
            f"/v1/checkins/{series['id']}", json={"starts_at": starts_at}, headers=org.admin
        )
        for response in (created, changed):
            body = assert_problem(response, 422, field="starts_at")
            assert body["detail"].startswith("starts_at: "), body
            assert [e["loc"] for e in body["errors"]] == [["body", "starts_at"]], body
    # A rule that never runs, whatever the start, is still the rule's fault.
    broken = await client.patch(
        f"/v1/checkins/{series['id']}",
        json={"rrule": "FREQ=WEEKLY;COUNT=0", "starts_at": "9999-12-31T00:00:00Z"},
        headers=org.admin,
    )
    assert [e["loc"] for e in assert_problem(broken, 422)["errors"]] == [["body", "rrule"]]
    assert await _count_series(client, org) == 1


async def test_patch_of_questions_only_keeps_the_meetings_and_sends_nothing(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str], db: Database
) -> None:
    series = await _create(client, org, pair)
    before = await _meetings(client, org, series["id"])
    queued = await _outbox_rows(db)
    response = await client.patch(
        f"/v1/checkins/{series['id']}",
        json={"questions": [_question("wins")], "checkin_lead_hours": 48, "rrule": f" {WEEKLY} "},
        headers=org.admin,
    )
    assert response.status_code == 200, response.text
    assert response.json()["questions"] == [_question("wins")]
    assert response.json()["checkin_lead_hours"] == 48
    assert response.json()["rrule"] == WEEKLY
    assert await _meetings(client, org, series["id"]) == before
    assert await _outbox_rows(db) == queued


async def test_ended_series_cannot_change(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str]
) -> None:
    series = await _create(client, org, pair)
    for _ in range(2):  # ending twice is still "ended", not an error
        response = await client.delete(f"/v1/checkins/{series['id']}", headers=org.admin)
        assert response.status_code == 204
    ended = (await client.get(f"/v1/checkins/{series['id']}", headers=org.admin)).json()
    assert ended["status"] == "ended"
    assert ended["ended_at"] is not None
    response = await client.patch(
        f"/v1/checkins/{series['id']}", json={"duration_minutes": 45}, headers=org.admin
    )
    assert_problem(response, 409)
    assert response.json()["code"] == "series_ended"


async def _meetings(client: httpx.AsyncClient, org: Org, series_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/checkins/{series_id}/meetings", params={"limit": 500}, headers=org.admin
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_hr_sees_that_meetings_happen_and_nothing_more(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str]
) -> None:
    series = await _create(client, org, pair)
    items = await _meetings(client, org, series["id"])
    assert len(items) >= 4
    for item in items:
        assert set(item) == MEETING_FIELDS
        assert item["status"] == "scheduled"
        assert item["checkin_submitted"] is False
        at = datetime.fromisoformat(item["scheduled_at"])
        assert at.utcoffset() == timedelta(0)
        local = at.astimezone(BERLIN)
        assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)
    times = [i["scheduled_at"] for i in items]
    assert times == sorted(times)


async def test_meetings_page_through_with_a_cursor(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str]
) -> None:
    series = await _create(client, org, pair)
    everything = await _meetings(client, org, series["id"])
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            f"/v1/checkins/{series['id']}/meetings", params=params, headers=org.admin
        )
        assert response.status_code == 200, response.text
        seen += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == everything


async def test_meetings_list_in_time_order_after_a_new_cadence(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str]
) -> None:
    """A sparser cadence moves the next meetings onto every other Monday, past the
    ones it cancels (made earlier, now later in time); HR still reads one timeline,
    page after page."""
    series = await _create(client, org, pair)
    fortnightly = "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
    changed = await client.patch(
        f"/v1/checkins/{series['id']}", json={"rrule": fortnightly}, headers=org.admin
    )
    assert changed.status_code == 200, changed.text
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            f"/v1/checkins/{series['id']}/meetings", params=params, headers=org.admin
        )
        assert response.status_code == 200, response.text
        seen += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    days = {
        (datetime.fromisoformat(m["scheduled_at"]).astimezone(BERLIN).weekday(), m["status"])
        for m in seen
    }
    assert days == {(0, "cancelled"), (0, "scheduled")}
    times = [datetime.fromisoformat(m["scheduled_at"]) for m in seen]
    assert times == sorted(times)
    assert len({m["id"] for m in seen}) == len(seen)
    assert sorted(m["id"] for m in seen) == sorted(
        m["id"] for m in await _meetings(client, org, series["id"])
    )


async def test_a_cursor_from_another_series_is_a_422_not_an_empty_last_page(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str]
) -> None:
    first = await _create(client, org, pair)
    third = await _employee(client, org, "cy@acme.test")
    second = await _create(client, org, (pair[0], third))
    page = await client.get(
        f"/v1/checkins/{first['id']}/meetings", params={"limit": 1}, headers=org.admin
    )
    cursor = page.json()["next_cursor"]
    assert cursor is not None

    response = await client.get(
        f"/v1/checkins/{second['id']}/meetings", params={"cursor": cursor}, headers=org.admin
    )

    assert_problem(response, 422, field="cursor")


async def test_list_filters_by_person_and_status(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str]
) -> None:
    third = await _employee(client, org, "cy@acme.test")
    first = await _create(client, org, pair)
    second = await _create(client, org, (pair[0], third))
    await client.delete(f"/v1/checkins/{second['id']}", headers=org.admin)

    async def ids(**params: str) -> list[str]:
        response = await client.get("/v1/checkins", params=params, headers=org.admin)
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["items"]]

    assert await ids(manager_id=pair[0]) == [first["id"], second["id"]]
    assert await ids(employee_id=third) == [second["id"]]
    assert await ids(status="active") == [first["id"]]
    assert await ids(status="ended") == [second["id"]]


def _endpoints(series_id: str, pair: tuple[str, str]) -> list[tuple[str, str, Any]]:
    return [
        ("GET", "/v1/checkins", None),
        ("POST", "/v1/checkins", _body(pair)),
        ("GET", f"/v1/checkins/{series_id}", None),
        ("PATCH", f"/v1/checkins/{series_id}", {"duration_minutes": 45}),
        ("DELETE", f"/v1/checkins/{series_id}", None),
        ("GET", f"/v1/checkins/{series_id}/meetings", None),
    ]


async def test_reports_key_is_refused_on_every_checkin_endpoint(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str]
) -> None:
    series = await _create(client, org, pair)
    for method, url, body in _endpoints(series["id"], pair):
        response = await client.request(method, url, json=body, headers=org.reports)
        assert_problem(response, 403)
    unchanged = await client.get(f"/v1/checkins/{series['id']}", headers=org.admin)
    assert unchanged.json() == series


async def test_another_organization_finds_no_series(
    client: httpx.AsyncClient, org: Org, other_org: Org, pair: tuple[str, str]
) -> None:
    series = await _create(client, org, pair)
    listed = await client.get("/v1/checkins", headers=other_org.admin)
    assert listed.json()["items"] == []
    for method, url, body in _endpoints(series["id"], pair)[2:]:
        response = await client.request(method, url, json=body, headers=other_org.admin)
        assert_problem(response, 404)
    # Nor can it pair Acme's people in a series of its own.
    response = await client.post("/v1/checkins", json=_body(pair), headers=other_org.admin)
    assert_problem(response, 422, field="manager_id")
    unchanged = await client.get(f"/v1/checkins/{series['id']}", headers=org.admin)
    assert unchanged.json() == series


async def test_series_that_started_in_the_past_schedules_only_what_is_ahead(
    client: httpx.AsyncClient, org: Org, pair: tuple[str, str]
) -> None:
    started = datetime.now(UTC) - timedelta(weeks=10)
    series = await _create(client, org, pair, starts_at=started.isoformat())
    items = await _meetings(client, org, series["id"])
    now = datetime.now(UTC)
    assert items
    assert all(datetime.fromisoformat(i["scheduled_at"]) > now for i in items)
