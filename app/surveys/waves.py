"""Waves: opening (invite the audience, queue the emails), reminding, closing.

Every step is keyed so it can run twice, or in two workers at once, without doing the
work twice: one wave per (survey, occurrence), one invitation per (wave, employee), one
outbox row per dedupe key, and a reminder round is claimed by moving
``wave.reminders_sent`` from n−1 to n in the transaction that queues its emails."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Integer,
    LargeBinary,
    Select,
    Table,
    Text,
    Uuid,
    bindparam,
    false,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import Database, UTCDateTime, new_id, utcnow
from app.core.errors import Conflict, NotFound
from app.employees.models import Employee
from app.notifications import outbox
from app.notifications import service as notification_service
from app.notifications.models import OutboxMessage
from app.notifications.schemas import DeliveryCounts
from app.scheduling import recurrence
from app.surveys import links
from app.surveys import service as survey_service
from app.surveys.models import Invitation, Survey, Wave, WaveSegment
from app.surveys.schemas import WaveRead

log = logging.getLogger("pulse.waves")

# PostgreSQL invites the audience this many people per statement: large enough that the
# statements' own cost vanishes, small enough to bound the arrays held in memory and to
# let the next chunk's link material be made while one is written.
CHUNK = 10_000
SPARE = 16  # spare link material in the last chunk (see _invite_postgresql)
INVITATION_TABLE = cast(Table, Invitation.__table__)
OUTBOX_TABLE = cast(Table, OutboxMessage.__table__)


def _insert(session: AsyncSession, table: Any) -> Any:
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(table)


def _audience_filter(survey: Survey) -> list[Any]:
    audience = survey.audience or {}
    clauses: list[Any] = [
        Employee.organization_id == survey.organization_id,
        Employee.active.is_(True),
    ]
    if audience.get("teams"):
        clauses.append(Employee.team.in_(audience["teams"]))
    if audience.get("departments"):
        clauses.append(Employee.department.in_(audience["departments"]))
    for name, value in (audience.get("attributes") or {}).items():
        clauses.append(Employee.attributes[name].as_string() == value)
    return clauses


async def open_wave(
    session: AsyncSession,
    survey: Survey,
    occurrence_at: datetime,
    settings: Settings,
    *,
    now: datetime | None = None,
) -> uuid.UUID | None:
    """Open the wave of one occurrence and invite its audience, in the caller's
    transaction. Returns None when that occurrence already has a wave."""
    now = now or utcnow()
    wave_id = new_id()
    inserted = await session.execute(
        _insert(session, Wave)
        .values(
            id=wave_id,
            organization_id=survey.organization_id,
            survey_id=survey.id,
            occurrence_at=occurrence_at,
            opens_at=now,
            closes_at=occurrence_at + timedelta(hours=survey.window_hours),
            status="open",
            questions=survey.questions,
            anonymous=survey.anonymous,
            min_group_size=survey.min_group_size,
            reminders_hours=survey.reminders_hours,
            reminders_sent=0,
            invited=0,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["survey_id", "occurrence_at"])
        .returning(Wave.id)
    )
    if inserted.scalar_one_or_none() is None:
        return None
    invited = await _invite_audience(session, survey, wave_id, settings)
    await session.execute(update(Wave).where(Wave.id == wave_id).values(invited=invited))
    await record_segments(session, wave_id)
    log.info(
        "wave opened",
        extra={"wave_id": str(wave_id), "survey_id": str(survey.id), "invited": invited},
    )
    return wave_id


async def record_segments(session: AsyncSession, wave_id: uuid.UUID) -> None:
    """Write the wave's segment census (WaveSegment) from its invitations: one
    statement, a row per distinct combination of segments."""
    columns = (
        Invitation.wave_id,
        Invitation.team,
        Invitation.department,
        Invitation.manager_id,
        Invitation.attributes,
    )
    census = select(*columns, func.count()).where(Invitation.wave_id == wave_id).group_by(*columns)
    await session.execute(
        insert(WaveSegment).from_select(
            ["wave_id", "team", "department", "manager_id", "attributes", "invited"], census
        )
    )


async def _invite_audience(
    session: AsyncSession, survey: Survey, wave_id: uuid.UUID, settings: Settings
) -> int:
    """Invitations and invitation emails for the whole audience, set-based.

    The rows are built in the database from the directory (``INSERT … SELECT``); only
    what must come from this process does: the ids, salts and link hashes, because the
    signing key never leaves it (it would show in the database's statement logs). Both
    inserts write fresh keys (the wave was created by this transaction), so neither can
    conflict with an earlier row. bench/bench_open_wave.py measures this against a bare
    bulk insert of the same rows."""
    key_id, key = links.current_key(settings)
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        return await _invite_postgresql(session, survey, wave_id, key_id, key, now)
    return await _invite_sqlite(session, survey, wave_id, key_id, key, now)


Shape = Callable[[Select[Any]], Select[Any]]


def _unchanged(query: Select[Any]) -> Select[Any]:
    return query


def _insert_invitations(
    wave_id: uuid.UUID, key_id: str, r: Mapping[str, Any], shape: Shape = _unchanged
) -> Any:
    """``INSERT INTO invitation … SELECT``: ``r`` gives each invitation's ``id``,
    ``employee_id``, ``salt``, ``token_hash`` and segments (team, department,
    manager_id, attributes, locale) as SQL expressions, ``shape`` adds the FROM and
    WHERE they need; the rest is the same for the whole wave."""
    values = {
        "id": r["id"],
        "wave_id": literal(wave_id, Uuid()),
        "employee_id": r["employee_id"],
        "salt": r["salt"],
        "key_id": literal(key_id),
        "token_hash": r["token_hash"],
        "team": r["team"],
        "department": r["department"],
        "manager_id": r["manager_id"],
        "attributes": r["attributes"],
        "locale": r["locale"],
        "answered": false(),
    }
    return insert(INVITATION_TABLE).from_select(list(values), shape(select(*values.values())))


def _insert_invitation_emails(
    survey: Survey,
    wave_id: uuid.UUID,
    now: datetime,
    r: Mapping[str, Any],
    shape: Shape = _unchanged,
) -> Any:
    """``INSERT INTO outbox_message … SELECT`` of the invitation emails, the rows
    ``outbox.enqueue_many`` would queue for them: ``r`` gives each message's ``id``, the
    ``employee`` id spelled as ``str(uuid)``, ``email``, ``name``, ``locale`` and
    ``invitation_id``."""
    values = {
        "id": r["id"],
        "organization_id": literal(survey.organization_id, Uuid()),
        "dedupe_key": literal(f"invite:{wave_id}:").concat(r["employee"]),
        "kind": literal("survey_invitation"),
        "recipient": r["email"],
        "recipient_name": r["name"],
        "locale": r["locale"],
        "about_type": literal("invitation"),
        "about_id": r["invitation_id"],
        "group_id": literal(wave_id, Uuid()),
        "status": literal("pending"),
        "attempts": literal(0),
        "next_attempt_at": literal(now, UTCDateTime()),
        "created_at": literal(now, UTCDateTime()),
        "updated_at": literal(now, UTCDateTime()),
    }
    return insert(OUTBOX_TABLE).from_select(list(values), shape(select(*values.values())))


def _postgresql_invite(survey: Survey, wave_id: uuid.UUID, key_id: str, now: datetime) -> Any:
    """One statement that invites the next ``:size`` people of the audience after
    employee ``:after`` (in id order) and answers how many it invited and the last one.

    The new ids, salts and hashes arrive as arrays and are paired with the people by
    position; the people are never read into Python."""
    audience = (
        select(
            Employee.id,
            Employee.email,
            Employee.name,
            Employee.team,
            Employee.department,
            Employee.manager_id,
            Employee.attributes,
            Employee.locale,
            func.row_number().over(order_by=Employee.id).label("n"),
        )
        .where(*_audience_filter(survey), Employee.id > bindparam("after", type_=Uuid()))
        .order_by(Employee.id)
        .limit(bindparam("size", type_=Integer()))
        .cte("audience")
    )
    material = (
        func.unnest(
            bindparam("ids", type_=postgresql.ARRAY(Uuid())),
            bindparam("salts", type_=postgresql.ARRAY(LargeBinary())),
            bindparam("hashes", type_=postgresql.ARRAY(Text())),
            bindparam("message_ids", type_=postgresql.ARRAY(Uuid())),
        )
        .table_valued("id", "salt", "token_hash", "message_id", with_ordinality="n")
        .render_derived(name="material")
    )
    g = (
        select(
            audience,
            material.c.id.label("invitation_id"),
            material.c.salt,
            material.c.token_hash,
            material.c.message_id,
        )
        .join_from(audience, material, audience.c.n == material.c.n)
        .cte("g")
    )
    invited = _insert_invitations(
        wave_id,
        key_id,
        {
            **g.c,
            "id": g.c.invitation_id,
            "employee_id": g.c.id,
        },
    )
    emailed = _insert_invitation_emails(
        survey,
        wave_id,
        now,
        {**g.c, "id": g.c.message_id, "employee": sql_cast(g.c.id, Text)},
    )
    return (
        select(
            func.count(),
            select(g.c.id).order_by(g.c.n.desc()).limit(1).scalar_subquery(),
        )
        .select_from(g)
        .add_cte(invited.cte("invited"), emailed.cte("emailed"))
    )


async def _invite_postgresql(
    session: AsyncSession,
    survey: Survey,
    wave_id: uuid.UUID,
    key_id: str,
    key: bytes,
    now: datetime,
) -> int:
    """Chunk after chunk of the audience in id order; a thread makes the next chunk's
    ids, salts and hashes while the server writes the current one, so this process's
    share of the work hides behind the server's. The audience is counted first only to
    size the chunks: people who join meanwhile are still invited, as the loop goes on
    until a chunk comes back short."""

    def material(size: int) -> dict[str, Any]:
        ids, salts, hashes = zip(*(links.new_link(key) for _ in range(size)), strict=True)
        return {
            "ids": list(ids),
            "salts": list(salts),
            "hashes": list(hashes),
            "message_ids": [new_id() for _ in range(size)],
            "size": size,
        }

    def size_for(remaining: int) -> int:
        # A little spare in the last chunk, so it comes back short and ends the loop
        # without one more statement to find nobody left.
        return CHUNK if remaining > CHUNK else max(remaining, 0) + SPARE

    expected = await _audience_size(session, survey)
    statement = _postgresql_invite(survey, wave_id, key_id, now)
    total, after = 0, uuid.UUID(int=0)
    ready = await asyncio.to_thread(material, size_for(expected))
    while True:
        result, upcoming = await asyncio.gather(
            session.execute(statement, {**ready, "after": after}),
            asyncio.to_thread(material, size_for(expected - total - ready["size"])),
        )
        written, last = result.one()
        total += int(written)
        if written < ready["size"]:
            return total
        ready, after = upcoming, last


async def _audience_size(session: AsyncSession, survey: Survey) -> int:
    return int(
        (await session.execute(select(func.count()).where(*_audience_filter(survey)))).scalar_one()
    )


def _hyphenated(hex_id: Any) -> Any:
    """SQLite keeps a UUID as 32 hex digits; the dedupe key spells it as ``str(uuid)``."""
    parts = [(1, 8), (9, 4), (13, 4), (17, 4), (21, 12)]
    pieces: list[Any] = [func.substr(hex_id, start, length) for start, length in parts]
    return functools.reduce(lambda left, right: left.concat("-").concat(right), pieces)


@contextlib.asynccontextmanager
async def _sqlite_functions(
    session: AsyncSession, functions: dict[str, Callable[[], Any]]
) -> AsyncIterator[None]:
    """SQL functions on the session's SQLite connection for the duration of the block.
    After it each is replaced by one that refuses (Python's sqlite3 cannot unregister a
    function), so no closure, and no key in it, outlives its use."""

    def refuse() -> None:
        raise RuntimeError("this SQL function exists only while a wave opens")

    def register(sync_session: Any, table: Mapping[str, Callable[[], Any]]) -> None:
        dbapi = sync_session.connection().connection.dbapi_connection
        for name, function in table.items():
            dbapi.create_function(name, 0, function)

    await session.run_sync(register, functions)
    try:
        yield
    finally:
        try:
            await session.run_sync(register, dict.fromkeys(functions, refuse))
        except Exception:
            # The connection would keep the closure holding the key: drop it.
            log.warning("could not remove SQL functions; closing the connection", exc_info=True)
            with contextlib.suppress(Exception):  # already unusable, then
                await (await session.connection()).invalidate()


async def _invite_sqlite(
    session: AsyncSession,
    survey: Survey,
    wave_id: uuid.UUID,
    key_id: str,
    key: bytes,
    now: datetime,
) -> int:
    """SQLite runs in this process, so the values Python must make come from SQL
    functions registered on the connection for these statements: two statements, no row
    crosses into Python."""

    def link_material() -> bytes:
        row_id, salt, token_hash = links.new_link(key)
        return row_id.bytes + salt + token_hash.encode()

    functions = {"pulse_link_material": link_material, "pulse_new_id": lambda: new_id().hex}
    async with _sqlite_functions(session, functions):
        # MATERIALIZED: each row's material is made once and then split into id, salt and
        # hash; a flattened subquery would call the function once per use. In employee id
        # order the invitation indexes on employee_id fill in order; with the directory's
        # statistics (employees.service.bulk_insert) SQLite reads the primary key index for
        # it instead of sorting, which measured 25 % faster for 100,000 employees.
        g = (
            select(
                func.pulse_link_material().label("material"),
                Employee.id,
                Employee.team,
                Employee.department,
                Employee.manager_id,
                Employee.attributes,
                Employee.locale,
            )
            .where(*_audience_filter(survey))
            .order_by(Employee.id)
            .cte("g")
            .prefix_with("MATERIALIZED")
        )
        await session.execute(
            _insert_invitations(
                wave_id,
                key_id,
                {
                    **g.c,
                    "id": func.lower(func.hex(func.substr(g.c.material, 1, 16))),
                    "employee_id": g.c.id,
                    "salt": func.substr(g.c.material, 17, 16),
                    "token_hash": sql_cast(func.substr(g.c.material, 33), Text),
                },
            )
        )
        await session.execute(
            _insert_invitation_emails(
                survey,
                wave_id,
                now,
                {
                    "id": func.pulse_new_id(),
                    "employee": _hyphenated(Employee.id),
                    "email": Employee.email,
                    "name": Employee.name,
                    "locale": Employee.locale,
                    "invitation_id": Invitation.id,
                },
                lambda query: query.join_from(
                    Invitation, Employee, Employee.id == Invitation.employee_id
                ).where(Invitation.wave_id == wave_id),
            )
        )
        # (The driver reports no row count for a statement that starts with WITH.)
        invited = select(func.count()).where(Invitation.wave_id == wave_id)
        return (await session.execute(invited)).scalar_one()


async def open_due_waves(db: Database, settings: Settings) -> int:
    """Worker step: open the wave of every active survey whose next opening has come.

    After downtime only the latest missed occurrence opens, and only while its window
    is still open (architecture.md, "Pulse surveys")."""
    now = utcnow()
    opened = 0
    async with db.sessionmaker() as session:
        due = (
            (
                await session.execute(
                    select(Survey.id).where(
                        Survey.status == "active", Survey.next_opening_at <= now
                    )
                )
            )
            .scalars()
            .all()
        )
    for survey_id in due:
        # One survey per transaction, and one survey's failure (a rule that no longer
        # parses, a database error) is logged and rolled back whole without keeping the
        # surveys after it from opening.
        try:
            async with db.sessionmaker() as session, session.begin():
                if await _open_due_wave(session, survey_id, now, settings):
                    opened += 1
        except Exception:
            log.exception("could not open the due wave", extra={"survey_id": str(survey_id)})
    return opened


async def _open_due_wave(
    session: AsyncSession, survey_id: uuid.UUID, now: datetime, settings: Settings
) -> bool:
    """Open the latest due occurrence of one survey, if its window is still open, and
    move the survey's next opening past ``now``; True when a wave opened."""
    query = select(Survey).where(
        Survey.id == survey_id, Survey.status == "active", Survey.next_opening_at <= now
    )
    if session.get_bind().dialect.name == "postgresql":
        # Another worker on the same survey skips it instead of waiting.
        query = query.with_for_update(skip_locked=True)
    survey = (await session.execute(query)).scalar_one_or_none()
    if survey is None or survey.next_opening_at is None:
        return False
    if survey.rrule is None or survey.starts_at is None:
        survey.next_opening_at = None  # no schedule left: stop finding it due every tick
        return False
    latest = recurrence.latest_between(
        survey.rrule,
        survey.starts_at,
        survey.timezone,
        survey.next_opening_at - timedelta(microseconds=1),
        now,
    )
    opened = False
    if latest is not None and latest + timedelta(hours=survey.window_hours) > now:
        opened = await open_wave(session, survey, latest, settings) is not None
    elif latest is not None:
        log.warning(
            "missed occurrence not opened: its window has passed",
            extra={"survey_id": str(survey.id), "occurrence": latest.isoformat()},
        )
    survey.next_opening_at = survey_service.next_opening(survey, now)
    return opened


async def open_wave_now(
    session: AsyncSession, org_id: uuid.UUID, survey_id: uuid.UUID, settings: Settings
) -> Wave:
    """Open a wave outside the schedule (``POST /v1/surveys/{id}/waves``)."""
    survey = await survey_service.get_survey(session, org_id, survey_id)
    if survey.status in ("archived",):
        raise Conflict("an archived survey opens no waves", code="survey_archived")
    # One clock reading for occurrence and opening, so the window is exactly window_hours.
    now = utcnow()
    wave_id = await open_wave(session, survey, now, settings, now=now)
    if wave_id is None:  # two requests in the same microsecond
        raise Conflict(
            "a wave was opened for this survey at this very moment; retry", code="wave_exists"
        )
    return await get_wave(session, org_id, wave_id)


async def send_reminders(db: Database, settings: Settings) -> int:
    """Worker step: queue the next reminder round of every open wave that is due one,
    to invitees who have not answered.

    Offsets count from when the wave opened (its invitations went out), not from its
    scheduled occurrence: a missed occurrence opened late must not send its invitation
    and an overdue reminder in the same minute."""
    now = utcnow()
    queued = 0
    async with db.sessionmaker() as session:
        waves = (
            await session.execute(
                select(Wave.id, Wave.opens_at, Wave.reminders_hours, Wave.reminders_sent).where(
                    Wave.status == "open", Wave.closes_at > now
                )
            )
        ).all()
    for wave_id, opens_at, hours, sent in waves:
        due_rounds = [
            i for i, h in enumerate(hours or [], start=1) if opens_at + timedelta(hours=h) <= now
        ]
        if not due_rounds or due_rounds[-1] <= sent:
            continue
        round_no = due_rounds[-1]  # a worker that was down sends one round, the latest
        try:
            async with db.sessionmaker() as session, session.begin():
                claimed = await session.execute(
                    update(Wave)
                    .where(Wave.id == wave_id, Wave.reminders_sent == sent, Wave.status == "open")
                    .values(reminders_sent=round_no)
                )
                if getattr(claimed, "rowcount", 0) != 1:
                    continue  # another worker took this round
                queued += await _queue_reminders(session, wave_id, round_no)
        except Exception:
            log.exception("could not queue reminders", extra={"wave_id": str(wave_id)})
    return queued


async def _queue_reminders(session: AsyncSession, wave_id: uuid.UUID, round_no: int) -> int:
    rows = (
        await session.execute(
            select(
                Invitation.id,
                Employee.email,
                Employee.name,
                Invitation.locale,
                Wave.organization_id,
            )
            .join(Employee, Employee.id == Invitation.employee_id)
            .join(Wave, Wave.id == Invitation.wave_id)
            .where(
                Invitation.wave_id == wave_id,
                Invitation.answered.is_(False),
                Employee.active.is_(True),
            )
        )
    ).all()
    await outbox.enqueue_many(
        session,
        [
            {
                "organization_id": r.organization_id,
                "dedupe_key": f"remind:{wave_id}:{r.id}:{round_no}",
                "kind": "survey_reminder",
                "recipient": r.email,
                "recipient_name": r.name,
                "locale": r.locale,
                "about_type": "invitation",
                "about_id": r.id,
                "group_id": wave_id,
            }
            for r in rows
        ],
    )
    return len(rows)


async def close_due_waves(db: Database, settings: Settings) -> int:
    """Worker step: close every open wave whose window has ended."""
    now = utcnow()
    async with db.sessionmaker() as session, session.begin():
        result = await session.execute(
            update(Wave)
            .where(Wave.status == "open", Wave.closes_at <= now)
            .values(status="closed", closed_at=now)
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def close_wave(session: AsyncSession, org_id: uuid.UUID, wave_id: uuid.UUID) -> Wave:
    """Close a wave early; its links answer 410 from now on."""
    wave = await _get_wave_row(session, org_id, wave_id)
    if wave.status == "open":
        wave.status = "closed"
        wave.closed_at = utcnow()
        await session.flush()
    return await get_wave(session, org_id, wave_id)


async def _get_wave_row(session: AsyncSession, org_id: uuid.UUID, wave_id: uuid.UUID) -> Wave:
    wave = await session.get(Wave, wave_id)
    if wave is None or wave.organization_id != org_id:
        raise NotFound(f"no wave with id {wave_id}")
    return wave


async def _responded(session: AsyncSession, wave_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        select(Invitation.wave_id, func.count())
        .where(Invitation.wave_id.in_(wave_ids), Invitation.answered.is_(True))
        .group_by(Invitation.wave_id)
    )
    return {w: n for w, n in rows.all()}


async def to_reads(session: AsyncSession, waves: Sequence[Wave]) -> list[WaveRead]:
    ids = [w.id for w in waves]
    responded = await _responded(session, ids)
    deliveries = await notification_service.delivery_counts(session, ids)
    out = []
    for w in waves:
        n = responded.get(w.id, 0)
        counts = deliveries.get(w.id)
        out.append(
            WaveRead(
                id=w.id,
                survey_id=w.survey_id,
                opens_at=w.opens_at,
                closes_at=w.closes_at,
                closed_at=w.closed_at,
                status=w.status,
                invited=w.invited,
                responded=n,
                response_rate=round(n / w.invited, 3) if w.invited else None,
                deliveries=(
                    counts or DeliveryCounts(queued=0, sent=0, failed=0, cancelled=0)
                ).model_dump(),
            )
        )
    return out


async def get_wave(session: AsyncSession, org_id: uuid.UUID, wave_id: uuid.UUID) -> Wave:
    return await _get_wave_row(session, org_id, wave_id)


async def list_waves(
    session: AsyncSession,
    org_id: uuid.UUID,
    survey_id: uuid.UUID,
    *,
    limit: int,
    after: uuid.UUID | None,
) -> Sequence[Wave]:
    await survey_service.get_survey(session, org_id, survey_id)
    query = select(Wave).where(Wave.survey_id == survey_id)
    if after is not None:
        query = query.where(Wave.id > after)
    return (await session.execute(query.order_by(Wave.id).limit(limit + 1))).scalars().all()
