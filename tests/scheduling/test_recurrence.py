"""The RRULE values RFC 5545 allows, and the bounded search for a rule's first occurrence:
both API users of the recurrence module (surveys and one-on-ones) answer 422 naming the
rrule for a value out of range or a rule that never fires, never a 500 or a rule that
quietly means something else. DST behaviour is in tests/surveys/test_recurrence.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from dateutil.rrule import rrulestr

from app.scheduling.recurrence import check_rule, localize, parse_rule
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
        parse_rule(rule, START, BERLIN)


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


@pytest.mark.parametrize("rrule", HTTP_CASES)
async def test_checkin_series_with_such_a_rule_is_a_422_naming_the_rrule(
    client: httpx.AsyncClient, org: Org, rrule: str
) -> None:
    manager = await create_employee(client, org, email="maya@acme.test", name="Maya")
    report = await create_employee(client, org, email="bo@acme.test", name="Bo")
    body = {
        "manager_id": manager["id"],
        "employee_id": report["id"],
        "rrule": "FREQ=WEEKLY;BYHOUR=10;BYMINUTE=0",
        "timezone": BERLIN,
        "starts_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
    }
    created = await client.post("/v1/checkins", json=body, headers=org.admin)
    assert created.status_code == 201, created.text

    posted = await client.post("/v1/checkins", json={**body, "rrule": rrule}, headers=org.admin)
    patched = await client.patch(
        f"/v1/checkins/{created.json()['id']}", json={"rrule": rrule}, headers=org.admin
    )

    assert_problem(posted, 422, field="rrule")
    assert_problem(patched, 422, field="rrule")
