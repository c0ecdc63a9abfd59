"""Recurrence: RFC 5545 RRULEs evaluated in the owner's IANA time zone.

The rule runs on local wall-clock times (dateutil), and each local time is then placed in
the zone with ``fold=0``: a time in the spring-forward gap gets the offset from before
the gap, which moves it forward by the gap's length, and a time in the repeated autumn
hour takes its first occurrence, as RFC 5545 §3.3.5 says. So "09:00 Europe/Berlin" stays
09:00 on both sides of a daylight-saving change."""

from __future__ import annotations

import calendar
import re
from datetime import MAXYEAR, UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from dateutil.rrule import DAILY, rrule, rrulestr

# More often than daily would be a survey (or a meeting) spamming people.
MIN_FREQUENCY = DAILY

# RFC 5545 §3.3.10: with a DTSTART in a time zone, UNTIL must be given in UTC ("Z").
_UTC_UNTIL = re.compile(r"(UNTIL=)(\d{8}T\d{6})Z", re.IGNORECASE)


def _until_in_local_time(text: str, timezone: str) -> str:
    """Rewrite a UTC ``UNTIL`` as the local wall time it denotes: the rule runs on naive
    local times, and dateutil refuses to compare an aware UNTIL with a naive start."""

    def local(match: re.Match[str]) -> str:
        at = datetime.strptime(match.group(2), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return match.group(1) + at.astimezone(ZoneInfo(timezone)).strftime("%Y%m%dT%H%M%S")

    return _UTC_UNTIL.sub(local, text)


def _naive_local(at: datetime, timezone: str) -> datetime:
    return at.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def _rule_text(text: str) -> str:
    """The rule's parts, without surrounding space or an ``RRULE:`` prefix."""
    cleaned = text.strip()
    return cleaned[6:] if cleaned.upper().startswith("RRULE:") else cleaned


def parse_rule(text: str, starts_at: datetime, timezone: str) -> rrule:
    """The rule anchored at ``starts_at`` in local time; ValueError with a readable
    reason for a rule we will not run."""
    cleaned = _rule_text(text)
    if not cleaned or "\n" in cleaned or "DTSTART" in cleaned.upper():
        raise ValueError("give one RRULE line without DTSTART, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9")
    try:
        rule = rrulestr(
            _until_in_local_time(cleaned, timezone), dtstart=_naive_local(starts_at, timezone)
        )
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"not a valid RRULE: {exc}") from exc
    if not isinstance(rule, rrule):
        raise ValueError("give a single RRULE")
    if getattr(rule, "_freq", MIN_FREQUENCY) > MIN_FREQUENCY:  # YEARLY=0 … DAILY=3, HOURLY=4 …
        raise ValueError(
            "the rule may repeat at most daily (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY)"
        )
    # BYHOUR=9,17 (or several minutes or seconds) would fire more than once a day while
    # claiming FREQ=DAILY: the same spam the frequency limit is there to stop.
    times_of_day = 1
    for part in ("_byhour", "_byminute", "_bysecond"):
        times_of_day *= len(getattr(rule, part, None) or (0,))
    if times_of_day > 1:
        raise ValueError("the rule may fire at one time of day only (one BYHOUR, one BYMINUTE)")
    # dateutil accepts INTERVAL=0 and only fails while iterating (a 500 later, not a 422).
    if getattr(rule, "_interval", 1) < 1:
        raise ValueError("INTERVAL must be 1 or more")
    _check_days_exist(rule)
    return rule


# RFC 5545 §3.3.10, the values of each numeric BYxxx part: (lowest, highest, whether a
# negative value counts from the end). dateutil checks only some of these and treats the
# others loosely: BYMONTHDAY=0 vanishes (and the rule fires daily), BYMONTH=13 reaches
# our own month table as a KeyError.
_NUMERIC_PARTS = {
    "BYSECOND": (0, 60, False),
    "BYMINUTE": (0, 59, False),
    "BYHOUR": (0, 23, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYMONTH": (1, 12, False),
    "BYSETPOS": (1, 366, True),
}
# The parts RFC 5545 defines. dateutil also reads BYEASTER and BYWEEKDAY, which no
# calendar client understands; Easter also follows no calendar cycle _twin_year knows.
_RFC_PARTS = {"FREQ", "UNTIL", "COUNT", "INTERVAL", "BYDAY", "WKST", *_NUMERIC_PARTS}
_WEEKDAY = re.compile(r"([+-]?\d+)?(MO|TU|WE|TH|FR|SA|SU)")


def _check_rfc_ranges(text: str) -> None:
    """Refuse BYxxx values outside RFC 5545's ranges, read from the text itself: dateutil
    drops or ignores some of them (BYMONTHDAY=0, the +9 of BYDAY=+9MO in a weekly
    rule), so the parsed rule no longer shows the mistake. Parts that do not parse at
    all are left to dateutil's own message."""
    parts = [(n.strip().upper(), v.strip().upper()) for n, _, v in _split_parts(text)]
    freq = next((v for n, v in parts if n == "FREQ"), None)
    has_weekno = any(n == "BYWEEKNO" for n, _ in parts)
    for name, value in parts:
        if name not in _RFC_PARTS and name.startswith("BY"):
            raise ValueError(f"{name} is not an RFC 5545 rule part")
        if name in _NUMERIC_PARTS:
            low, high, signed = _NUMERIC_PARTS[name]
            for item in value.split(","):
                number = _integer(name, item)
                if not (low <= number <= high or (signed and -high <= number <= -low)):
                    span = f"{low} to {high}" + (f", or -{high} to -1" if signed else "")
                    raise ValueError(f"{name} must be {span}, not {item}")
        elif name == "BYDAY":
            for item in value.split(","):
                _check_weekday(item, freq, has_weekno)


def _split_parts(text: str) -> list[tuple[str, str, str]]:
    return [part.partition("=") for part in text.split(";") if part.strip()]


def _integer(name: str, item: str) -> int:
    try:
        return int(item)
    except ValueError:
        raise ValueError(f"{name} takes whole numbers, not {item!r}") from None


def _check_weekday(item: str, freq: str | None, has_weekno: bool) -> None:
    """An ordinal weekday (1MO, -1FR) counts within a month or a year (RFC 5545
    §3.3.10), so it has no meaning in a daily or weekly rule, and a month has at most
    five of each weekday."""
    match = _WEEKDAY.fullmatch(item)
    if match is None or match.group(1) is None:
        return
    ordinal = int(match.group(1))
    if freq in ("DAILY", "WEEKLY", "HOURLY", "MINUTELY", "SECONDLY"):
        raise ValueError(
            f"BYDAY={item}: a numbered weekday needs FREQ=MONTHLY or FREQ=YEARLY "
            f"(in FREQ={freq} write BYDAY={match.group(2)})"
        )
    if freq not in ("MONTHLY", "YEARLY"):
        return  # no FREQ, or an unknown one: dateutil's message says so
    if freq == "YEARLY" and has_weekno:
        raise ValueError(f"BYDAY={item}: a numbered weekday cannot be combined with BYWEEKNO")
    most = 5 if freq == "MONTHLY" else 53
    if ordinal == 0 or abs(ordinal) > most:
        raise ValueError(
            f"BYDAY={item}: the number must be 1 to {most}, or -{most} to -1, with FREQ={freq}"
        )


_DAYS_IN_MONTH = {
    1: 31,
    2: 29,
    3: 31,
    4: 30,
    5: 31,
    6: 30,
    7: 31,
    8: 31,
    9: 30,
    10: 31,
    11: 30,
    12: 31,
}


def _check_days_exist(rule: rrule) -> None:
    """Refuse BYMONTH with BYMONTHDAY days none of those months has (31 February), the
    commonest rule that never fires, with a reason more useful than check_rule's "no
    occurrence"."""
    months = getattr(rule, "_bymonth", None)
    positive = getattr(rule, "_bymonthday", None) or ()
    negative = getattr(rule, "_bynmonthday", None) or ()
    if not months or not (positive or negative):
        return
    fits = any(d <= _DAYS_IN_MONTH.get(m, 31) for m in months for d in positive) or any(
        -d <= _DAYS_IN_MONTH.get(m, 31) for m in months for d in negative
    )
    if not fits:
        raise ValueError(
            "the rule has no occurrence: no month in BYMONTH has those BYMONTHDAY days"
        )


# How far past its start a rule must first fire. A survey or a one-on-one whose first
# occurrence is further away than this is a mistake, not a plan.
SEARCH_YEARS = 30
# The Gregorian calendar repeats every 400 years (146,097 days, a whole number of weeks),
# so any run of years has a twin within 400 years below the search limit.
_CALENDAR_CYCLE_YEARS = 400


def check_rule(text: str, starts_at: datetime, timezone: str) -> datetime:
    """For a rule being written: RFC 5545's value ranges (which runtime parsing leaves
    alone, so rules stored under older checks keep running), everything ``parse_rule``
    checks, and that the rule occurs within SEARCH_YEARS:
    a schedule that never fires (BYMONTHDAY=30 in February, COUNT=0, BYSETPOS=2 on a
    one-a-day rule) is a mistake to report when it is written, not a survey that
    silently never opens. Returns the first occurrence."""
    _check_rfc_ranges(_rule_text(text))
    rule = parse_rule(text, starts_at, timezone)
    try:
        first = _first_occurrence(rule, _naive_local(starts_at, timezone))
        if first is None:
            raise ValueError(
                f"the rule has no occurrence in the {SEARCH_YEARS} years after starts_at"
            )
        return localize(first, timezone)
    except OverflowError as exc:
        raise ValueError(f"not a valid RRULE: {exc}") from exc


def _first_occurrence(rule: rrule, start: datetime) -> datetime | None:
    """The rule's first occurrence if it comes within SEARCH_YEARS of ``start``, else None.

    dateutil ends a search only at an occurrence or at the year 9999 (UNTIL is compared
    with occurrences, so it bounds nothing for a rule that never fires): seconds of CPU
    inside a request. So the rule is searched moved to a twin run of years just below
    9999 (``_twin_year``), where it fires on the same dates and weekdays and dateutil's
    own limit ends the search a few decades on."""
    until: datetime | None = getattr(rule, "_until", None)
    if until is not None and until < start:
        return None
    shift = _twin_year(start.year) - start.year
    moved_start = start.replace(year=start.year + shift)
    window_end = moved_start + relativedelta(years=SEARCH_YEARS)
    moved_until = None
    # An UNTIL past the window changes nothing inside it, and its twin may not exist
    # (29 February of a year that is not a leap year).
    if until is not None and until.year + shift <= window_end.year:
        moved_until = until.replace(year=until.year + shift)
    moved = rule.replace(dtstart=moved_start, until=moved_until)
    first = next(iter(moved), None)
    if first is None or first > window_end:
        return None
    return first.replace(year=first.year - shift)


def _calendar_shape(year: int) -> tuple[int, tuple[bool, ...]]:
    # The weekday of 1 January and which years are leap years fix every date's weekday,
    # day of the year and ISO week; dateutil also looks at the years either side.
    leaps = tuple(calendar.isleap(y) for y in range(year - 1, year + SEARCH_YEARS + 2))
    return date(year, 1, 1).weekday(), leaps


@cache
def _twin_year(year: int) -> int:
    """The latest year leaving room for the window below 9999 whose next SEARCH_YEARS
    years have the same calendar, day for day, as ``year``'s. A whole 400-year cycle
    away always qualifies; a nearer twin (often one 28-year cycle below the limit)
    keeps the search short."""
    shape = _calendar_shape(year)
    latest = MAXYEAR - SEARCH_YEARS - 1
    for candidate in range(latest, latest - _CALENDAR_CYCLE_YEARS, -1):
        if _calendar_shape(candidate) == shape:
            return candidate
    raise AssertionError("the Gregorian calendar repeats every 400 years")


def localize(local: datetime, timezone: str) -> datetime:
    """A naive local time placed in its zone per RFC 5545 §3.3.5 (see module docstring)."""
    zone = ZoneInfo(timezone)
    aware = local.replace(tzinfo=zone, fold=0)
    # Round-trip through UTC so a time in the gap becomes the real wall time it denotes.
    return aware.astimezone(UTC).astimezone(zone)


def occurrences_after(
    rule_text: str, starts_at: datetime, timezone: str, after: datetime, count: int
) -> list[datetime]:
    """The next ``count`` occurrences strictly after ``after``, aware, in the zone."""
    rule = parse_rule(rule_text, starts_at, timezone)
    zone = ZoneInfo(timezone)
    # Start a day early in local time: the UTC→local mapping near a DST change can be off
    # by the change, and the filter below drops anything not strictly after.
    cursor = after.astimezone(zone).replace(tzinfo=None) - timedelta(days=1)
    out: list[datetime] = []
    for local in rule.xafter(cursor, inc=False):
        at = localize(local, timezone)
        if at > after:
            out.append(at)
            if len(out) >= count:
                break
    return out


def latest_between(
    rule_text: str, starts_at: datetime, timezone: str, after: datetime, until: datetime
) -> datetime | None:
    """The last occurrence in (after, until], or None: the worker opens only this one
    after downtime, never a burst of stale waves."""
    rule = parse_rule(rule_text, starts_at, timezone)
    zone = ZoneInfo(timezone)
    latest = None
    cursor = after.astimezone(zone).replace(tzinfo=None) - timedelta(days=1)
    for local in rule.xafter(cursor, inc=False):
        at = localize(local, timezone)
        if at > until:
            break
        if at > after:
            latest = at
    return latest
