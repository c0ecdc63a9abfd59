"""Reports: windows snapped to whole periods, counts from SQL, eNPS from the maths, and
anonymity enforced on every figure that leaves.

Suppression (architecture.md, "Anonymity by default"): a cell with fewer respondents
than the strictest minimum group size among the surveys involved is returned with null
figures; when exactly one cell of a breakdown is hidden, the next-smallest is hidden too,
so no hidden cell equals a shown total minus shown cells. Windows snap outward to whole
periods (whole waves for ``wave``), so two windows a day apart differ by whole waves."""

from __future__ import annotations

import random
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
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
    ParticipationReport,
    ParticipationRow,
    QuestionResult,
    QuestionsReport,
    WaveQuestions,
    Window,
)
from app.surveys.models import Survey, Wave

GROUP_BY = re.compile(r"^(team|department|manager|attribute:[A-Za-z0-9_-]{1,64})$")
DEFAULT_DAYS = 365


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


def check_params(params: Params) -> None:
    if params.group_by is not None and not GROUP_BY.match(params.group_by):
        raise Unprocessable.field(
            ["query", "group_by"], "use team, department, manager or attribute:<name>"
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
    session: AsyncSession, org_id: uuid.UUID, params: Params, tz: str
) -> list[WaveInfo]:
    query = (
        select(Wave, Survey.comment_min_group_size)
        .join(Survey, Survey.id == Wave.survey_id)
        .where(Wave.organization_id == org_id)
    )
    if params.survey_id is not None:
        query = query.where(Wave.survey_id == params.survey_id)
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
        )
        for w, comment_min in (await session.execute(query.order_by(Wave.occurrence_at))).all()
    ]


def snap(params: Params, waves: list[WaveInfo], today: date) -> tuple[Window, list[WaveInfo]]:
    """The window snapped outward to whole periods (or whole waves) and the waves in it."""
    to = params.to or today
    start = params.from_ or (to - timedelta(days=DEFAULT_DAYS - 1))
    if params.interval == "wave":
        chosen = [w for w in waves if w.local_date <= to and w.closes_on >= start]
        if chosen:
            start = min(start, min(w.local_date for w in chosen))
            to = max(to, max(w.closes_on for w in chosen))
        return Window(from_=start, to=to), chosen
    start = period_start(start, params.interval)
    to = period_end(period_start(to, params.interval), params.interval)
    return Window(from_=start, to=to), [w for w in waves if start <= w.local_date <= to]


def hidden_cells(sizes: Mapping[Any, int], threshold: int) -> set[Any]:
    """Cells to suppress: those below the threshold, plus the next-smallest when only one
    is below, so that no hidden cell can be derived from a total."""
    hidden = {k for k, n in sizes.items() if n < threshold}
    if len(hidden) == 1 and len(sizes) > 1:
        shown = sorted((n, str(k), k) for k, n in sizes.items() if k not in hidden)
        hidden.add(shown[0][2])
    return hidden


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


def _key(wave: WaveInfo, interval: str) -> tuple[date, uuid.UUID | None]:
    if interval == "wave":
        return wave.local_date, wave.id
    return period_start(wave.local_date, interval), None


async def _context(
    session: AsyncSession, org_id: uuid.UUID, params: Params
) -> tuple[Window, list[WaveInfo], int]:
    check_params(params)
    org = await organization_service.get_organization(session, org_id)
    today = utcnow().astimezone(ZoneInfo(org.default_timezone)).date()
    window, waves = snap(params, await _waves(session, org_id, params, org.default_timezone), today)
    # Across surveys with different thresholds the strictest applies.
    threshold = max([org.min_group_size, *[w.min_group_size for w in waves]])
    return window, waves, threshold


async def enps_report(session: AsyncSession, org_id: uuid.UUID, params: Params) -> EnpsReport:
    window, waves, threshold = await _context(session, org_id, params)
    by_id = {w.id: w for w in waves}
    counts = await queries.enps_counts(
        session,
        list(by_id),
        group_by=params.group_by,
        team=params.team,
        department=params.department,
    )
    cells: dict[tuple[date, uuid.UUID | None], dict[Any, maths.Counts]] = defaultdict(dict)
    # Respondents, not responses, must reach the threshold: the same four people answering
    # three monthly waves are still four people. Anonymous responses cannot be linked
    # across waves, so a cell's respondent count is bounded below by its largest wave.
    people: dict[tuple[date, uuid.UUID | None], dict[Any, int]] = defaultdict(dict)
    for wave_id, group, promoters, passives, detractors in counts:
        period = _key(by_id[wave_id], params.interval)
        wave_counts = maths.Counts(promoters, passives, detractors)
        previous = cells[period].get(group, maths.Counts(0, 0, 0))
        cells[period][group] = previous + wave_counts
        people[period][group] = max(people[period].get(group, 0), wave_counts.responses)
    labels = await _group_labels(session, params.group_by, {g for c in cells.values() for g in c})

    rows: list[EnpsRow] = []
    previous_shown: dict[Any, maths.Counts] = {}
    if params.group_by is None:
        # One row per period: across periods the overall is the total, so complementary
        # suppression runs over the periods themselves.
        hidden = hidden_cells({p: people[p][None] for p in cells}, threshold)
        grouped = {p: {None: c[None]} for p, c in cells.items()}
    else:
        grouped = dict(cells)
        hidden = set()
    for period in sorted(grouped, key=lambda p: (p[0], str(p[1]))):
        groups = grouped[period]
        if params.group_by is not None:
            hide = hidden_cells(people[period], threshold)
        else:
            hide = {None} if period in hidden else set()
        for group in sorted(groups, key=lambda g: (g is None, str(labels.get(g, g)))):
            c = groups[group]
            suppressed = group in hide
            change = None
            if not suppressed and group in previous_shown:
                ch = maths.compare(previous_shown[group], c)
                change = Change(**vars(ch)) if ch else None
            if not suppressed:
                previous_shown[group] = c
            rows.append(
                EnpsRow(
                    period_start=period[0],
                    wave_id=period[1],
                    group=_label(params.group_by, group, labels),
                    group_id=str(group) if params.group_by == "manager" and group else None,
                    change=change,
                    **_figures(c, suppressed),
                )
            )
    total = sum((c for g in cells.values() for c in g.values()), maths.Counts(0, 0, 0))
    largest_wave = _largest_wave(counts)
    return EnpsReport(
        interval=params.interval,
        group_by=params.group_by,
        min_group_size=threshold,
        window=window,
        series=rows,
        overall=EnpsFigures(**_figures(total, largest_wave < threshold)),
    )


def _largest_wave(counts: Iterable[tuple[Any, ...]]) -> int:
    """Respondents of the biggest single wave: a lower bound on distinct respondents."""
    per_wave: dict[Any, int] = defaultdict(int)
    for row in counts:
        per_wave[row[0]] += sum(row[2:])
    return max(per_wave.values(), default=0)


def _label(group_by: str | None, group: Any, labels: Mapping[Any, str]) -> str | None:
    if group_by is None:
        return None
    if group is None:
        return "(none)"
    return labels.get(group, str(group))


async def participation_report(
    session: AsyncSession, org_id: uuid.UUID, params: Params
) -> ParticipationReport:
    window, waves, threshold = await _context(session, org_id, params)
    by_id = {w.id: w for w in waves}
    counts = await queries.participation_counts(
        session,
        list(by_id),
        group_by=params.group_by,
        team=params.team,
        department=params.department,
    )
    cells: dict[tuple[date, uuid.UUID | None], dict[Any, tuple[int, int]]] = defaultdict(dict)
    people: dict[tuple[date, uuid.UUID | None], dict[Any, int]] = defaultdict(dict)
    for wave_id, group, invited, responded in counts:
        period = _key(by_id[wave_id], params.interval)
        i0, r0 = cells[period].get(group, (0, 0))
        cells[period][group] = (i0 + invited, r0 + responded)
        # As for eNPS: the largest wave bounds how many distinct people a cell holds.
        people[period][group] = max(people[period].get(group, 0), invited)
    labels = await _group_labels(session, params.group_by, {g for c in cells.values() for g in c})
    if params.group_by is None:
        period_hidden = hidden_cells({p: people[p][None] for p in cells}, threshold)
    rows = []
    for period in sorted(cells, key=lambda p: (p[0], str(p[1]))):
        groups = cells[period]
        if params.group_by is None:
            hide: set[Any] = {None} if period in period_hidden else set()
        else:
            # A small team's response rate tells who did not answer: same rule, on invitees.
            hide = hidden_cells(people[period], threshold)
        for group in sorted(groups, key=lambda g: (g is None, str(labels.get(g, g)))):
            invited, responded = groups[group]
            shown = group not in hide
            rows.append(
                ParticipationRow(
                    period_start=period[0],
                    wave_id=period[1],
                    group=_label(params.group_by, group, labels),
                    group_id=str(group) if params.group_by == "manager" and group else None,
                    invited=invited if shown else None,
                    responded=responded if shown else None,
                    response_rate=round(responded / invited, 3) if shown and invited else None,
                    suppressed=not shown,
                )
            )
    invited = sum(v[0] for c in cells.values() for v in c.values())
    responded = sum(v[1] for c in cells.values() for v in c.values())
    per_wave: dict[Any, int] = defaultdict(int)
    for wave_id, _group, wave_invited, _responded in counts:
        per_wave[wave_id] += wave_invited
    small = max(per_wave.values(), default=0) < threshold
    overall = {
        "invited": None if small else invited,
        "responded": None if small else responded,
        "response_rate": None if small or not invited else round(responded / invited, 3),
        "suppressed": small,
    }
    return ParticipationReport(
        interval=params.interval,
        group_by=params.group_by,
        min_group_size=threshold,
        window=window,
        series=rows,
        overall=overall,
    )


async def questions_report(
    session: AsyncSession, org_id: uuid.UUID, params: Params
) -> QuestionsReport:
    params = Params(**{**vars(params), "interval": "wave", "group_by": None})
    window, waves, threshold = await _context(session, org_id, params)
    totals = await queries.response_counts(
        session, [w.id for w in waves], team=params.team, department=params.department
    )
    out = []
    for wave in waves:
        n = totals.get(wave.id, 0)
        if n < threshold:
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
        out.append(
            WaveQuestions(
                wave_id=wave.id,
                survey_id=wave.survey_id,
                period_start=wave.local_date,
                responses=n,
                suppressed=False,
                questions=await _wave_questions(session, wave, n, params),
            )
        )
    return QuestionsReport(window=window, waves=out)


async def _wave_questions(
    session: AsyncSession, wave: WaveInfo, n: int, params: Params
) -> list[QuestionResult]:
    scores: dict[str, dict[int, int]] = defaultdict(dict)
    for key, score, count in await queries.score_distribution(
        session, wave.id, team=params.team, department=params.department
    ):
        scores[key][score] = count
    choices: dict[str, dict[str, int]] = defaultdict(dict)
    for key, option, count in await queries.choice_counts(
        session, wave.id, team=params.team, department=params.department
    ):
        choices[key][option] = count
    texts: dict[str, list[str]] = defaultdict(list)
    comment_ok = n >= max(wave.comment_min_group_size, wave.min_group_size)
    if comment_ok:
        for key, text in await queries.comments(
            session, wave.id, team=params.team, department=params.department
        ):
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
            result.responses = sum(counts.values()) if kind == "single_choice" else result.responses
        elif kind == "text":
            comments = texts.get(key, [])
            random.shuffle(comments)
            result.responses = len(comments) if comment_ok else 0
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
