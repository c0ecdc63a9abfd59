"""The RRULE values RFC 5545 allows, and the bounded search for a rule's first occurrence:
both API users of the recurrence module (surveys and one-on-ones) answer 422 naming the
rrule for a value out of range or a rule that never fires, never a 500 or a rule that
quietly means something else. DST behaviour is in tests/surveys/test_recurrence.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from dateutil.rrule import rrulestr
from sqlalchemy import update

from app.checkins.models import CheckinSeries
from app.core.config import Settings
from app.core.db import Database
from app.scheduling import recurrence
from app.scheduling.recurrence import check_rule, localize, parse_rule
from app.surveys import waves
from app.surveys.models import Survey
from tests.conftest import Org
from tests.employees.helpers import assert_problem, create_employee

BERLIN = "Europe/Berlin"
START = datetime(2027, 1, 4, 9, tzinfo=ZoneInfo(BERLIN))  # a Monday

# (rule, what the reason must say): each was a 500, or was accepted and meant something
# other than what it says.
OUT_OF_RANGE = [
    ("FREQ=YEARLY;BYMONTH=0", "BYMONTH must be 1 to 12, not 0"),
    ("FREQ=YEARLY;BYMONTH=-1", "BYMONTH must be 1 to 12, not -1"),
    ("FREQ=YEARLY;BYMONTH=13", "BYMONTH must be 1 to 12, not 13"),
    ("FREQ=YEARLY;BYMONTH=13;BYMONTHDAY=1", "BYMONTH"),
    ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY must be 1 to 31, or -31 to -1, not 0"),
    ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY"),
    ("FREQ=MONTHLY;BYMONTHDAY=-32", "BYMONTHDAY"),
    ("FREQ=YEARLY;BYYEARDAY=0", "BYYEARDAY"),
    ("FREQ=DAILY;BYYEARDAY=400", "BYYEARDAY must be 1 to 366, or -366 to -1, not 400"),
    ("FREQ=YEARLY;BYWEEKNO=0", "BYWEEKNO"),
    ("FREQ=YEARLY;BYWEEKNO=54", "BYWEEKNO"),
    ("FREQ=YEARLY;BYWEEKNO=-54", "BYWEEKNO"),
    ("FREQ=DAILY;BYHOUR=24", "BYHOUR must be 0 to 23, not 24"),
    ("FREQ=DAILY;BYHOUR=-1", "BYHOUR"),
    ("FREQ=DAILY;BYMINUTE=60", "BYMINUTE must be 0 to 59, not 60"),
    ("FREQ=DAILY;BYSECOND=61", "BYSECOND"),
    ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=0", "BYSETPOS"),
    ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=367", "BYSETPOS"),
    ("FREQ=MONTHLY;BYMONTHDAY=one", "BYMONTHDAY takes whole numbers"),
    ("FREQ=WEEKLY;BYDAY=+9MO", "BYDAY=+9MO: a numbered weekday needs FREQ=MONTHLY or"),
    ("FREQ=DAILY;BYDAY=1MO", "a numbered weekday needs FREQ=MONTHLY"),
    ("FREQ=MONTHLY;BYDAY=6MO", "BYDAY=6MO: the number must be 1 to 5, or -5 to -1"),
    ("FREQ=MONTHLY;BYDAY=-6FR", "BYDAY=-6FR"),
    ("FREQ=MONTHLY;BYDAY=0MO", "BYDAY=0MO"),
    ("FREQ=YEARLY;BYDAY=54MO", "BYDAY=54MO: the number must be 1 to 53, or -53 to -1"),
    ("FREQ=YEARLY;BYWEEKNO=10;BYDAY=1MO", "cannot be combined with BYWEEKNO"),
    ("FREQ=YEARLY;BYEASTER=0", "BYEASTER is not an RFC 5545 rule part"),
    ("FREQ=WEEKLY;BYWEEKDAY=+9MO", "BYWEEKDAY is not an RFC 5545 rule part"),
]


@pytest.mark.parametrize(("rule", "reason"), OUT_OF_RANGE)
def test_values_outside_rfc_5545_ranges_are_refused_with_a_reason(rule: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("+", r"\+")):
        check_rule(rule, START, BERLIN)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=YEARLY;BYMONTH=1,12;BYMONTHDAY=1",
        "FREQ=MONTHLY;BYMONTHDAY=-31",
        "FREQ=MONTHLY;BYMONTHDAY=31",
        "FREQ=YEARLY;BYYEARDAY=-366",
        "FREQ=YEARLY;BYYEARDAY=366",
        "FREQ=YEARLY;BYWEEKNO=53;BYDAY=MO",
        "FREQ=YEARLY;BYWEEKNO=-53;BYDAY=MO",
        "FREQ=DAILY;BYHOUR=0;BYMINUTE=59;BYSECOND=59",
        "FREQ=DAILY;BYHOUR=23;BYMINUTE=0;BYSECOND=0",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=MONTHLY;BYDAY=-5FR",
        "FREQ=MONTHLY;BYDAY=+5MO",
        "FREQ=YEARLY;BYDAY=53MO",
        "FREQ=YEARLY;BYDAY=-53SU",
        "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "RRULE:freq=monthly;byday=1mo",
    ],
)
def test_values_at_the_edges_of_the_ranges_are_accepted(rule: str) -> None:
    parse_rule(rule, START, BERLIN)


# --- a first occurrence, searched within bounds -------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;BYSETPOS=2",  # one time a day: a set of one has no second
        "FREQ=DAILY;BYSETPOS=-2",
        "FREQ=DAILY;BYYEARDAY=366;BYMONTH=1",
        "FREQ=DAILY;INTERVAL=7;BYDAY=TU",  # every 7th day from a Monday is a Monday
        "FREQ=WEEKLY;BYDAY=MO,TU;BYSETPOS=3",
        "FREQ=YEARLY;BYWEEKNO=1;BYMONTH=7",
        "FREQ=MONTHLY;BYDAY=MO;BYMONTHDAY=1;BYSETPOS=2",
    ],
)
def test_a_rule_that_never_fires_is_refused(rule: str) -> None:
    """Each of these used to keep dateutil searching until the year 9999."""
    with pytest.raises(ValueError, match="no occurrence in the 30 years after starts_at"):
        check_rule(rule, START, BERLIN)


def test_a_rule_first_firing_more_than_30_years_on_is_refused() -> None:
    # 29 February falls on a Monday in 2072, then (2100 being no leap year) in 2112.
    rule = "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=9;BYMINUTE=0"

    first = check_rule(rule, datetime(2045, 1, 1, tzinfo=UTC), BERLIN)
    with pytest.raises(ValueError, match="no occurrence in the 30 years"):
        check_rule(rule, datetime(2073, 1, 1, tzinfo=UTC), BERLIN)

    assert first == datetime(2072, 2, 29, 9, tzinfo=ZoneInfo(BERLIN))


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9;BYMINUTE=0",
        "FREQ=WEEKLY;INTERVAL=3;BYDAY=FR",
        "FREQ=DAILY;INTERVAL=5",
        "FREQ=YEARLY;BYWEEKNO=53;BYDAY=TH",
        "FREQ=YEARLY;BYWEEKNO=-1;BYDAY=MO;WKST=SU",
        "FREQ=YEARLY;BYYEARDAY=366",
        "FREQ=YEARLY;BYDAY=53FR",
        "FREQ=MONTHLY;BYDAY=5SU",
        "FREQ=MONTHLY;INTERVAL=7;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=YEARLY;INTERVAL=3;BYMONTH=2;BYMONTHDAY=29",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=SU",
        "FREQ=WEEKLY;COUNT=3;BYDAY=SA",
    ],
)
@pytest.mark.parametrize(
    "start",
    [
        datetime(2027, 1, 4, 9),
        datetime(2028, 2, 29, 7, 30),  # a start that exists in leap years only
        datetime(2031, 12, 31, 18),
        datetime(2085, 6, 15, 12),  # the window holds 2100, which is no leap year
        datetime(2099, 3, 1, 8),
    ],
)
def test_the_bounded_search_finds_the_same_first_occurrence_as_an_unbounded_one(
    rule: str, start: datetime
) -> None:
    """The search runs on a twin run of years near 9999; it must land on the same day."""
    unbounded = next(iter(rrulestr(rule, dtstart=start)))
    assert unbounded - start < timedelta(days=30 * 365)  # the case is inside the window

    assert check_rule(rule, localize(start, BERLIN), BERLIN) == localize(unbounded, BERLIN)


def test_until_inside_the_window_still_ends_the_rule() -> None:
    rule = "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;UNTIL=20270301T000000Z"

    with pytest.raises(ValueError, match="no occurrence"):
        check_rule(rule, START, BERLIN)  # the next 29 February is in 2028
    assert check_rule(rule.replace("2027", "2028"), START, BERLIN) == datetime(
        2028, 2, 29, 9, tzinfo=ZoneInfo(BERLIN)
    )


# --- what the API answers ----------------------------------------------------------------

HTTP_CASES = [
    "FREQ=YEARLY;BYMONTH=0",
    "FREQ=YEARLY;BYMONTH=-1",
    "FREQ=YEARLY;BYMONTH=13",
    "FREQ=MONTHLY;BYMONTHDAY=0",
    "FREQ=WEEKLY;BYDAY=+9MO",
    "FREQ=DAILY;BYSETPOS=2",
]


def _survey(rrule: str) -> dict[str, Any]:
    return {
        "name": "Pulse",
        "questions": [{"key": "enps", "kind": "enps"}],
        "schedule": {"rrule": rrule, "timezone": BERLIN, "starts_at": START.isoformat()},
    }


@pytest.mark.parametrize("rrule", HTTP_CASES)
async def test_survey_with_such_a_rule_is_a_422_naming_the_rrule(
    client: httpx.AsyncClient, org: Org, rrule: str
) -> None:
    created = await client.post("/v1/surveys", json=_survey("FREQ=WEEKLY"), headers=org.admin)
    assert created.status_code == 201, created.text

    posted = await client.post("/v1/surveys", json=_survey(rrule), headers=org.admin)
    patched = await client.patch(
        f"/v1/surveys/{created.json()['id']}",
        json={"schedule": _survey(rrule)["schedule"]},
        headers=org.admin,
    )

    assert_problem(posted, 422, field="rrule")
    assert_problem(patched, 422, field="rrule")


async def _weekly_series(
    client: httpx.AsyncClient, org: Org
) -> tuple[dict[str, Any], httpx.Response]:
    """A valid weekly one-on-one between two new employees: its body and the POST's answer."""
    manager = await create_employee(client, org, email="maya@acme.test", name="Maya")
    report = await create_employee(client, org, email="bo@acme.test", name="Bo")
    body = {
        "manager_id": manager["id"],
        "employee_id": report["id"],
        "rrule": "FREQ=WEEKLY;BYHOUR=10;BYMINUTE=0",
        "timezone": BERLIN,
        "starts_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
    }
    return body, await client.post("/v1/checkins", json=body, headers=org.admin)


@pytest.mark.parametrize("rrule", HTTP_CASES)
async def test_checkin_series_with_such_a_rule_is_a_422_naming_the_rrule(
    client: httpx.AsyncClient, org: Org, rrule: str
) -> None:
    body, created = await _weekly_series(client, org)
    assert created.status_code == 201, created.text

    posted = await client.post("/v1/checkins", json={**body, "rrule": rrule}, headers=org.admin)
    patched = await client.patch(
        f"/v1/checkins/{created.json()['id']}", json={"rrule": rrule}, headers=org.admin
    )

    assert_problem(posted, 422, field="rrule")
    assert_problem(patched, 422, field="rrule")


# A rule an earlier release stored (dateutil ignores the 1 of a weekly BYDAY=1MO): new
# rules like it are refused, but a stored one must keep being shown, changed and run.
LEGACY_RULE = "FREQ=WEEKLY;BYDAY=1MO;BYHOUR=9"


async def test_a_rule_stored_under_looser_checks_is_still_shown_changed_and_run(
    client: httpx.AsyncClient, org: Org, db: Database, settings: Settings
) -> None:
    await create_employee(client, org, email="ana@acme.test", name="Ana")
    created = await client.post("/v1/surveys", json=_survey("FREQ=WEEKLY"), headers=org.admin)
    survey_id = created.json()["id"]
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Survey)
            .where(Survey.id == uuid.UUID(survey_id))
            .values(rrule=LEGACY_RULE, starts_at=datetime.now(UTC) - timedelta(days=8))
        )
    assert_problem(
        await client.post("/v1/surveys", json=_survey(LEGACY_RULE), headers=org.admin),
        422,
        field="rrule",
    )

    one = await client.get(f"/v1/surveys/{survey_id}", headers=org.admin)
    listed = await client.get("/v1/surveys", headers=org.admin)
    preview = await client.get(f"/v1/surveys/{survey_id}/schedule?count=2", headers=org.admin)
    activated = await client.patch(
        f"/v1/surveys/{survey_id}", json={"status": "active"}, headers=org.admin
    )

    assert one.status_code == 200, one.text
    assert one.json()["schedule"]["rrule"] == LEGACY_RULE
    assert listed.status_code == 200, listed.text
    assert [o[:10] for o in preview.json()["openings"]] == sorted(
        {o[:10] for o in preview.json()["openings"]}
    )
    assert all(datetime.fromisoformat(o).weekday() == 0 for o in preview.json()["openings"]), (
        "runs every Monday, as it did"
    )
    assert activated.status_code == 200, activated.text
    next_opening = datetime.fromisoformat(activated.json()["next_opening_at"])
    assert next_opening.weekday() == 0
    # The worker opens it when it comes due: as if it had been due since last Monday.
    now = datetime.now(UTC)
    starts_at = now - timedelta(days=30)
    last_monday = recurrence.latest_between(
        LEGACY_RULE, starts_at, BERLIN, now - timedelta(days=7), now
    )
    assert last_monday is not None
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Survey)
            .where(Survey.id == uuid.UUID(survey_id))
            .values(starts_at=starts_at, next_opening_at=last_monday, window_hours=168)
        )
    assert await waves.open_due_waves(db, settings) == 1


async def test_a_check_in_series_with_a_looser_stored_rule_can_still_change_other_fields(
    client: httpx.AsyncClient, org: Org, db: Database
) -> None:
    _, created = await _weekly_series(client, org)
    series_id = created.json()["id"]
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(CheckinSeries)
            .where(CheckinSeries.id == uuid.UUID(series_id))
            .values(rrule=LEGACY_RULE)
        )

    lead = await client.patch(
        f"/v1/checkins/{series_id}", json={"checkin_lead_hours": 12}, headers=org.admin
    )
    rule = await client.patch(
        f"/v1/checkins/{series_id}", json={"rrule": LEGACY_RULE}, headers=org.admin
    )

    assert lead.status_code == 200, lead.text
    assert_problem(rule, 422, field="rrule")


async def test_a_start_at_the_end_of_the_calendar_is_a_422_not_a_500(
    client: httpx.AsyncClient, org: Org
) -> None:
    """Converting the first local occurrence back to UTC overflows year 9999."""
    schedule = {
        "rrule": "FREQ=DAILY;BYHOUR=23",
        "timezone": "America/New_York",
        "starts_at": "9999-12-31T20:00:00+00:00",
    }
    survey = await client.post(
        "/v1/surveys", json={**_survey("FREQ=DAILY"), "schedule": schedule}, headers=org.admin
    )
    manager = await create_employee(client, org, email="maya@acme.test", name="Maya")
    report = await create_employee(client, org, email="bo@acme.test", name="Bo")
    series = await client.post(
        "/v1/checkins",
        json={"manager_id": manager["id"], "employee_id": report["id"], **schedule},
        headers=org.admin,
    )

    assert survey.status_code == 422, survey.text
    assert series.status_code == 422, series.text
