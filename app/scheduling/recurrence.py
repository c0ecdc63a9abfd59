"""Recurrence: RFC 5545 RRULEs evaluated in the owner's IANA time zone.

The rule runs on local wall-clock times (dateutil), and each local time is then placed in
the zone with ``fold=0``: a time in the spring-forward gap gets the offset from before
the gap, which moves it forward by the gap's length, and a time in the repeated autumn
hour takes its first occurrence, as RFC 5545 §3.3.5 says. So "09:00 Europe/Berlin" stays
09:00 on both sides of a daylight-saving change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, rrule, rrulestr

# More often than daily would be a survey (or a meeting) spamming people.
MIN_FREQUENCY = DAILY


def parse_rule(text: str, starts_at: datetime, timezone: str) -> rrule:
    """The rule anchored at ``starts_at`` in local time; ValueError with a readable
    reason for a rule we will not run."""
    cleaned = text.strip()
    if cleaned.upper().startswith("RRULE:"):
        cleaned = cleaned[6:]
    if not cleaned or "\n" in cleaned or "DTSTART" in cleaned.upper():
        raise ValueError("give one RRULE line without DTSTART, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9")
    local_start = starts_at.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    try:
        rule = rrulestr(cleaned, dtstart=local_start)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a valid RRULE: {exc}") from exc
    if not isinstance(rule, rrule):
        raise ValueError("give a single RRULE")
    if getattr(rule, "_freq", MIN_FREQUENCY) > MIN_FREQUENCY:  # YEARLY=0 … DAILY=3, HOURLY=4 …
        raise ValueError(
            "the rule may repeat at most daily (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY)"
        )
    return rule


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
