"""The SQL behind reports: counts per wave and segment, computed by the database.

Each count query groups by (wave, the segments asked for) with conditional counts and
returns a few rows per wave; nothing here loads individual answers. Filters on team and
department are *not* applied here for the counts: suppression must judge a filtered
cell inside the whole organization's breakdown (service.py), so the service asks for
the segments it needs and filters the rows itself. Periods (week, month, quarter) are
assigned per wave in Python from the wave's occurrence, which is exact across
daylight-saving changes on SQLite too, where the database has no time zones."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, case, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.surveys.models import Answer, Invitation, Response, WaveSegment

# One row: the wave, one value per segment asked for (in order), then the counts.
CountRow = tuple[Any, ...]


def segment_expr(model: Any, name: str) -> Any:
    """The column of a response or invitation for a segment name: ``team``,
    ``department``, ``manager`` or ``attribute:<name>``."""
    if name == "manager":
        return model.manager_id
    if name in ("team", "department"):
        return getattr(model, name)
    return model.attributes[name.removeprefix("attribute:")].as_string()


def _by_wave_and(
    wave_column: Any, model: Any, segments: Sequence[str], counts: Sequence[Any]
) -> Select[Any]:
    """SELECT wave, *segments, *counts … GROUP BY wave and segments. Grouped by
    position: PostgreSQL matches a GROUP BY expression to the select list textually,
    and an attribute lookup bound twice ($1, $2) would never match itself."""
    columns = [segment_expr(model, s) for s in segments]
    positions: list[Any] = [literal_column(str(i + 1)) for i in range(len(columns) + 1)]
    return select(wave_column, *columns, *counts).group_by(*positions)


async def enps_counts(
    session: AsyncSession, wave_ids: Sequence[uuid.UUID], segments: Sequence[str]
) -> list[CountRow]:
    """(wave_id, *segments, promoters, passives, detractors) over every eNPS answer."""
    if not wave_ids:
        return []
    counts = [
        func.count(case((Answer.score >= 9, 1))),
        func.count(case((Answer.score.between(7, 8), 1))),
        func.count(case((Answer.score <= 6, 1))),
    ]
    query = _by_wave_and(Answer.wave_id, Response, segments, counts).where(
        Answer.wave_id.in_(wave_ids), Answer.kind == "enps", Answer.score.is_not(None)
    )
    if segments:
        # Without segments the covering index on answer(wave_id, kind, score) answers
        # alone; the join is paid only when a segment is asked for.
        query = query.join(Response, Response.id == Answer.response_id)
    return [tuple(r) for r in (await session.execute(query)).all()]


async def census_cells(
    session: AsyncSession, wave_ids: Sequence[uuid.UUID], segments: Sequence[str]
) -> list[CountRow]:
    """(wave_id, *segments, invited) from the waves' segment census: every group each
    wave invited, whether or not anyone in it answered. A few rows per wave."""
    if not wave_ids:
        return []
    query = _by_wave_and(
        WaveSegment.wave_id, WaveSegment, segments, [func.sum(WaveSegment.invited)]
    ).where(WaveSegment.wave_id.in_(wave_ids))
    return [tuple(r) for r in (await session.execute(query)).all()]


async def participation_counts(
    session: AsyncSession, wave_ids: Sequence[uuid.UUID], segments: Sequence[str]
) -> list[CountRow]:
    """(wave_id, *segments, invited, responded) from the invitations' segment snapshots."""
    if not wave_ids:
        return []
    counts = [func.count(), func.count(case((Invitation.answered.is_(True), 1)))]
    query = _by_wave_and(Invitation.wave_id, Invitation, segments, counts).where(
        Invitation.wave_id.in_(wave_ids)
    )
    return [tuple(r) for r in (await session.execute(query)).all()]


async def response_counts(
    session: AsyncSession, wave_ids: Sequence[uuid.UUID], segments: Sequence[str]
) -> list[CountRow]:
    """(wave_id, *segments, responses): respondents per wave and segment."""
    if not wave_ids:
        return []
    query = _by_wave_and(Response.wave_id, Response, segments, [func.count()]).where(
        Response.wave_id.in_(wave_ids)
    )
    return [tuple(r) for r in (await session.execute(query)).all()]


def _filters(model: Any, team: str | None, department: str | None) -> list[Any]:
    out = []
    if team is not None:
        out.append(model.team == team)
    if department is not None:
        out.append(model.department == department)
    return out


async def score_distribution(
    session: AsyncSession, wave_id: uuid.UUID, *, team: str | None, department: str | None
) -> list[tuple[str, int, int]]:
    """(question_key, score, count) for every scored answer of a wave."""
    query = (
        select(Answer.question_key, Answer.score, func.count())
        .join(Response, Response.id == Answer.response_id)
        .where(
            Answer.wave_id == wave_id,
            Answer.score.is_not(None),
            *_filters(Response, team, department),
        )
        .group_by(Answer.question_key, Answer.score)
    )
    return [
        (k, int(s), int(n)) for k, s, n in (await session.execute(query)).all() if s is not None
    ]


async def answer_counts(
    session: AsyncSession, wave_id: uuid.UUID, *, team: str | None, department: str | None
) -> dict[str, int]:
    """question_key → how many people answered it (a multiple choice answer names
    several options, so its option counts do not add up to this)."""
    query = (
        select(Answer.question_key, func.count())
        .join(Response, Response.id == Answer.response_id)
        .where(Answer.wave_id == wave_id, *_filters(Response, team, department))
        .group_by(Answer.question_key)
    )
    return {k: int(n) for k, n in (await session.execute(query)).all()}


async def choice_counts(
    session: AsyncSession, wave_id: uuid.UUID, *, team: str | None, department: str | None
) -> list[tuple[str, str, int]]:
    """(question_key, option, count): the JSON list of choices unnested by the database."""
    dialect = session.get_bind().dialect.name
    postgres = dialect == "postgresql"
    unnest = (
        "jsonb_array_elements_text(a.choices) AS c(value)"
        if postgres
        else "json_each(a.choices) AS c"
    )
    # Other answers hold a JSON null here (the column stores None as 'null', not SQL
    # NULL), which PostgreSQL refuses to unnest: only choice answers' arrays are read.
    json_type = "jsonb_typeof" if postgres else "json_type"
    where = [
        "a.wave_id = :wave_id",
        "a.kind IN ('single_choice', 'multi_choice')",
        f"{json_type}(a.choices) = 'array'",
    ]
    params: dict[str, Any] = {"wave_id": wave_id if postgres else wave_id.hex}
    if team is not None:
        where.append("r.team = :team")
        params["team"] = team
    if department is not None:
        where.append("r.department = :department")
        params["department"] = department
    sql = text(
        f"SELECT a.question_key, c.value, count(*) FROM answer a "
        f"JOIN response r ON r.id = a.response_id, {unnest} "
        f"WHERE {' AND '.join(where)} GROUP BY a.question_key, c.value"
    )
    return [(k, str(v), int(n)) for k, v, n in (await session.execute(sql, params)).all()]


async def comments(
    session: AsyncSession, wave_id: uuid.UUID, *, team: str | None, department: str | None
) -> list[tuple[str, str]]:
    """(question_key, text) of a wave's free-text answers, in no particular order (the
    report shuffles them)."""
    query = (
        select(Answer.question_key, Answer.text)
        .join(Response, Response.id == Answer.response_id)
        .where(
            Answer.wave_id == wave_id,
            Answer.text.is_not(None),
            *_filters(Response, team, department),
        )
    )
    return [(k, t) for k, t in (await session.execute(query)).all() if t is not None]
