"""Recurrence in the owner's time zone: RFC 5545 §3.3.5 at daylight-saving changes, the
rules we refuse, and the latest-missed-occurrence helper the worker relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.scheduling.recurrence import (
    check_rule,
    latest_between,
    localize,
    occurrences_after,
    parse_rule,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def _local(at: datetime, zone: str) -> str:
    """An aware time as the local wall clock and offset, e.g. ``2027-03-28 03:30 +0200``."""
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %z")


# --- the gap and the repeated hour (RFC 5545 §3.3.5) ------------------------------------


@pytest.mark.parametrize(
    ("zone", "local", "expected"),
    [
        # Berlin springs forward from 02:00 to 03:00 on 2027-03-28: 02:30 does not exist.
        (BERLIN, datetime(2027, 3, 28, 2, 30), "2027-03-28 03:30 +0200"),
        # New York springs forward from 02:00 to 03:00 on 2027-03-14.
        (NEW_YORK, datetime(2027, 3, 14, 2, 30), "2027-03-14 03:30 -0400"),
    ],
)
def test_time_in_the_spring_gap_moves_forward_by_the_gap(
    zone: str, local: datetime, expected: str
) -> None:
    assert _local(localize(local, zone), zone) == expected


@pytest.mark.parametrize(
    ("zone", "local", "expected_utc"),
    [
        # Berlin falls back from 03:00 to 02:00 on 2027-10-31: 02:30 happens twice.
        (BERLIN, datetime(2027, 10, 31, 2, 30), datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),
        # New York falls back from 02:00 to 01:00 on 2027-11-07: 01:30 happens twice.
        (NEW_YORK, datetime(2027, 11, 7, 1, 30), datetime(2027, 11, 7, 5, 30, tzinfo=UTC)),
    ],
)
def test_ambiguous_time_in_the_autumn_takes_its_first_occurrence(
    zone: str, local: datetime, expected_utc: datetime
) -> None:
    at = localize(local, zone)

    # Compared in UTC: PEP 495 makes an ambiguous time never equal to one in another zone.
    assert at.astimezone(UTC) == expected_utc
    assert at.fold == 0
    # The second 02:30 (or 01:30) is the same wall time an hour later, with fold=1.
    second = (at.astimezone(UTC) + timedelta(hours=1)).astimezone(ZoneInfo(zone))
    assert (second.replace(tzinfo=None), second.fold) == (local, 1)


def test_daily_rule_at_a_gap_time_fires_once_that_day_an_hour_later() -> None:
    start = datetime(2027, 3, 26, 2, 30, tzinfo=ZoneInfo(BERLIN))

    got = occurrences_after("FREQ=DAILY", start, BERLIN, start - timedelta(microseconds=1), 4)

    assert [_local(at, BERLIN) for at in got] == [
        "2027-03-26 02:30 +0100",
        "2027-03-27 02:30 +0100",
        "2027-03-28 03:30 +0200",  # the gap day: moved forward by the gap's length
        "2027-03-29 02:30 +0200",
    ]


def test_daily_rule_at_an_ambiguous_time_fires_once_that_day_at_the_first_one() -> None:
    start = datetime(2027, 10, 30, 2, 30, tzinfo=ZoneInfo(BERLIN))

    got = occurrences_after("FREQ=DAILY", start, BERLIN, start - timedelta(microseconds=1), 3)

    assert [_local(at, BERLIN) for at in got] == [
        "2027-10-30 02:30 +0200",
        "2027-10-31 02:30 +0200",  # the first of the two 02:30s, and only one
        "2027-11-01 02:30 +0100",
    ]
    assert len({at.astimezone(UTC) for at in got}) == 3


@pytest.mark.parametrize(
    ("zone", "start", "summer", "winter"),
    [
        (BERLIN, "2027-03-01T00:00:00+01:00", "+0200", "+0100"),
        (NEW_YORK, "2027-03-01T00:00:00-05:00", "-0400", "-0500"),
    ],
)
def test_weekly_nine_oclock_stays_nine_oclock_across_both_changes(
    zone: str, start: str, summer: str, winter: str
) -> None:
    starts_at = datetime.fromisoformat(start)

    got = occurrences_after(
        "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0", starts_at, zone, starts_at, 45
    )

    local = [at.astimezone(ZoneInfo(zone)) for at in got]
    assert all((t.hour, t.minute, t.weekday()) == (9, 0, 0) for t in local)
    offsets = [t.strftime("%z") for t in local]
    # winter, then summer, then winter again: each change happens exactly once
    changes = [i for i in range(1, len(offsets)) if offsets[i] != offsets[i - 1]]
    assert offsets[0] == winter
    assert len(changes) == 2
    assert offsets[changes[0]] == summer
    assert offsets[changes[1]] == winter


# --- what a worker that was down opens ------------------------------------------------


def test_latest_between_is_the_last_occurrence_in_the_half_open_range() -> None:
    starts_at = datetime(2027, 1, 1, tzinfo=UTC)
    rule = "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"

    latest = latest_between(
        rule,
        starts_at,
        "UTC",
        datetime(2027, 1, 3, 9, tzinfo=UTC),
        datetime(2027, 1, 10, 12, tzinfo=UTC),
    )
    at_bound = latest_between(
        rule,
        starts_at,
        "UTC",
        datetime(2027, 1, 3, tzinfo=UTC),
        datetime(2027, 1, 10, 9, tzinfo=UTC),
    )
    none = latest_between(
        rule,
        starts_at,
        "UTC",
        datetime(2027, 1, 3, 9, tzinfo=UTC),
        datetime(2027, 1, 4, 8, tzinfo=UTC),
    )

    assert latest == datetime(2027, 1, 10, 9, tzinfo=UTC)
    assert at_bound == datetime(2027, 1, 10, 9, tzinfo=UTC)  # ``until`` is included
    assert none is None  # ``after`` itself is excluded


def test_latest_between_respects_the_rules_end() -> None:
    starts_at = datetime(2027, 1, 4, 9, tzinfo=UTC)

    latest = latest_between(
        "FREQ=WEEKLY;COUNT=3",
        starts_at,
        "UTC",
        starts_at - timedelta(days=1),
        datetime(2028, 1, 1, tzinfo=UTC),
    )

    assert latest == datetime(2027, 1, 18, 9, tzinfo=UTC)


# --- rules we refuse, and rules we accept -----------------------------------------------


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("FREQ=HOURLY", "at most daily"),
        ("FREQ=MINUTELY;INTERVAL=30", "at most daily"),
        ("FREQ=DAILY;BYHOUR=9,17", "one time of day"),
        ("FREQ=DAILY;BYHOUR=9;BYMINUTE=0,30", "one time of day"),
        ("FREQ=WEEKLY;INTERVAL=0", "INTERVAL"),
        ("FREQ=SOMETIMES", "not a valid RRULE"),
        ("FREQ=WEEKLY;BYDAY=XX", "not a valid RRULE"),
        ("", "one RRULE line"),
        ("DTSTART:20270101T090000\nRRULE:FREQ=DAILY", "one RRULE line"),
    ],
)
def test_rules_we_will_not_run_are_refused_with_a_reason(rule: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_rule(rule, datetime(2027, 1, 1, tzinfo=UTC), BERLIN)


@pytest.mark.parametrize("rule", ["FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "FREQ=WEEKLY;COUNT=0"])
def test_a_rule_that_never_occurs_is_refused(rule: str) -> None:
    with pytest.raises(ValueError, match="no occurrence"):
        check_rule(rule, datetime(2027, 1, 1, tzinfo=UTC), BERLIN)


def test_until_in_utc_is_accepted_and_bounds_the_rule_inclusively() -> None:
    # RFC 5545 §3.3.10: with a zoned DTSTART, UNTIL is written in UTC. 09:00 Berlin on
    # 2027-01-25 is 08:00Z, so an UNTIL of exactly 08:00Z keeps that occurrence.
    starts_at = datetime(2027, 1, 4, 9, tzinfo=ZoneInfo(BERLIN))
    rule = "RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20270125T080000Z"

    check_rule(rule, starts_at, BERLIN)
    got = occurrences_after(rule, starts_at, BERLIN, starts_at - timedelta(seconds=1), 10)

    assert [_local(at, BERLIN) for at in got] == [
        "2027-01-04 09:00 +0100",
        "2027-01-11 09:00 +0100",
        "2027-01-18 09:00 +0100",
        "2027-01-25 09:00 +0100",
    ]


def test_rule_without_a_time_takes_the_time_of_day_of_its_start() -> None:
    starts_at = datetime.fromisoformat("2027-01-04T10:15:00+01:00")

    got = occurrences_after("FREQ=WEEKLY", starts_at, BERLIN, starts_at, 2)

    assert [_local(at, BERLIN) for at in got] == [
        "2027-01-11 10:15 +0100",
        "2027-01-18 10:15 +0100",
    ]


@pytest.mark.parametrize(
    "rule",
    ["FREQ=DAILY;BYMONTH=2;BYMONTHDAY=31;BYHOUR=9", "FREQ=YEARLY;BYMONTH=4,6;BYMONTHDAY=-31"],
)
def test_a_day_no_listed_month_has_is_refused_at_once(rule: str) -> None:
    """dateutil would search such a rule until the year 9999 (seconds inside a request)."""
    with pytest.raises(ValueError, match="no occurrence"):
        check_rule(rule, datetime(2027, 1, 1, tzinfo=UTC), "Europe/Berlin")
