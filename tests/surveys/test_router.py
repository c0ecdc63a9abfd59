"""Survey definitions and waves over HTTP: validation (422 naming the field), defaults,
the schedule preview across daylight-saving changes, opening, counting and closing
waves, and the scope and tenancy rules on every endpoint."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.core.db import Database
from app.surveys.models import Invitation, Survey, Wave
from tests.conftest import Org
from tests.employees.helpers import assert_problem, create_employee

SCHEDULE = {
    "rrule": "FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9;BYMINUTE=0",
    "timezone": "Europe/Berlin",
    "starts_at": "2027-01-01T00:00:00+01:00",
}


def survey_body(**overrides: Any) -> dict[str, Any]:
    """A valid survey definition; ``overrides`` replace top-level fields."""
    body: dict[str, Any] = {
        "name": "Monthly pulse",
        "questions": [
            {"key": "enps", "kind": "enps"},
            {"key": "workload", "kind": "rating", "prompt": "My workload is manageable"},
            {"key": "comment", "kind": "text", "prompt": "Anything else?", "required": False},
        ],
        "schedule": dict(SCHEDULE),
        "window_hours": 120,
        "reminders_hours": [48, 96],
    }
    body.update(overrides)
    return body


async def create_survey(client: httpx.AsyncClient, org: Org, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/surveys", json=survey_body(**overrides), headers=org.admin)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def open_wave(client: httpx.AsyncClient, org: Org, survey_id: str) -> dict[str, Any]:
    response = await client.post(f"/v1/surveys/{survey_id}/waves", headers=org.admin)
    assert response.status_code == 201, response.text
    wave: dict[str, Any] = response.json()
    return wave


async def get_wave(client: httpx.AsyncClient, org: Org, wave_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/waves/{wave_id}", headers=org.admin)
    assert response.status_code == 200, response.text
    wave: dict[str, Any] = response.json()
    return wave


async def invited_employees(db: Database, wave_id: str) -> set[str]:
    async with db.sessionmaker() as session:
        rows = await session.execute(
            select(Invitation.employee_id).where(Invitation.wave_id == uuid.UUID(wave_id))
        )
        return {str(e) for e in rows.scalars()}


async def mark_answered(db: Database, wave_id: str, employee_id: str) -> None:
    """What a submitted answer leaves on the invitation: the flag, nothing else."""
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Invitation)
            .where(
                Invitation.wave_id == uuid.UUID(wave_id),
                Invitation.employee_id == uuid.UUID(employee_id),
            )
            .values(answered=True)
        )


# --- validation: every error is a 422 that names the field ------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _questions(n: int) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        body["questions"] = [
            {"key": f"q{i}", "kind": "rating", "prompt": f"Question {i}"} for i in range(n)
        ]

    return mutate


def _question(**fields: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        body["questions"][1] = {"key": "workload", **fields}

    return mutate


def _schedule(**fields: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        body["schedule"].update(fields)

    return mutate


def _top(**fields: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        body.update(fields)

    return mutate


def _duplicate_key(body: dict[str, Any]) -> None:
    body["questions"][2]["key"] = "workload"


CREATE_ERRORS: list[tuple[str, Mutation, str]] = [
    ("eleven questions", _questions(11), "questions"),
    ("no question", _questions(0), "questions"),
    ("duplicate key", _duplicate_key, "questions"),
    ("two eNPS questions", _question(kind="enps"), "questions"),
    ("unknown kind", _question(kind="slider", prompt="How?"), "kind"),
    ("choice without options", _question(kind="single_choice", prompt="Pick"), "options"),
    (
        "choice with one option",
        _question(kind="multi_choice", prompt="Pick", options=[{"key": "a", "label": "A"}]),
        "options",
    ),
    ("rating scale 11", _question(kind="rating", prompt="Rate", scale=11), "scale"),
    ("scale on a non-rating", _question(kind="yes_no", prompt="Yes?", scale=5), "scale"),
    ("text without prompt", _question(kind="text"), "prompt"),
    ("empty prompt", _question(kind="text", prompt="  "), "prompt"),
    ("bad question key", _question(key="Work Load", kind="yes_no", prompt="?"), "key"),
    ("invalid rrule", _schedule(rrule="FREQ=SOMETIMES"), "rrule"),
    ("hourly rrule", _schedule(rrule="FREQ=HOURLY"), "rrule"),
    ("twice a day", _schedule(rrule="FREQ=DAILY;BYHOUR=9,17"), "rrule"),
    ("interval zero", _schedule(rrule="FREQ=WEEKLY;INTERVAL=0"), "rrule"),
    ("never occurs", _schedule(rrule="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"), "rrule"),
    ("unknown time zone", _schedule(timezone="Mars/Olympus_Mons"), "timezone"),
    ("start without offset", _schedule(starts_at="2027-01-01T09:00:00"), "starts_at"),
    ("reminder outside window", _top(window_hours=48, reminders_hours=[24, 48]), "reminders_hours"),
    ("min group size 2", _top(min_group_size=2), "min_group_size"),
    (
        "comment threshold below score threshold",
        _top(min_group_size=7, comment_min_group_size=5),
        "comment_min_group_size",
    ),
    ("created paused", _top(status="paused"), "status"),
    ("unknown field", _top(colour="blue"), "colour"),
]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [pytest.param(m, f, id=name) for name, m, f in CREATE_ERRORS],
)
async def test_invalid_survey_is_a_422_naming_the_field(
    client: httpx.AsyncClient, org: Org, mutate: Mutation, field: str
) -> None:
    body = copy.deepcopy(survey_body())
    mutate(body)

    response = await client.post("/v1/surveys", json=body, headers=org.admin)

    assert_problem(response, 422, field=field)
    listed = await client.get("/v1/surveys", headers=org.admin)
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    "field",
    [
        "name",
        "anonymous",
        "min_group_size",
        "comment_min_group_size",
        "questions",
        "window_hours",
        "reminders_hours",
        "audience",
        "status",
    ],
)
async def test_null_in_patch_is_a_422_naming_the_field(
    client: httpx.AsyncClient, org: Org, field: str
) -> None:
    survey = await create_survey(client, org)

    response = await client.patch(
        f"/v1/surveys/{survey['id']}", json={field: None}, headers=org.admin
    )

    assert_problem(response, 422, field=field)
    unchanged = await client.get(f"/v1/surveys/{survey['id']}", headers=org.admin)
    assert unchanged.json() == survey


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"window_hours": 24}, "reminders_hours"),  # the existing 48 h reminder falls outside
        ({"reminders_hours": [120]}, "reminders_hours"),
        ({"comment_min_group_size": 4}, "comment_min_group_size"),
        ({"min_group_size": 2}, "min_group_size"),
        ({"questions": []}, "questions"),
        ({"schedule": {**SCHEDULE, "rrule": "FREQ=HOURLY"}}, "rrule"),
        ({"schedule": {**SCHEDULE, "timezone": "Europe/Atlantis"}}, "timezone"),
    ],
)
async def test_invalid_patch_is_a_422_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient, org: Org, patch: dict[str, Any], field: str
) -> None:
    survey = await create_survey(client, org)

    response = await client.patch(f"/v1/surveys/{survey['id']}", json=patch, headers=org.admin)

    assert_problem(response, 422, field=field)
    unchanged = await client.get(f"/v1/surveys/{survey['id']}", headers=org.admin)
    assert unchanged.json() == survey


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], "paused"),  # draft cannot pause
        (["active"], "draft"),
        (["active", "paused"], "draft"),
        (["archived"], "active"),
        (["active", "archived"], "paused"),
    ],
)
async def test_illegal_status_transition_is_a_422_naming_status(
    client: httpx.AsyncClient, org: Org, path: list[str], illegal: str
) -> None:
    survey = await create_survey(client, org)
    for status in path:
        moved = await client.patch(
            f"/v1/surveys/{survey['id']}", json={"status": status}, headers=org.admin
        )
        assert moved.status_code == 200, moved.text

    response = await client.patch(
        f"/v1/surveys/{survey['id']}", json={"status": illegal}, headers=org.admin
    )

    assert_problem(response, 422, field="status")
    read = await client.get(f"/v1/surveys/{survey['id']}", headers=org.admin)
    assert read.json()["status"] == (path[-1] if path else "draft")


async def test_archived_survey_cannot_change_nor_open_waves(
    client: httpx.AsyncClient, org: Org
) -> None:
    survey = await create_survey(client, org, status="active")
    archived = await client.patch(
        f"/v1/surveys/{survey['id']}", json={"status": "archived"}, headers=org.admin
    )
    assert archived.status_code == 200, archived.text
    assert archived.json()["next_opening_at"] is None

    renamed = await client.patch(
        f"/v1/surveys/{survey['id']}", json={"name": "Renamed"}, headers=org.admin
    )
    opened = await client.post(f"/v1/surveys/{survey['id']}/waves", headers=org.admin)

    assert_problem(renamed, 409)
    assert_problem(opened, 409)


# --- defaults and what is stored --------------------------------------------------------


async def test_defaults_are_filled_in_and_shown(client: httpx.AsyncClient, org: Org) -> None:
    survey = await create_survey(
        client,
        org,
        reminders_hours=[96, 48, 48],
        audience={"teams": ["Sales"]},
    )

    assert survey["status"] == "draft"
    assert survey["anonymous"] is True
    assert survey["min_group_size"] == 5  # the organization's default
    assert survey["comment_min_group_size"] == 5
    assert survey["reminders_hours"] == [48, 96]  # sorted, duplicates dropped
    assert survey["questions"][1]["scale"] == 5
    assert survey["questions"][1]["required"] is True
    assert survey["audience"] == {"teams": ["Sales"], "departments": [], "attributes": {}}
    assert survey["schedule"]["rrule"] == SCHEDULE["rrule"]
    assert survey["next_opening_at"] is None  # a draft does not open
    assert survey["created_at"]
    assert survey["updated_at"]


async def test_comment_threshold_defaults_to_at_least_the_score_threshold(
    client: httpx.AsyncClient, org: Org
) -> None:
    survey = await create_survey(client, org, min_group_size=8)

    assert (survey["min_group_size"], survey["comment_min_group_size"]) == (8, 8)

    raised = await client.patch(
        f"/v1/surveys/{survey['id']}", json={"min_group_size": 10}, headers=org.admin
    )
    assert raised.status_code == 200, raised.text
    assert (raised.json()["min_group_size"], raised.json()["comment_min_group_size"]) == (10, 10)


async def test_enps_question_without_prompt_stores_the_default_prompt_with_the_org_name(
    client: httpx.AsyncClient, org: Org
) -> None:
    survey = await create_survey(client, org)

    prompt = survey["questions"][0]["prompt"]

    assert prompt["en"] == "How likely are you to recommend Acme as a place to work?"
    assert "Acme" in prompt["ar"]
    assert "Acme" in prompt["fr"]
    assert all("{org}" not in text for text in prompt.values())


async def test_enps_question_with_its_own_prompt_keeps_it(
    client: httpx.AsyncClient, org: Org
) -> None:
    survey = await create_survey(
        client,
        org,
        questions=[{"key": "enps", "kind": "enps", "prompt": {"en": "Would you refer a friend?"}}],
    )

    assert survey["questions"][0]["prompt"] == {"en": "Would you refer a friend?"}


async def test_survey_without_schedule_has_no_openings(client: httpx.AsyncClient, org: Org) -> None:
    survey = await create_survey(client, org, schedule=None, status="active")

    preview = await client.get(f"/v1/surveys/{survey['id']}/schedule", headers=org.admin)

    assert survey["schedule"] is None
    assert survey["next_opening_at"] is None
    assert preview.status_code == 200
    assert preview.json()["openings"] == []


async def test_list_filters_by_status_and_pages(client: httpx.AsyncClient, org: Org) -> None:
    draft = await create_survey(client, org, name="Draft")
    active = [await create_survey(client, org, name=f"A{i}", status="active") for i in range(3)]

    first = await client.get(
        "/v1/surveys", params={"status": "active", "limit": 2}, headers=org.admin
    )
    second = await client.get(
        "/v1/surveys",
        params={"status": "active", "limit": 2, "cursor": first.json()["next_cursor"]},
        headers=org.admin,
    )

    names = [s["name"] for s in first.json()["items"] + second.json()["items"]]
    assert names == [s["name"] for s in active]
    assert second.json()["next_cursor"] is None
    assert draft["name"] not in names


# --- the schedule across daylight-saving changes -----------------------------------------


@pytest.mark.parametrize(
    ("zone", "starts_at", "expected"),
    [
        (
            "Europe/Berlin",  # summer time 2027-03-28 .. 2027-10-31
            "2027-03-01T00:00:00+01:00",
            [
                "2027-03-22T09:00:00+01:00",
                "2027-03-29T09:00:00+02:00",
                "2027-10-25T09:00:00+02:00",
                "2027-11-01T09:00:00+01:00",
            ],
        ),
        (
            "America/New_York",  # daylight time 2027-03-14 .. 2027-11-07
            "2027-03-01T00:00:00-05:00",
            [
                "2027-03-08T09:00:00-05:00",
                "2027-03-15T09:00:00-04:00",
                "2027-11-01T09:00:00-04:00",
                "2027-11-08T09:00:00-05:00",
            ],
        ),
    ],
)
async def test_weekly_nine_oclock_survey_opens_at_nine_local_across_dst_changes(
    client: httpx.AsyncClient, org: Org, zone: str, starts_at: str, expected: list[str]
) -> None:
    survey = await create_survey(
        client,
        org,
        status="active",
        schedule={
            "rrule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
            "timezone": zone,
            "starts_at": starts_at,
        },
    )

    response = await client.get(
        f"/v1/surveys/{survey['id']}/schedule", params={"count": 45}, headers=org.admin
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["timezone"] == zone
    openings = body["openings"]
    assert len(openings) == 45
    assert openings[0] == "2027-03-01T09:00:00" + starts_at[-6:]
    for text in openings:
        at = datetime.fromisoformat(text)
        assert (at.hour, at.minute, at.weekday()) == (9, 0, 0), text
    for opening in expected:
        assert opening in openings
    offsets = [o[-6:] for o in openings]
    assert len(set(offsets)) == 2
    assert datetime.fromisoformat(survey["next_opening_at"]) == datetime.fromisoformat(openings[0])


async def test_schedule_preview_count_is_bounded(client: httpx.AsyncClient, org: Org) -> None:
    survey = await create_survey(client, org)

    too_many = await client.get(
        f"/v1/surveys/{survey['id']}/schedule", params={"count": 101}, headers=org.admin
    )
    zero = await client.get(
        f"/v1/surveys/{survey['id']}/schedule", params={"count": 0}, headers=org.admin
    )

    assert_problem(too_many, 422, field="count")
    assert_problem(zero, 422, field="count")


async def test_schedule_change_moves_the_next_opening(client: httpx.AsyncClient, org: Org) -> None:
    survey = await create_survey(client, org, status="active")
    assert survey["next_opening_at"] is not None
    assert datetime.fromisoformat(survey["next_opening_at"]) == datetime.fromisoformat(
        "2027-01-04T09:00:00+01:00"
    )

    moved = await client.patch(
        f"/v1/surveys/{survey['id']}",
        json={
            "schedule": {
                "rrule": "FREQ=WEEKLY;BYDAY=WE;BYHOUR=14;BYMINUTE=30",
                "timezone": "Africa/Cairo",
                "starts_at": "2027-02-01T00:00:00+02:00",
            }
        },
        headers=org.admin,
    )
    paused = await client.patch(
        f"/v1/surveys/{survey['id']}", json={"status": "paused"}, headers=org.admin
    )

    assert moved.status_code == 200, moved.text
    assert datetime.fromisoformat(moved.json()["next_opening_at"]) == datetime.fromisoformat(
        "2027-02-03T14:30:00+02:00"
    )
    assert paused.json()["next_opening_at"] is None


# --- waves -----------------------------------------------------------------------------


async def test_wave_invites_exactly_the_active_audience(
    client: httpx.AsyncClient, org: Org, other_org: Org, db: Database
) -> None:
    def person(email: str, **fields: Any) -> Any:
        return create_employee(client, org, email=email, **fields)

    cairo = {"location": "Cairo"}
    yes1 = await person("amira@example.com", team="Sales", attributes=cairo)
    yes2 = await person("omar@example.com", team="Support", attributes=cairo)
    await person("lena@example.com", team="Sales", attributes={"location": "Berlin"})
    await person("noor@example.com", team="Finance", attributes=cairo)
    await person("sami@example.com", team="Sales")  # no location attribute
    gone = await person("ex@example.com", team="Sales", attributes=cairo)
    deleted = await client.delete(f"/v1/employees/{gone['id']}", headers=org.admin)
    assert deleted.status_code in (200, 204), deleted.text
    await create_employee(
        client, other_org, email="amira@example.com", team="Sales", attributes=cairo
    )
    survey = await create_survey(
        client, org, audience={"teams": ["Sales", "Support"], "attributes": cairo}
    )

    wave = await open_wave(client, org, survey["id"])

    assert await invited_employees(db, wave["id"]) == {yes1["id"], yes2["id"]}
    assert wave["invited"] == 2
    assert (wave["responded"], wave["response_rate"]) == (0, 0.0)
    assert wave["status"] == "open"
    assert wave["survey_id"] == survey["id"]
    assert wave["deliveries"] == {"queued": 2, "sent": 0, "failed": 0, "cancelled": 0}
    opens, closes = (datetime.fromisoformat(wave[k]) for k in ("opens_at", "closes_at"))
    assert (closes - opens).total_seconds() == 120 * 3600


async def test_department_filter_and_empty_audience(
    client: httpx.AsyncClient, org: Org, db: Database
) -> None:
    ops = await create_employee(client, org, email="a@example.com", department="Operations")
    await create_employee(client, org, email="b@example.com", department="Research")
    everyone = await create_survey(client, org, name="Everyone")
    operations = await create_survey(
        client, org, name="Ops", audience={"departments": ["Operations"]}
    )
    nobody = await create_survey(client, org, name="Nobody", audience={"teams": ["Nobody"]})

    all_wave = await open_wave(client, org, everyone["id"])
    ops_wave = await open_wave(client, org, operations["id"])
    empty_wave = await open_wave(client, org, nobody["id"])

    assert all_wave["invited"] == 2
    assert await invited_employees(db, ops_wave["id"]) == {ops["id"]}
    assert (empty_wave["invited"], empty_wave["response_rate"]) == (0, None)


async def test_wave_freezes_its_questions(
    client: httpx.AsyncClient, org: Org, db: Database
) -> None:
    await create_employee(client, org, email="a@example.com")
    survey = await create_survey(client, org)
    first = await open_wave(client, org, survey["id"])

    changed = await client.patch(
        f"/v1/surveys/{survey['id']}",
        json={
            "questions": [{"key": "mood", "kind": "yes_no", "prompt": "Good week?"}],
            "anonymous": False,
        },
        headers=org.admin,
    )
    assert changed.status_code == 200, changed.text
    second = await open_wave(client, org, survey["id"])

    async with db.sessionmaker() as session:
        waves = {
            str(w.id): w
            for w in (
                await session.execute(select(Wave).where(Wave.survey_id == uuid.UUID(survey["id"])))
            ).scalars()
        }
    assert [q["key"] for q in waves[first["id"]].questions] == ["enps", "workload", "comment"]
    assert waves[first["id"]].questions == survey["questions"]
    assert waves[first["id"]].anonymous is True
    assert [q["key"] for q in waves[second["id"]].questions] == ["mood"]
    assert waves[second["id"]].anonymous is False


async def test_wave_counts_responses_and_closes_early(
    client: httpx.AsyncClient, org: Org, db: Database
) -> None:
    people = [await create_employee(client, org, email=f"p{i}@example.com") for i in range(3)]
    survey = await create_survey(client, org)
    wave = await open_wave(client, org, survey["id"])

    await mark_answered(db, wave["id"], people[0]["id"])
    counted = await get_wave(client, org, wave["id"])
    closed = await client.post(f"/v1/waves/{wave['id']}/close", headers=org.admin)
    again = await client.post(f"/v1/waves/{wave['id']}/close", headers=org.admin)

    assert (counted["invited"], counted["responded"], counted["response_rate"]) == (3, 1, 0.333)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert closed.json()["closed_at"] is not None
    assert again.status_code == 200
    assert again.json()["closed_at"] == closed.json()["closed_at"]  # closing twice is a no-op
    assert (await get_wave(client, org, wave["id"]))["status"] == "closed"


async def test_survey_waves_are_listed_oldest_first_and_paged(
    client: httpx.AsyncClient, org: Org
) -> None:
    survey = await create_survey(client, org)
    other = await create_survey(client, org, name="Other")
    opened = [await open_wave(client, org, survey["id"]) for _ in range(3)]
    await open_wave(client, org, other["id"])

    first = await client.get(
        f"/v1/surveys/{survey['id']}/waves", params={"limit": 2}, headers=org.admin
    )
    rest = await client.get(
        f"/v1/surveys/{survey['id']}/waves",
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=org.admin,
    )

    listed = first.json()["items"] + rest.json()["items"]
    assert [w["id"] for w in listed] == [w["id"] for w in opened]
    assert rest.json()["next_cursor"] is None


async def test_survey_and_wave_rows_stay_consistent_with_the_api(
    client: httpx.AsyncClient, org: Org, db: Database
) -> None:
    survey = await create_survey(client, org, status="active")
    async with db.sessionmaker() as session:
        row = await session.get(Survey, uuid.UUID(survey["id"]))
        assert row is not None
        assert row.organization_id == org.id
        assert row.next_opening_at == datetime.fromisoformat(survey["next_opening_at"])


# --- scope and tenancy on every endpoint -------------------------------------------------


def _endpoints(survey_id: str, wave_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/v1/surveys/{survey_id}", None),
        ("PATCH", f"/v1/surveys/{survey_id}", {"name": "Taken over"}),
        ("GET", f"/v1/surveys/{survey_id}/schedule", None),
        ("POST", f"/v1/surveys/{survey_id}/waves", None),
        ("GET", f"/v1/surveys/{survey_id}/waves", None),
        ("GET", f"/v1/waves/{wave_id}", None),
        ("POST", f"/v1/waves/{wave_id}/close", None),
    ]


async def test_reports_key_is_forbidden_on_every_survey_and_wave_endpoint(
    client: httpx.AsyncClient, org: Org
) -> None:
    survey = await create_survey(client, org)
    wave = await open_wave(client, org, survey["id"])
    calls = [
        ("GET", "/v1/surveys", None),
        ("POST", "/v1/surveys", survey_body()),
        *_endpoints(survey["id"], wave["id"]),
    ]

    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=org.reports)
        assert_problem(response, 403)

    assert (await get_wave(client, org, wave["id"]))["status"] == "open"
    listed = await client.get(f"/v1/surveys/{survey['id']}/waves", headers=org.admin)
    assert len(listed.json()["items"]) == 1


async def test_other_organizations_surveys_and_waves_answer_404(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    survey = await create_survey(client, org)
    wave = await open_wave(client, org, survey["id"])

    for method, path, body in _endpoints(survey["id"], wave["id"]):
        response = await client.request(method, path, json=body, headers=other_org.admin)
        assert_problem(response, 404)
    for method, path, body in _endpoints(str(uuid.uuid4()), str(uuid.uuid4())):
        response = await client.request(method, path, json=body, headers=org.admin)
        assert_problem(response, 404)

    theirs = await client.get("/v1/surveys", headers=other_org.admin)
    assert theirs.json()["items"] == []
    read = await client.get(f"/v1/surveys/{survey['id']}", headers=org.admin)
    assert read.json() == survey
    assert (await get_wave(client, org, wave["id"]))["status"] == "open"
    listed = await client.get(f"/v1/surveys/{survey['id']}/waves", headers=org.admin)
    assert len(listed.json()["items"]) == 1


async def test_without_a_key_every_endpoint_is_401(client: httpx.AsyncClient, org: Org) -> None:
    survey = await create_survey(client, org)
    wave = await open_wave(client, org, survey["id"])

    for method, path, body in [("GET", "/v1/surveys", None), *_endpoints(survey["id"], wave["id"])]:
        response = await client.request(method, path, json=body)
        assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
