"""Reports: windows snapped to whole periods, counts from SQL, eNPS from the maths, and
anonymity enforced on every figure that leaves.

Suppression (architecture.md, "Anonymity by default") is decided per wave, because a
wave is the unit in which a response is one person: within a wave, a cell with fewer
respondents than the strictest minimum group size among the surveys involved is hidden,
and cells are hidden in pairs at least (complementary suppression, see
``complete_hidden``), so no hidden cell is a shown total minus shown cells. Every other
figure is a *sum of what the waves released*: a period's row adds up the wave cells
shown for that group, and the overall adds up the waves large enough to be shown on
their own. So whatever windows, intervals or groupings a client combines, a difference
of two answers is a sum of wave cells that the wave-by-wave report shows anyway; a
window a day wider adds whole periods (whole waves for ``wave``) and never a small one.

Breakdowns by team are checked against the department breakdown too (a department
minus its shown teams must reveal nothing), and a ``team`` or ``department`` filter
answers only where that team or department is shown in the organization-wide
breakdown, so a filter cannot fetch a cell that a breakdown hides.

Answers are reported for closed waves only: an open wave's figures change with every
response, and two requests a minute apart would isolate the answer that came in
between. Participation (who was invited, how many answered) includes open waves."""

from __future__ import annotations

import random
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import utcnow
from app.core.errors import Unprocessable
from app.employees.models import Employee
from app.organizations import service as organization_service
from app.reports import enps as maths
from app.reports import queries
from app.reports.schemas import (
    Change,
    EnpsFigures,
    EnpsReport,
    EnpsRow,
    ParticipationFigures,
    ParticipationReport,
    ParticipationRow,
    QuestionResult,
    QuestionsReport,
    WaveQuestions,
    Window,
)
from app.surveys import service as survey_service
from app.surveys.models import Survey, Wave

GROUP_BY = re.compile(r"^(team|department|manager|attribute:[A-Za-z0-9_-]{1,64})$")
DEFAULT_DAYS = 365
# Dates a report window may name: wide enough for any real survey, narrow enough that
# snapping to whole periods and the default one-year window never leave the calendar.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(9998, 12, 31)

Values = tuple[int, ...]
Size = Callable[[Values], int]
PeriodKey = tuple[date, uuid.UUID | None]


@dataclass(frozen=True)
class Params:
    survey_id: uuid.UUID | None
    from_: date | None
    to: date | None
    interval: str
    group_by: str | None
    team: str | None
    department: str | None


@dataclass(frozen=True)
class WaveInfo:
    id: uuid.UUID
    survey_id: uuid.UUID
    local_date: date  # the occurrence, in the organization's time zone
    closes_on: date
    min_group_size: int
    comment_min_group_size: int
    questions: list[dict[str, Any]]
    closed: bool  # closed, or past its window: no answer can arrive any more

    @property
    def asks_enps(self) -> bool:
        return any(q.get("kind") == "enps" for q in self.questions)


@dataclass(frozen=True)
class Segment:
    """The counts of one wave for one combination of segments (None where the query
    did not ask for that segment)."""

    team: Any
    department: Any
    group: Any
    values: Values


@dataclass
class Release:
    """What one wave may contribute to a report: ``eligible`` when its (filtered) total
    may be shown and counted; ``cells`` per group with the ``hidden`` ones."""

    has_data: bool
    eligible: bool
    total: Values
    cells: dict[Any, Values] = field(default_factory=dict)
    hidden: set[Any] = field(default_factory=set)
    # The organization-wide team and department decisions behind it (when needed).
    teams_hidden: set[Any] = field(default_factory=set)
    departments_hidden: set[Any] = field(default_factory=set)


def check_params(params: Params) -> None:
    """Refuse what the query string's types cannot: an unknown grouping, a reversed
    window."""
    if params.group_by is not None and not GROUP_BY.match(params.group_by):
        raise Unprocessable.field(
            ["query", "group_by"], "use team, department, manager or attribute:<name>"
        )
    for name, day in (("from", params.from_), ("to", params.to)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise Unprocessable.field(
                ["query", name], f"must be between {FIRST_DAY} and {LAST_DAY}"
            )
    if params.from_ and params.to and params.from_ > params.to:
        raise Unprocessable.field(["query", "from"], "must not be after 'to'")


def period_start(day: date, interval: str) -> date:
    if interval == "week":
        return day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    if interval == "month":
        return day.replace(day=1)
    if interval == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day


def period_end(start: date, interval: str) -> date:
    if interval == "week":
        return start + timedelta(days=6)
    months = 1 if interval == "month" else 3
    year, month = divmod(start.month - 1 + months, 12)
    return date(start.year + year, month + 1, 1) - timedelta(days=1)


async def _waves(
    session: AsyncSession,
    org_id: uuid.UUID,
    params: Params,
    tz: str,
    *,
    now: datetime,
    answers: bool,
) -> list[WaveInfo]:
    query = (
        select(Wave, Survey.comment_min_group_size)
        .join(Survey, Survey.id == Wave.survey_id)
        .where(Wave.organization_id == org_id)
    )
    if params.survey_id is not None:
        query = query.where(Wave.survey_id == params.survey_id)
    if answers:
        # Closed early, or past its window (the worker may not have flagged it yet):
        # either way no answer can arrive any more.
        query = query.where(or_(Wave.status == "closed", Wave.closes_at <= now))
    zone = ZoneInfo(tz)
    return [
        WaveInfo(
            id=w.id,
            survey_id=w.survey_id,
            local_date=w.occurrence_at.astimezone(zone).date(),
            closes_on=w.closes_at.astimezone(zone).date(),
            min_group_size=w.min_group_size,
            comment_min_group_size=comment_min,
            questions=w.questions,
            closed=w.status == "closed" or w.closes_at <= now,
        )
        for w, comment_min in (await session.execute(query.order_by(Wave.occurrence_at))).all()
    ]


def snap(params: Params, waves: list[WaveInfo], today: date) -> tuple[Window, list[WaveInfo]]:
    """The window snapped outward to whole periods (or whole waves) and the waves in it."""
    to = params.to or today
    start = params.from_ or (to - timedelta(days=DEFAULT_DAYS - 1))
    if start > to:  # only when 'to' was left to default to today
        raise Unprocessable.field(["query", "from"], f"must not be after 'to' (today, {to})")
    if params.interval == "wave":
        chosen = [w for w in waves if w.local_date <= to and w.closes_on >= start]
        if chosen:
            start = min(start, min(w.local_date for w in chosen))
            to = max(to, max(w.closes_on for w in chosen))
        return Window(from_=start, to=to), chosen
    start = period_start(start, params.interval)
    to = period_end(period_start(to, params.interval), params.interval)
    return Window(from_=start, to=to), [w for w in waves if start <= w.local_date <= to]


# --- suppression ------------------------------------------------------------------------


def _order(key: Any) -> tuple[bool, str]:
    return (key is None, str(key))


def complete_hidden(hidden: Iterable[Any], sizes: Mapping[Any, int], threshold: int) -> set[Any]:
    """Grow a set of hidden cells, next-smallest first, until what they hide together
    cannot be read off a total: at least two cells holding at least ``threshold``
    respondents between them (or every cell). One hidden cell alone equals the total
    minus the shown ones; two hidden cells of 1 and 2 people reveal a group of 3."""
    out = set(hidden)
    while out and (len(out) < 2 or sum(sizes[k] for k in out) < threshold):
        shown = [k for k in sizes if k not in out]
        if not shown:
            break
        out.add(min(shown, key=lambda k: (sizes[k], _order(k))))
    return out


def hidden_cells(sizes: Mapping[Any, int], threshold: int) -> set[Any]:
    """Cells to suppress in one breakdown: those below the threshold, completed so that
    no hidden cell can be derived from the total."""
    return complete_hidden({k for k, n in sizes.items() if n < threshold}, sizes, threshold)


def hidden_teams(
    team_sizes: Mapping[Any, int],
    portions: Mapping[tuple[Any, Any], int],
    hidden_departments: set[Any],
    threshold: int,
    also: Iterable[Any] = (),
) -> set[Any]:
    """Teams to suppress, knowing that department totals are published too.

    Within each department the hidden teams must again be two or more holding the
    threshold between them, or the department total minus its shown teams gives them
    away (a team of 4 beside a team of 30: both are hidden, whatever smaller team
    another department has). A department hidden in the department breakdown must not
    be the sum of shown teams either, so it gets hidden teams of its own."""
    hidden = {t for t, n in team_sizes.items() if n < threshold}
    hidden |= set(also) & team_sizes.keys()
    departments: dict[Any, dict[Any, int]] = defaultdict(dict)
    for (team, department), n in portions.items():
        departments[department][team] = n
    changed = True
    while changed:
        changed = False
        for department in sorted(departments, key=_order):
            members = departments[department]
            inside = [t for t in members if t in hidden]
            if not inside and department not in hidden_departments:
                continue
            if len(inside) >= 2 and sum(members[t] for t in inside) >= threshold:
                continue
            shown = [t for t in members if t not in hidden]
            if shown:
                hidden.add(min(shown, key=lambda t: (members[t], _order(t))))
                changed = True
    return complete_hidden(hidden, team_sizes, threshold)


def _add(a: Values, b: Values) -> Values:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _sizes(values: Iterable[tuple[Any, Values]], size: Size) -> dict[Any, int]:
    out: dict[Any, int] = defaultdict(int)
    for key, v in values:
        out[key] += size(v)
    return dict(out)


def structure_needed(params: Params) -> bool:
    """Team and department breakdowns are needed to judge a filter or a team or
    department grouping against the whole organization."""
    return (
        params.team is not None
        or params.department is not None
        or params.group_by in ("team", "department")
    )


def segments_needed(params: Params) -> list[str]:
    names = ["team", "department"] if structure_needed(params) else []
    if params.group_by is not None and params.group_by not in names:
        names.append(params.group_by)
    return names


def segments_by_wave(
    rows: Iterable[tuple[Any, ...]], names: Sequence[str], group_by: str | None
) -> dict[uuid.UUID, list[Segment]]:
    """Query rows (wave, *segments, *counts) as Segments per wave."""
    width = len(names)

    def pick(row: tuple[Any, ...], name: str | None) -> Any:
        return row[1 + names.index(name)] if name in names else None

    out: dict[uuid.UUID, list[Segment]] = defaultdict(list)
    for row in rows:
        out[row[0]].append(
            Segment(
                team=pick(row, "team"),
                department=pick(row, "department"),
                group=pick(row, group_by),
                values=tuple(int(v) for v in row[1 + width :]),
            )
        )
    return out


def release_wave(
    segments: Sequence[Segment],
    params: Params,
    threshold: int,
    size: Size,
    forced: Release | None = None,
) -> Release:
    """Decide what one wave contributes to a report with these filters and grouping.

    ``forced`` is the answers' decision for the same wave and grouping: participation
    hides at least what the eNPS and questions reports hide, or a responded count shown
    there would split a group hidden here (docs/decisions/0011)."""
    width = len(segments[0].values) if segments else 0
    zero: Values = (0,) * width
    teams_hidden: set[Any] = set()
    departments_hidden: set[Any] = set()
    if structure_needed(params):
        department_sizes = _sizes(((s.department, s.values) for s in segments), size)
        seed = {k for k, n in department_sizes.items() if n < threshold}
        if forced is not None:
            seed |= forced.departments_hidden & department_sizes.keys()
        departments_hidden = complete_hidden(seed, department_sizes, threshold)
        teams_hidden = hidden_teams(
            _sizes(((s.team, s.values) for s in segments), size),
            _sizes((((s.team, s.department), s.values) for s in segments), size),
            departments_hidden,
            threshold,
            forced.teams_hidden if forced is not None else (),
        )
    # A filter asks for one cell of an organization-wide breakdown: if that breakdown
    # hides it, the filtered answer must hide it too.
    refused = (params.team is not None and params.team in teams_hidden) or (
        params.department is not None and params.department in departments_hidden
    )
    chosen = [
        s
        for s in segments
        if (params.team is None or s.team == params.team)
        and (params.department is None or s.department == params.department)
    ]
    total = zero
    for s in chosen:
        total = _add(total, s.values)
    eligible = bool(chosen) and not refused and size(total) >= threshold
    if params.group_by is None:
        cells = {None: total} if chosen else {}
        hidden_all = set() if eligible else set(cells)
        return Release(
            bool(chosen), eligible, total, cells, hidden_all, teams_hidden, departments_hidden
        )
    grouped: dict[Any, Values] = {}
    for s in chosen:
        grouped[s.group] = _add(grouped.get(s.group, zero), s.values)
    sizes = {g: size(v) for g, v in grouped.items()}
    if not eligible:
        hidden = set(grouped)
    else:
        # team and department cells start from the organization-wide decisions, so a
        # filtered breakdown hides at least what the full one hides.
        inherited = {
            "team": teams_hidden,
            "department": departments_hidden,
        }.get(params.group_by, set())
        below = {g for g, n in sizes.items() if n < threshold}
        if forced is not None and forced.eligible:
            below |= forced.hidden & grouped.keys()
        hidden = complete_hidden(below | (inherited & grouped.keys()), sizes, threshold)
    return Release(bool(chosen), eligible, total, grouped, hidden, teams_hidden, departments_hidden)


# --- reports ----------------------------------------------------------------------------


def _figures(c: maths.Counts, suppressed: bool) -> dict[str, Any]:
    s = maths.score(c)
    if suppressed or s is None:
        return {
            "responses": None,
            "promoters": None,
            "passives": None,
            "detractors": None,
            "enps": None,
            "ci_low": None,
            "ci_high": None,
            "margin_of_error": None,
            "suppressed": suppressed,
        }
    return {
        "responses": c.responses,
        "promoters": c.promoters,
        "passives": c.passives,
        "detractors": c.detractors,
        "enps": s.enps,
        "ci_low": s.ci_low,
        "ci_high": s.ci_high,
        "margin_of_error": s.margin_of_error,
        "suppressed": False,
    }


async def _group_labels(
    session: AsyncSession, group_by: str | None, values: Iterable[Any]
) -> dict[Any, str]:
    """Managers are grouped by id and shown by name."""
    if group_by != "manager":
        return {}
    ids = [v for v in values if v is not None]
    if not ids:
        return {}
    rows = await session.execute(select(Employee.id, Employee.name).where(Employee.id.in_(ids)))
    return {i: n for i, n in rows.all()}


def _key(wave: WaveInfo, interval: str) -> PeriodKey:
    if interval == "wave":
        return wave.local_date, wave.id
    return period_start(wave.local_date, interval), None


@dataclass(frozen=True)
class Context:
    window: Window
    waves: list[WaveInfo]
    threshold: int


async def _context(
    session: AsyncSession, org_id: uuid.UUID, params: Params, *, answers: bool
) -> Context:
    """Checked parameters, the snapped window, its waves (closed ones only when the
    report shows answers) and the threshold that applies."""
    check_params(params)
    if params.survey_id is not None:
        # Another organization's survey answers 404, exactly as one that does not exist.
        await survey_service.get_survey(session, org_id, params.survey_id)
    org = await organization_service.get_organization(session, org_id)
    now = utcnow()
    today = now.astimezone(ZoneInfo(org.default_timezone)).date()
    waves = await _waves(session, org_id, params, org.default_timezone, now=now, answers=answers)
    window, waves = snap(params, waves, today)
    # Across surveys with different thresholds the strictest applies.
    threshold = max([org.min_group_size, *[w.min_group_size for w in waves]])
    return Context(window, waves, threshold)


@dataclass
class Tally:
    """Per (period, group): the sum of released wave cells, and every cell seen (so a
    group hidden throughout still appears, suppressed)."""

    seen: set[tuple[PeriodKey, Any]] = field(default_factory=set)
    sums: dict[tuple[PeriodKey, Any], Values] = field(default_factory=dict)
    overall: Values | None = None
    has_data: bool = False

    def add(self, period: PeriodKey, release: Release) -> None:
        self.has_data = self.has_data or release.has_data
        for group, values in release.cells.items():
            self.seen.add((period, group))
            if release.eligible and group not in release.hidden:
                key = (period, group)
                self.sums[key] = _add(self.sums[key], values) if key in self.sums else values
        if release.eligible:
            self.overall = (
                release.total if self.overall is None else _add(self.overall, release.total)
            )

    def ordered(self, labels: Mapping[Any, str]) -> list[tuple[PeriodKey, Any]]:
        return sorted(
            self.seen,
            key=lambda k: (*_period_order(k[0]), k[1] is None, str(labels.get(k[1], k[1]))),
        )


def _period_order(period: PeriodKey) -> tuple[date, str]:
    return period[0], str(period[1])


def _tally(
    rows: Iterable[tuple[Any, ...]],
    ctx: Context,
    params: Params,
    size: Size,
    forced: Mapping[uuid.UUID, Release] | None = None,
) -> Tally:
    names = segments_needed(params)
    by_wave = segments_by_wave(rows, names, params.group_by)
    tally = Tally()
    for wave in ctx.waves:
        if wave.id in by_wave:
            also = forced.get(wave.id) if forced is not None else None
            release = release_wave(by_wave[wave.id], params, ctx.threshold, size, also)
            tally.add(_key(wave, params.interval), release)
    return tally


def with_census(
    rows: Sequence[tuple[Any, ...]], census: Iterable[tuple[Any, ...]], width: int
) -> list[tuple[Any, ...]]:
    """Count rows plus a zero row for every group a wave invited that has none, so a
    group that gave no answers is listed (suppressed) like one that gave a few: its
    absence would tell that nobody in it answered, its presence that somebody did."""
    out = list(rows)
    present = {tuple(r[:-width]) for r in rows}
    for row in census:
        key = tuple(row[:-1])
        if key not in present:
            out.append((*key, *(0,) * width))
    return out


async def _answer_rows(
    session: AsyncSession, waves: Sequence[WaveInfo], names: Sequence[str]
) -> list[tuple[Any, ...]]:
    """(wave, *segments, size) by which answers are shown or hidden: eNPS answers where
    the wave asks for an eNPS, respondents elsewhere. The eNPS and questions reports
    hide by this, and participation hides at least as much, so no figure of one
    report splits a group another hides (docs/decisions/0011)."""
    enps_ids = [w.id for w in waves if w.asks_enps]
    other_ids = [w.id for w in waves if not w.asks_enps]
    rows = [(*r[:-3], sum(r[-3:])) for r in await queries.enps_counts(session, enps_ids, names)]
    rows += await queries.response_counts(session, other_ids, names)
    census = await queries.census_cells(session, [w.id for w in waves], names)
    return with_census(rows, census, 1)


async def _answer_releases(
    session: AsyncSession, waves: Sequence[WaveInfo], params: Params, threshold: int
) -> dict[uuid.UUID, Release]:
    names = segments_needed(params)
    by_wave = segments_by_wave(await _answer_rows(session, waves, names), names, params.group_by)
    return {
        w.id: release_wave(by_wave[w.id], params, threshold, _first)
        for w in waves
        if w.id in by_wave
    }


def _enps_size(v: Values) -> int:
    return sum(v)


def _first(v: Values) -> int:
    return v[0]


async def enps_report(session: AsyncSession, org_id: uuid.UUID, params: Params) -> EnpsReport:
    """The eNPS trend: per period (and group), the released respondents' counts and
    score; suppressed cells carry nulls."""
    ctx = await _context(session, org_id, params, answers=True)
    names = segments_needed(params)
    enps_ids = [w.id for w in ctx.waves if w.asks_enps]
    rows = with_census(
        await queries.enps_counts(session, enps_ids, names),
        await queries.census_cells(session, enps_ids, names),
        3,
    )
    tally = _tally(rows, ctx, params, _enps_size)
    labels = await _group_labels(session, params.group_by, {g for _, g in tally.seen})
    series: list[EnpsRow] = []
    # A change is from the group's row in the period just before, and only when that row
    # is shown: across a hidden period it would compare with an older one unannounced.
    periods = {p: i for i, p in enumerate(sorted({p for p, _ in tally.seen}, key=_period_order))}
    previous: dict[Any, tuple[int, maths.Counts]] = {}
    for period, group in tally.ordered(labels):
        values = tally.sums.get((period, group))
        counts = maths.Counts(*values) if values is not None else maths.Counts(0, 0, 0)
        change = None
        if values is not None:
            index, before = previous.get(group, (-2, counts))
            if index == periods[period] - 1:
                ch = maths.compare(before, counts)
                change = Change(**vars(ch)) if ch else None
            previous[group] = (periods[period], counts)
        series.append(
            EnpsRow(
                period_start=period[0],
                wave_id=period[1],
                group=_label(params.group_by, group, labels),
                group_id=str(group) if params.group_by == "manager" and group else None,
                change=change,
                **_figures(counts, values is None),
            )
        )
    overall = maths.Counts(*tally.overall) if tally.overall else maths.Counts(0, 0, 0)
    return EnpsReport(
        interval=params.interval,
        group_by=params.group_by,
        min_group_size=ctx.threshold,
        window=ctx.window,
        series=series,
        overall=EnpsFigures(**_figures(overall, tally.has_data and tally.overall is None)),
    )


def _label(group_by: str | None, group: Any, labels: Mapping[Any, str]) -> str | None:
    if group_by is None:
        return None
    if group is None:
        return "(none)"
    return labels.get(group, str(group))


def _rate(invited: int, responded: int) -> float | None:
    return round(responded / invited, 3) if invited else None


async def participation_report(
    session: AsyncSession, org_id: uuid.UUID, params: Params
) -> ParticipationReport:
    """Invited, responded and response rate; a small group's figures are suppressed, as
    its rate would tell who did not answer."""
    ctx = await _context(session, org_id, params, answers=False)
    rows = await queries.participation_counts(
        session, [w.id for w in ctx.waves], segments_needed(params)
    )
    # The group's size is who was invited: the same rule as for answers, on invitees;
    # a closed wave also hides what its answers hide in the other reports.
    closed = [w for w in ctx.waves if w.closed]
    forced = await _answer_releases(session, closed, params, ctx.threshold)
    tally = _tally(rows, ctx, params, _first, forced)
    labels = await _group_labels(session, params.group_by, {g for _, g in tally.seen})
    series = []
    for period, group in tally.ordered(labels):
        values = tally.sums.get((period, group))
        series.append(
            ParticipationRow(
                period_start=period[0],
                wave_id=period[1],
                group=_label(params.group_by, group, labels),
                group_id=str(group) if params.group_by == "manager" and group else None,
                invited=values[0] if values else None,
                responded=values[1] if values else None,
                response_rate=_rate(*values) if values else None,
                suppressed=values is None,
            )
        )
    overall = ParticipationFigures(
        invited=tally.overall[0] if tally.overall else None,
        responded=tally.overall[1] if tally.overall else None,
        response_rate=_rate(*tally.overall) if tally.overall else None,
        suppressed=tally.has_data and tally.overall is None,
    )
    return ParticipationReport(
        interval=params.interval,
        group_by=params.group_by,
        min_group_size=ctx.threshold,
        window=ctx.window,
        series=series,
        overall=overall,
    )


async def questions_report(
    session: AsyncSession, org_id: uuid.UUID, params: Params
) -> QuestionsReport:
    """Per closed wave and question: distributions, means, choice counts, yes shares and,
    where the group reaches the comment threshold, the comments."""
    params = Params(**{**vars(params), "interval": "wave", "group_by": None})
    ctx = await _context(session, org_id, params, answers=True)
    names = segments_needed(params)
    # Shown or hidden by the same measure as the eNPS report, so the two agree on every
    # wave, team and department; the respondent count shown is then the filtered one.
    sizes = segments_by_wave(await _answer_rows(session, ctx.waves, names), names, None)
    respondents = segments_by_wave(
        await queries.response_counts(session, [w.id for w in ctx.waves], names), names, None
    )
    out = []
    for wave in ctx.waves:
        segments = sizes.get(wave.id, [])
        release = release_wave(segments, params, ctx.threshold, _first)
        if not release.eligible:
            out.append(
                WaveQuestions(
                    wave_id=wave.id,
                    survey_id=wave.survey_id,
                    period_start=wave.local_date,
                    responses=None,
                    suppressed=True,
                    questions=[],
                )
            )
            continue
        # Comments are judged again at their own, stricter threshold, filters included,
        # since a list of texts is as easy to subtract as a count.
        comment_threshold = max(ctx.threshold, wave.comment_min_group_size)
        comment_ok = release_wave(segments, params, comment_threshold, _first).eligible
        n = release_wave(respondents.get(wave.id, []), params, ctx.threshold, _first).total[0]
        out.append(
            WaveQuestions(
                wave_id=wave.id,
                survey_id=wave.survey_id,
                period_start=wave.local_date,
                responses=n,
                suppressed=False,
                questions=await _wave_questions(session, wave, params, comment_ok),
            )
        )
    return QuestionsReport(window=ctx.window, waves=out)


async def _wave_questions(
    session: AsyncSession, wave: WaveInfo, params: Params, comment_ok: bool
) -> list[QuestionResult]:
    filters = {"team": params.team, "department": params.department}
    scores: dict[str, dict[int, int]] = defaultdict(dict)
    for key, score, count in await queries.score_distribution(session, wave.id, **filters):
        scores[key][score] = count
    choices: dict[str, dict[str, int]] = defaultdict(dict)
    for key, option, count in await queries.choice_counts(session, wave.id, **filters):
        choices[key][option] = count
    answered_by = await queries.answer_counts(session, wave.id, **filters)
    texts: dict[str, list[str]] = defaultdict(list)
    if comment_ok:
        for key, text in await queries.comments(session, wave.id, **filters):
            texts[key].append(text)
    results = []
    for q in wave.questions:
        key, kind = q["key"], q["kind"]
        dist = scores.get(key, {})
        answered = sum(dist.values())
        result = QuestionResult(key=key, kind=kind, responses=answered)
        if kind == "enps":
            c = maths.Counts.of([s for s, k in dist.items() for _ in range(k)])
            result.enps = EnpsFigures(**_figures(c, False))
            result.distribution = {str(s): dist.get(s, 0) for s in range(11)}
        elif kind == "rating":
            result.distribution = {
                str(s): dist.get(s, 0) for s in range(1, int(q.get("scale") or 5) + 1)
            }
            result.mean = (
                round(sum(s * k for s, k in dist.items()) / answered, 2) if answered else None
            )
        elif kind == "yes_no":
            result.yes_share = round(dist.get(1, 0) / answered, 3) if answered else None
        elif kind in ("single_choice", "multi_choice"):
            counts = choices.get(key, {})
            result.choices = {o["key"]: counts.get(o["key"], 0) for o in q.get("options") or []}
            # People who answered, not options ticked: a multiple choice names several.
            result.responses = answered_by.get(key, 0)
        elif kind == "text":
            # Shuffled, so the order says nothing of who wrote first; shuffled the same
            # way on every request (seeded by the wave), so the report keeps its ETag.
            comments = sorted(texts.get(key, []))
            random.Random(f"{wave.id}:{key}").shuffle(comments)
            # How many commented is a count of a shown group; only the texts wait
            # for the stricter threshold.
            result.responses = answered_by.get(key, 0)
            result.comments = comments if comment_ok else None
            result.comments_suppressed = not comment_ok
        results.append(result)
    return results


def csv_rows(
    report: EnpsReport | ParticipationReport | QuestionsReport,
) -> tuple[list[str], list[list[Any]]]:
    """The report as a header and rows, the same rows as the JSON."""
    if isinstance(report, EnpsReport):
        header = [
            "period_start",
            "wave_id",
            "group",
            "group_id",
            "responses",
            "promoters",
            "passives",
            "detractors",
            "enps",
            "ci_low",
            "ci_high",
            "margin_of_error",
            "suppressed",
        ]
        return header, [[getattr(r, h) for h in header] for r in report.series]
    if isinstance(report, ParticipationReport):
        header = [
            "period_start",
            "wave_id",
            "group",
            "group_id",
            "invited",
            "responded",
            "response_rate",
            "suppressed",
        ]
        return header, [[getattr(r, h) for h in header] for r in report.series]
    header = [
        "wave_id",
        "period_start",
        "question_key",
        "kind",
        "bucket",
        "count",
        "mean",
        "yes_share",
        "enps",
        "comment",
    ]
    rows: list[list[Any]] = []
    for w in report.waves:
        if w.suppressed:
            rows.append(
                [w.wave_id, w.period_start, None, None, "suppressed", None, None, None, None, None]
            )
            continue
        for q in w.questions:
            base = [w.wave_id, w.period_start, q.key, q.kind]
            enps_value = q.enps.enps if q.enps else None
            buckets = q.distribution or q.choices or {}
            if not buckets:
                rows.append([*base, None, q.responses, q.mean, q.yes_share, enps_value, None])
            for bucket, count in buckets.items():
                rows.append([*base, bucket, count, q.mean, q.yes_share, enps_value, None])
            for comment in q.comments or []:
                rows.append([*base, "comment", None, None, None, None, comment])
    return header, rows
