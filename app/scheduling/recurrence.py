"""Recurrence: RFC 5545 RRULEs evaluated in the owner's IANA time zone.

The rule runs on local wall-clock times (dateutil), and each local time is then placed in
the zone with ``fold=0``: a time in the spring-forward gap gets the offset from before
the gap, which moves it forward by the gap's length, and a time in the repeated autumn
hour takes its first occurrence, as RFC 5545 §3.3.5 says. So "09:00 Europe/Berlin" stays
09:00 on both sides of a daylight-saving change."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

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


def parse_rule(text: str, starts_at: datetime, timezone: str) -> rrule:
    """The rule anchored at ``starts_at`` in local time; ValueError with a readable
    reason for a rule we will not run."""
    cleaned = text.strip()
    if cleaned.upper().startswith("RRULE:"):
        cleaned = cleaned[6:]
    if not cleaned or "\n" in cleaned or "DTSTART" in cleaned.upper():
        raise ValueError("give one RRULE line without DTSTART, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9")
    try:
        local_start = starts_at.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
        rule = rrulestr(_until_in_local_time(cleaned, timezone), dtstart=local_start)
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
    """Refuse BYMONTH with BYMONTHDAY days none of those months has (31 February).

    dateutil would search such a rule year by year up to 9999 before giving up, seconds
    of CPU inside a request; every other combination that can fire at all fires within
    the 28-year weekday cycle, so this is the one case to catch up front."""
    months = getattr(rule, "_bymonth", None)
    positive = getattr(rule, "_bymonthday", None) or ()
    negative = getattr(rule, "_bynmonthday", None) or ()
    if not months or not (positive or negative):
        return
    fits = any(d <= _DAYS_IN_MONTH[m] for m in months for d in positive) or any(
        -d <= _DAYS_IN_MONTH[m] for m in months for d in negative
    )
    if not fits:
        raise ValueError(
            "the rule has no occurrence: no month in BYMONTH has those BYMONTHDAY days"
        )


def check_rule(text: str, starts_at: datetime, timezone: str) -> None:
    """Everything ``parse_rule`` checks, plus that the rule occurs at least once: a
    schedule that never fires (BYMONTHDAY=30 in February, COUNT=0) is a mistake to
    report when it is written, not a survey that silently never opens."""
    rule = parse_rule(text, starts_at, timezone)
    try:
        first = next(iter(rule), None)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid RRULE: {exc}") from exc
    if first is None:
        raise ValueError("the rule has no occurrence at or after starts_at")


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
