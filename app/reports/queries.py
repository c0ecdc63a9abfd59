"""The SQL behind reports: counts per wave and group, computed by the database.

Each query groups by (wave, segment) with conditional counts and returns a few rows per
wave; nothing here loads individual answers. Periods (week, month, quarter) are then
assigned per wave (see service.py): a wave's occurrence decides its period, which is exact
across daylight-saving changes on SQLite too, where the database has no time zones."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, case, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.surveys.models import Answer, Invitation, Response

GROUPS = ("team", "department", "manager")


def group_expr(model: Any, group_by: str | None) -> Any:
    """The segment column of a response or invitation for a ``group_by`` value."""
    if group_by is None:
        return literal(None)
    if group_by == "manager":
        return model.manager_id
    if group_by in ("team", "department"):
        return getattr(model, group_by)
    name = group_by.removeprefix("attribute:")
    return model.attributes[name].as_string()


def _filters(model: Any, team: str | None, department: str | None) -> list[Any]:
    out = []
    if team is not None:
        out.append(model.team == team)
    if department is not None:
        out.append(model.department == department)
    return out


async def enps_counts(
    session: AsyncSession,
    wave_ids: Sequence[uuid.UUID],
    *,
    group_by: str | None,
    team: str | None,
    department: str | None,
) -> list[tuple[uuid.UUID, Any, int, int, int]]:
    """(wave_id, group, promoters, passives, detractors) for every eNPS answer."""
    if not wave_ids:
        return []
    group = group_expr(Response, group_by)
    query: Select[Any] = (
        select(
            Answer.wave_id,
            group.label("grp"),
            func.count(case((Answer.score >= 9, 1))),
            func.count(case((Answer.score.between(7, 8), 1))),
            func.count(case((Answer.score <= 6, 1))),
        )
        .join(Response, Response.id == Answer.response_id)
        .where(
            Answer.wave_id.in_(wave_ids),
            Answer.kind == "enps",
            Answer.score.is_not(None),
            *_filters(Response, team, department),
        )
        .group_by(Answer.wave_id, group)
    )
    return [tuple(r) for r in (await session.execute(query)).all()]


async def participation_counts(
    session: AsyncSession,
    wave_ids: Sequence[uuid.UUID],
    *,
    group_by: str | None,
    team: str | None,
    department: str | None,
) -> list[tuple[uuid.UUID, Any, int, int]]:
    """(wave_id, group, invited, responded) from the invitations' segment snapshots."""
    if not wave_ids:
        return []
    group = group_expr(Invitation, group_by)
    query: Select[Any] = (
        select(
            Invitation.wave_id,
            group.label("grp"),
            func.count(),
            func.count(case((Invitation.answered.is_(True), 1))),
        )
        .where(Invitation.wave_id.in_(wave_ids), *_filters(Invitation, team, department))
        .group_by(Invitation.wave_id, group)
    )
    return [tuple(r) for r in (await session.execute(query)).all()]


async def response_counts(
    session: AsyncSession,
    wave_ids: Sequence[uuid.UUID],
    *,
    team: str | None,
    department: str | None,
) -> dict[uuid.UUID, int]:
    if not wave_ids:
        return {}
    query = (
        select(Response.wave_id, func.count())
        .where(Response.wave_id.in_(wave_ids), *_filters(Response, team, department))
        .group_by(Response.wave_id)
    )
    return {w: n for w, n in (await session.execute(query)).all()}


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


async def choice_counts(
    session: AsyncSession, wave_id: uuid.UUID, *, team: str | None, department: str | None
) -> list[tuple[str, str, int]]:
    """(question_key, option, count): the JSON list of choices unnested by the database."""
    dialect = session.get_bind().dialect.name
    unnest = (
        "jsonb_array_elements_text(a.choices) AS c(value)"
        if dialect == "postgresql"
        else "json_each(a.choices) AS c"
    )
    where = ["a.wave_id = :wave_id", "a.choices IS NOT NULL"]
    params: dict[str, Any] = {"wave_id": wave_id if dialect == "postgresql" else wave_id.hex}
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
    """(question_key, text) of a wave's free-text answers, in random order."""
    query = (
        select(Answer.question_key, Answer.text)
        .join(Response, Response.id == Answer.response_id)
        .where(
            Answer.wave_id == wave_id,
            Answer.text.is_not(None),
            *_filters(Response, team, department),
        )
        .order_by(func.random())
    )
    return [(k, t) for k, t in (await session.execute(query)).all() if t is not None]
