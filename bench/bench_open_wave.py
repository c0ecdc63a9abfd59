"""Opening a wave for N employees, beside a bare bulk insert of the same rows.

Target (architecture.md, "Performance and scale targets"): opening a wave for 100,000
employees (invitations + outbox rows) takes ≤ 1.5 × a bare bulk insert of the same rows
into the same database, and the worker's peak memory stays ≤ 300 MB.

What runs, per backend (SQLite file and/or PostgreSQL):

* Setup (not timed): a fresh database migrated to head, as a deploy would; one
  organization (``get_or_create_organization``); N active employees inserted with
  ``employees.service.bulk_insert`` in rows shaped like the demo's ``build_employees``
  (UUIDv7 ids, a lower-cased ``email_key``, 10 departments × 10 teams, a manager
  chain, locales en/fr/ar, three attributes); one active survey of 2 questions with a
  120 h window whose audience is everyone. ``bulk_insert`` refreshes SQLite's
  statistics of the directory, as an import does (docs/decisions/0009); PostgreSQL gets
  a VACUUM ANALYZE after the load, as autovacuum would.
* Subject, in a child process (spawned, so its peak RSS is its own): the survey is
  loaded and the engine connected, then ``waves.open_wave(session, survey,
  occurrence_at, settings)`` is timed inside one ``async with db.sessionmaker() as
  session, session.begin()``, the commit included. Peak memory is the child's VmHWM
  at its end (not ``ru_maxrss``, which on Linux keeps the parent's high-water mark
  across spawn's exec: see ``peak_rss_mb``); the RSS just before ``open_wave`` is
  shown beside it.
* Baseline, in a child process too, into the same tables of the same database: the
  audience is read and the rows built first (not timed; both are shown apart), with the
  values the service writes (UUIDv7 ids, 16-byte salts, HMAC-SHA-256 token hashes,
  segments JSON, ``invite:<wave>:<employee>`` dedupe keys, the same timestamps), and a
  wave row is committed for them. Timed: N invitation rows + N outbox_message rows in
  one transaction, commit included. SQLite: the ``sqlite3`` module's ``executemany``
  with the app's PRAGMAs (WAL, foreign_keys=ON, synchronous=NORMAL). PostgreSQL:
  asyncpg ``copy_records_to_table``.
* Between runs (not timed) the invitation, outbox_message and wave tables are emptied
  (SQLite: DELETE + WAL checkpoint; PostgreSQL: TRUNCATE + CHECKPOINT), so every run
  writes into the same, empty tables beside the same N employees. Each run uses its own
  occurrence_at. Baseline and subject alternate (B S, S B, B S, ...) and medians are
  reported. When the projected time exceeds ``--budget`` seconds, fewer rounds run and
  the output says so.
* Diagnostics beside the targets: each child's CPU time over its timed part (on SQLite
  that includes the database's work, which runs in-process; it is steadier than wall
  time on a busy machine), and the baseline's untimed read + build times, which show
  what reading the audience and building the rows in plain Python costs on its own.
* ``--profile`` adds one subject run per backend under cProfile (not counted) and
  prints where the time goes.

Exit status 1 when a target or a correctness check fails.

    .venv/bin/python bench/bench_open_wave.py                   # N=100,000, 3 rounds
    .venv/bin/python bench/bench_open_wave.py --n 10000 --backend sqlite --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import multiprocessing as mp
import os
import pstats
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchdb import fresh_database, pg_dsn, pg_exec, postgres_unreachable, sqlite_path

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
ORG_NAME = "Bench Org"
SECRET = "bench-secret-key-0123456789abcdef0123456789"
TARGET_RATIO = 1.5
TARGET_MB = 300.0
DEPARTMENTS = 10
TEAMS_PER_DEPARTMENT = 10
INSERT_BATCH = 10_000  # employees per bulk_insert call during setup

INVITATION_COLUMNS = (
    "id",
    "wave_id",
    "employee_id",
    "salt",
    "key_id",
    "token_hash",
    "team",
    "department",
    "manager_id",
    "attributes",
    "locale",
    "answered",
)
# The columns enqueue_many sets; the others (lease_until, last_reply, sent_at) stay NULL.
OUTBOX_COLUMNS = (
    "id",
    "organization_id",
    "dedupe_key",
    "kind",
    "recipient",
    "recipient_name",
    "locale",
    "about_type",
    "about_id",
    "group_id",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
    "updated_at",
)


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def mb(kib: float) -> float:
    return kib / 1024.0


def rss_now_mb() -> float:
    """Current resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return mb(float(line.split()[1]))
    except OSError:
        pass
    return 0.0


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM, the high-water mark of its own address space.

    Not ``ru_maxrss``: on Linux a spawned child's ``ru_maxrss`` keeps the high-water
    mark of the parent it was forked from across the exec (the parent holds the whole
    directory while seeding), so it would report the parent's peak, not the worker's.
    ``ru_maxrss`` is the fallback where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return mb(float(line.split()[1]))
    except OSError:
        pass
    return mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


# --------------------------------------------------------------------------- databases


def empty_wave_tables(backend: str, url: str) -> None:
    """Remove every run's rows so the next run writes into the same, empty tables."""
    if backend == "sqlite":
        con = sqlite3.connect(sqlite_path(url), isolation_level=None)
        try:
            con.execute("BEGIN")
            con.execute("DELETE FROM invitation")
            con.execute("DELETE FROM outbox_message")
            con.execute("DELETE FROM wave_segment")
            con.execute("DELETE FROM wave")
            con.execute("COMMIT")
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.close()
        return
    asyncio.run(
        pg_exec(
            url,
            "TRUNCATE invitation, outbox_message, answer, response, wave_segment, wave",
            "CHECKPOINT",
        )
    )


# --------------------------------------------------------------------------- setup


def build_employees(org_id: uuid.UUID, n: int) -> list[dict[str, Any]]:
    """N employee rows shaped like app/demo/data.py build_employees: a CEO, department
    heads, team leads, then members, managers always before their reports."""
    from app.core.db import new_id
    from app.demo.data import ARABIC, ENGLISH, FRENCH, LOCATIONS, ZONES

    names = {"en": ENGLISH, "fr": FRENCH, "ar": ARABIC}
    locales = ("en", "en", "fr", "ar")
    rows: list[dict[str, Any]] = []

    def person(team: str | None, department: str | None, manager: Any, level: str) -> Any:
        i = len(rows)
        locale = locales[i % len(locales)]
        name = names[locale][i % len(names[locale])]
        if locale == "ar":
            email = f"Employee{i:07d}@Bench.Example.com"
        else:
            ascii_name = name.replace("é", "e").replace("è", "e").replace(" ", ".")
            email = f"{ascii_name}.{i}@Bench.Example.com"
        row_id = new_id()
        rows.append(
            {
                "id": row_id,
                "organization_id": org_id,
                "email": email,
                "email_key": email.lower(),
                "name": name,
                "team": team,
                "department": department,
                "manager_id": manager,
                "locale": locale,
                "timezone": ZONES[locale],
                "attributes": {
                    "location": LOCATIONS[locale],
                    "level": level,
                    "cohort": str(2015 + i % 10),
                },
                "active": True,
            }
        )
        return row_id

    ceo = person(None, None, None, "executive")
    leads: list[tuple[str, str, Any]] = []
    for d in range(DEPARTMENTS):
        department = f"Department {d + 1}"
        head = person(None, department, ceo, "director")
        for t in range(TEAMS_PER_DEPARTMENT):
            team = f"Team {d + 1}.{t + 1}"
            leads.append((team, department, person(team, department, head, "manager")))
    i = 0
    while len(rows) < n:
        team, department, lead = leads[i % len(leads)]
        person(team, department, lead, "individual")
        i += 1
    return rows[:n]


async def seed(url: str, n: int) -> tuple[uuid.UUID, uuid.UUID]:
    """Organization, N employees and the survey; returns (organization id, survey id)."""
    from app.core.db import Database, utcnow
    from app.demo.surveys import QUESTIONS, RULE, TIMEZONE
    from app.employees import service as employee_service
    from app.organizations import service as organization_service
    from app.surveys.models import Survey

    db = Database.from_url(url)
    try:
        async with db.sessionmaker() as session, session.begin():
            org = await organization_service.get_or_create_organization(session, ORG_NAME)
            rows = build_employees(org.id, n)
            for lo in range(0, len(rows), INSERT_BATCH):
                await employee_service.bulk_insert(session, rows[lo : lo + INSERT_BATCH])
            survey = Survey(
                organization_id=org.id,
                name="Bench pulse",
                status="active",
                anonymous=True,
                min_group_size=5,
                comment_min_group_size=5,
                questions=QUESTIONS[:2],
                rrule=RULE,
                timezone=TIMEZONE,
                starts_at=utcnow(),
                window_hours=120,
                reminders_hours=[48, 96],
                audience={"teams": [], "departments": [], "attributes": {}},
            )
            session.add(survey)
            await session.flush()
            return org.id, survey.id
    finally:
        await db.dispose()


# --------------------------------------------------------------------------- children


def child_main(kind: str, params: dict[str, Any], conn: Any) -> None:
    """Entry point of a spawned child: run one subject or baseline, send back a dict."""
    try:
        runner = subject_run if kind == "subject" else baseline_run
        result = asyncio.run(runner(params))
        result["peak_mb"] = peak_rss_mb()
        conn.send(result)
    except BaseException:
        conn.send({"error": traceback.format_exc()})
    finally:
        conn.close()


def make_settings(url: str) -> Any:
    from pydantic import SecretStr

    from app.core.config import Settings

    return Settings(_env_file=None, database_url=url, secret_key=SecretStr(SECRET))


async def subject_run(p: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import func, select

    from app.core.db import Database
    from app.notifications.models import OutboxMessage
    from app.surveys.models import Invitation, Survey, Wave
    from app.surveys.waves import open_wave

    settings = make_settings(p["url"])
    db = Database.from_url(p["url"])
    try:
        async with db.sessionmaker() as session:  # connects the pool, loads the survey
            survey = await session.get(Survey, uuid.UUID(p["survey_id"]))
            assert survey is not None
        occurrence_at = datetime.fromisoformat(p["occurrence_at"])
        rss_before = rss_now_mb()
        profiler = cProfile.Profile() if p.get("profile") else None
        cpu = time.process_time()
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        async with db.sessionmaker() as session, session.begin():
            wave_id = await open_wave(session, survey, occurrence_at, settings)
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        if profiler is not None:
            profiler.dump_stats(p["profile"])
        assert wave_id is not None
        async with db.sessionmaker() as session:
            invitations = await session.scalar(
                select(func.count()).select_from(Invitation).where(Invitation.wave_id == wave_id)
            )
            messages = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.group_id == wave_id)
            )
            invited = await session.scalar(select(Wave.invited).where(Wave.id == wave_id))
    finally:
        await db.dispose()
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "rss_before_mb": rss_before,
        "rows": (invitations, messages, invited),
    }


def build_rows(
    employees: list[tuple[Any, ...]],
    wave_id: uuid.UUID,
    org_id: uuid.UUID,
    settings: Any,
    now: Any,
    as_uuid: Callable[[uuid.UUID], Any],
    false: Any,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Invitation and outbox rows with the values open_wave writes, already in the
    driver's form: ``as_uuid`` maps a UUID (``.hex`` for SQLite, as SQLAlchemy stores
    it; itself for asyncpg), ``now`` is the timestamp as bound, ``false`` the boolean.
    Employees come as (id, email, name, team, department, manager_id, attributes JSON
    text, locale) with ids as UUIDs; the attributes are parsed and serialized again, as
    the service must."""
    from app.core.db import new_id
    from app.surveys import links

    key_id, key = links.current_key(settings)
    wave = as_uuid(wave_id)
    org = as_uuid(org_id)
    invitations: list[tuple[Any, ...]] = []
    messages: list[tuple[Any, ...]] = []
    for emp_id, email, name, team, department, manager_id, attrs, locale in employees:
        inv_id = new_id()
        salt = links.new_salt()
        token_hash = links.hash_token(links.make_token(key, inv_id, salt))
        inv = as_uuid(inv_id)
        invitations.append(
            (
                inv,
                wave,
                as_uuid(emp_id),
                salt,
                key_id,
                token_hash,
                team,
                department,
                None if manager_id is None else as_uuid(manager_id),
                json.dumps(json.loads(attrs)),
                locale,
                false,
            )
        )
        messages.append(
            (
                as_uuid(new_id()),
                org,
                f"invite:{wave_id}:{emp_id}",
                "survey_invitation",
                email,
                name,
                locale,
                "invitation",
                inv,
                wave,
                "pending",
                0,
                now,
                now,
                now,
            )
        )
    return invitations, messages


def wave_values(p: dict[str, Any], wave_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    occurrence_at = datetime.fromisoformat(p["occurrence_at"])
    return {
        "id": wave_id,
        "organization_id": uuid.UUID(p["org_id"]),
        "survey_id": uuid.UUID(p["survey_id"]),
        "occurrence_at": occurrence_at,
        "opens_at": now,
        "closes_at": occurrence_at + timedelta(hours=120),
        "status": "open",
        "questions": json.dumps(p["questions"]),
        "anonymous": True,
        "min_group_size": 5,
        "reminders_hours": json.dumps([48, 96]),
        "reminders_sent": 0,
        "invited": 0,
        "created_at": now,
    }


async def baseline_run(p: dict[str, Any]) -> dict[str, Any]:
    if p["backend"] == "sqlite":
        return baseline_sqlite(p)
    return await baseline_postgresql(p)


def baseline_sqlite(p: dict[str, Any]) -> dict[str, Any]:
    """sqlite3 executemany, one transaction, values converted as SQLAlchemy would."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import sqlite

    from app.core.db import UTCDateTime, new_id, utcnow

    # SQLAlchemy's own bind processors, so the values are stored exactly as the
    # service stores them (UUIDs as 32 hex digits, naive UTC timestamp strings).
    dialect = sqlite.dialect()
    as_uuid = sa.Uuid().bind_processor(dialect)
    as_time = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert as_uuid is not None
    assert as_time is not None

    def sql_value(v: Any) -> Any:
        if isinstance(v, uuid.UUID):
            return as_uuid(v)
        if isinstance(v, datetime):
            return as_time(v)
        if isinstance(v, bool):
            return int(v)
        return v

    settings = make_settings(p["url"])
    org_id = uuid.UUID(p["org_id"])
    con = sqlite3.connect(sqlite_path(p["url"]), isolation_level=None)
    try:
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("PRAGMA busy_timeout=5000")
        con.execute("PRAGMA synchronous=NORMAL")
        now = utcnow()
        wave_id = new_id()
        wave = {k: sql_value(v) for k, v in wave_values(p, wave_id, now).items()}
        con.execute(
            f"INSERT INTO wave ({', '.join(wave)}) VALUES ({', '.join('?' * len(wave))})",
            list(wave.values()),
        )

        started = time.perf_counter()
        raw = con.execute(
            "SELECT id, email, name, team, department, manager_id, attributes, locale "
            "FROM employee WHERE organization_id = ? AND active = 1 ORDER BY id",
            (as_uuid(org_id),),
        ).fetchall()
        read_s = time.perf_counter() - started

        started = time.perf_counter()
        employees = [
            (uuid.UUID(r[0]), r[1], r[2], r[3], r[4], r[5] and uuid.UUID(r[5]), r[6], r[7])
            for r in raw
        ]
        inv, out = build_rows(employees, wave_id, org_id, settings, as_time(now), as_uuid, 0)
        build_s = time.perf_counter() - started
        del raw, employees

        inv_sql = (
            f"INSERT INTO invitation ({', '.join(INVITATION_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(INVITATION_COLUMNS))})"
        )
        out_sql = (
            f"INSERT INTO outbox_message ({', '.join(OUTBOX_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(OUTBOX_COLUMNS))})"
        )
        rss_before = rss_now_mb()
        cpu = time.process_time()
        started = time.perf_counter()
        con.execute("BEGIN")
        con.executemany(inv_sql, inv)
        con.executemany(out_sql, out)
        con.execute("COMMIT")
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        rows = (
            con.execute("SELECT count(*) FROM invitation").fetchone()[0],
            con.execute("SELECT count(*) FROM outbox_message").fetchone()[0],
            len(inv),
        )
    finally:
        con.close()
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "read_s": read_s,
        "build_s": build_s,
        "rss_before_mb": rss_before,
        "rows": rows,
    }


async def baseline_postgresql(p: dict[str, Any]) -> dict[str, Any]:
    """asyncpg COPY (binary) of both tables in one transaction."""
    import asyncpg

    from app.core.db import new_id, utcnow

    settings = make_settings(p["url"])
    org_id = uuid.UUID(p["org_id"])
    conn = await asyncpg.connect(pg_dsn(p["url"]))
    try:
        now = utcnow()
        wave_id = new_id()
        wave = wave_values(p, wave_id, now)
        await conn.execute(
            f"INSERT INTO wave ({', '.join(wave)}) "
            f"VALUES ({', '.join(f'${i + 1}' for i in range(len(wave)))})",
            *wave.values(),
        )

        started = time.perf_counter()
        raw = await conn.fetch(
            "SELECT id, email, name, team, department, manager_id, attributes::text, locale "
            "FROM employee WHERE organization_id = $1 AND active ORDER BY id",
            org_id,
        )
        read_s = time.perf_counter() - started

        started = time.perf_counter()
        employees = [tuple(r) for r in raw]
        inv, out = build_rows(employees, wave_id, org_id, settings, now, lambda u: u, False)
        build_s = time.perf_counter() - started
        del raw, employees

        rss_before = rss_now_mb()
        cpu = time.process_time()
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "invitation", records=inv, columns=list(INVITATION_COLUMNS)
            )
            await conn.copy_records_to_table(
                "outbox_message", records=out, columns=list(OUTBOX_COLUMNS)
            )
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        rows = (
            await conn.fetchval("SELECT count(*) FROM invitation"),
            await conn.fetchval("SELECT count(*) FROM outbox_message"),
            len(inv),
        )
    finally:
        await conn.close()
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "read_s": read_s,
        "build_s": build_s,
        "rss_before_mb": rss_before,
        "rows": rows,
    }


def spawn(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one child to completion and return what it sent."""
    ctx = mp.get_context("spawn")
    parent_end, child_end = ctx.Pipe(duplex=False)
    process = ctx.Process(target=child_main, args=(kind, params, child_end), daemon=True)
    process.start()
    child_end.close()
    try:
        result: dict[str, Any] = parent_end.recv()
    except EOFError:
        process.join()
        result = {"error": f"the {kind} child died (exit code {process.exitcode})"}
    process.join()
    parent_end.close()
    if "error" in result:
        raise RuntimeError(f"{kind} run failed:\n{result['error']}")
    return result


# --------------------------------------------------------------------------- runs


@dataclass
class Series:
    backend: str
    subject: list[dict[str, Any]] = field(default_factory=list)
    baseline: list[dict[str, Any]] = field(default_factory=list)
    setup_s: float = 0.0
    rounds_planned: int = 0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


class Clock:
    """Occurrence times: one per run, never repeated."""

    def __init__(self) -> None:
        self.base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return (self.base + timedelta(hours=self.count)).isoformat()


def run_backend(
    backend: str,
    args: argparse.Namespace,
    tmp_dir: Path,
    clock: Clock,
    deadline: Callable[[Series, float], int],
    failures: list[str],
) -> Series:
    from app.demo.surveys import QUESTIONS

    series = Series(backend, rounds_planned=args.rounds)
    started = time.perf_counter()
    with fresh_database(backend, tmp_dir, args.postgres_url) as url:
        org_id, survey_id = asyncio.run(seed(url, args.n))
        if backend == "postgresql":
            asyncio.run(pg_exec(url, "VACUUM ANALYZE"))
        series.setup_s = time.perf_counter() - started
        say(
            f"[{backend}] fresh migrated database, 1 organization, {args.n:,} employees "
            f"(bulk_insert), 1 survey: setup {series.setup_s:.1f} s"
        )
        base = {
            "backend": backend,
            "url": url,
            "org_id": str(org_id),
            "survey_id": str(survey_id),
            "questions": QUESTIONS[:2],
        }
        r = 0
        while r < series.rounds_planned:
            round_started = time.perf_counter()
            order = ("baseline", "subject") if r % 2 == 0 else ("subject", "baseline")
            parts = []
            for kind in order:
                result = spawn(kind, {**base, "occurrence_at": clock.next()})
                empty_wave_tables(backend, url)
                (series.subject if kind == "subject" else series.baseline).append(result)
                inv, msg, expected = result["rows"]
                if not inv == msg == expected == args.n:
                    failures.append(
                        f"{backend} {kind} round {r + 1}: {inv} invitations, {msg} outbox "
                        f"rows, {expected} reported; expected {args.n} each"
                    )
                if kind == "subject":
                    parts.append(
                        f"subject {result['seconds']:6.2f} s (CPU {result['cpu_s']:5.2f} s), "
                        f"peak {result['peak_mb']:4.0f} MB"
                    )
                else:
                    parts.append(
                        f"baseline {result['seconds']:5.2f} s (CPU {result['cpu_s']:4.2f} s; "
                        f"untimed: read {result['read_s']:.2f} s, build {result['build_s']:.2f} s)"
                    )
            say(f"[{backend}] round {r + 1}: " + "; ".join(parts))
            r += 1
            if r == 1:
                fits = deadline(series, time.perf_counter() - round_started)
                if fits < series.rounds_planned:
                    say(
                        f"[{backend}] NOTE: {series.rounds_planned} rounds would exceed the "
                        f"{args.budget:.0f} s budget; running {fits} round(s) instead"
                    )
                    series.rounds_planned = fits
        if args.profile:
            profile_subject(backend, base, clock, tmp_dir, args.profile_lines)
            empty_wave_tables(backend, url)
    return series


def profile_subject(
    backend: str, base: dict[str, Any], clock: Clock, tmp_dir: Path, lines: int
) -> None:
    stats_path = str(tmp_dir / f"open_wave-{backend}.prof")
    result = spawn("subject", {**base, "occurrence_at": clock.next(), "profile": stats_path})
    say()
    say(
        f"[{backend}] cProfile of one extra subject run: {result['seconds']:.2f} s under the "
        f"profiler (not counted above)"
    )
    for sort in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(stats_path, stream=out)
        stats.strip_dirs().sort_stats(sort).print_stats(lines)
        text = out.getvalue()
        start = text.find("   ncalls")
        say(f"  by {sort}:")
        for line in text[start:].rstrip().splitlines():
            say("    " + line)
    say()


def report(all_series: list[Series], args: argparse.Namespace, failures: list[str]) -> None:
    say()
    say(f"Results, N={args.n:,} (medians over the rounds run):")
    say(
        f"  {'backend':<10} {'rounds':>6} {'subject s':>10} {'baseline s':>11} {'ratio':>6} "
        f"{'≤ 1.5':>5} {'peak MB':>8} {'≤ 300':>5}  {'RSS before':>10}"
    )
    for s in all_series:
        subj = median([r["seconds"] for r in s.subject])
        base = median([r["seconds"] for r in s.baseline])
        ratio = subj / base
        peak = median([r["peak_mb"] for r in s.subject])
        before = median([r["rss_before_mb"] for r in s.subject])
        ratio_ok = ratio <= TARGET_RATIO
        peak_ok = peak <= TARGET_MB
        say(
            f"  {s.backend:<10} {len(s.subject):>6} {subj:>10.2f} {base:>11.2f} {ratio:>6.2f} "
            f"{verdict(ratio_ok):>5} {peak:>8.0f} {verdict(peak_ok):>5}  {before:>7.0f} MB"
        )
        if not ratio_ok:
            failures.append(
                f"{s.backend}: open_wave {subj:.2f} s is {ratio:.2f} × the bare insert "
                f"({base:.2f} s), target ≤ {TARGET_RATIO}"
            )
        if not peak_ok:
            failures.append(f"{s.backend}: peak RSS {peak:.0f} MB, target ≤ {TARGET_MB:.0f} MB")
    say()
    say("Diagnostics (medians; not targets):")
    say(
        f"  {'backend':<10} {'subject CPU s':>13} {'baseline CPU s':>14} {'CPU ratio':>9}  "
        f"{'read s':>6} {'build s':>7} {'read+build+insert':>17} {'× baseline':>10}"
    )
    for s in all_series:
        base = median([r["seconds"] for r in s.baseline])
        subj_cpu = median([r["cpu_s"] for r in s.subject])
        base_cpu = median([r["cpu_s"] for r in s.baseline])
        read = median([r["read_s"] for r in s.baseline])
        build = median([r["build_s"] for r in s.baseline])
        floor = median([r["read_s"] + r["build_s"] + r["seconds"] for r in s.baseline])
        say(
            f"  {s.backend:<10} {subj_cpu:>13.2f} {base_cpu:>14.2f} {subj_cpu / base_cpu:>9.2f}  "
            f"{read:>6.2f} {build:>7.2f} {floor:>17.2f} {floor / base:>10.2f}"
        )
    say(
        "  CPU s: the child's own CPU time (all its threads) over the timed part; on SQLite "
        "that includes the database work, on PostgreSQL the server's CPU is not in it."
    )
    say(
        "  read/build: what the baseline child spent, untimed, reading the audience with the "
        "bare driver and building the rows in plain Python (UUIDv7 ids, salts, HMAC tokens, "
        "JSON parse + dump, driver-form values); read+build+insert is what a service doing "
        "only that and writing with the bare driver would take."
    )
    say(
        "  Peak MB: VmHWM of the subject child (ru_maxrss would carry the parent's "
        "high-water mark across spawn's exec on Linux); RSS before: its RSS just before "
        "open_wave, imports and a connected engine included."
    )


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    why = None
    if args.backend != "sqlite":
        why = postgres_unreachable(args.postgres_url)
    if args.backend is None:
        backends = ["sqlite"] if why else ["sqlite", "postgresql"]
    elif args.backend == "both":
        backends = ["sqlite", "postgresql"]
    else:
        backends = [args.backend]
    if "postgresql" in backends and why:
        say(f"PostgreSQL at {args.postgres_url} is unreachable: {why}")
        return 1

    say(
        f"Opening a wave for N={args.n:,} employees (N invitations + N outbox rows) beside a "
        f"bare bulk insert of the same rows; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs; backends: {', '.join(backends)}; {args.rounds} rounds, "
        f"budget {args.budget:.0f} s; load average {load_average()}"
    )
    if why and args.backend is None:
        say(f"  NOTE: PostgreSQL skipped ({args.postgres_url} unreachable: {why})")
    say(
        "Subject: waves.open_wave in a spawned child, one session.begin() block, commit "
        "included. Baseline: a spawned child, same tables of the same database, rows "
        "prebuilt; SQLite sqlite3 executemany in one transaction, PostgreSQL asyncpg "
        "copy_records_to_table in one transaction. Tables emptied between runs; "
        "baseline and subject alternate."
    )
    say()

    failures: list[str] = []
    all_series: list[Series] = []
    remaining = list(backends)

    def deadline(series: Series, round_s: float) -> int:
        """Rounds this backend can run so that the whole bench fits the budget, assuming
        later backends take the same setup and round time."""
        elapsed = time.perf_counter() - started
        later = len(remaining) - 1
        rounds = series.rounds_planned
        while rounds > 1:
            projected = (
                elapsed + (rounds - 1) * round_s + later * (series.setup_s + rounds * round_s)
            )
            if projected <= args.budget:
                break
            rounds -= 1
        return rounds

    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        for backend in backends:
            series = run_backend(backend, args, Path(tmp), Clock(), deadline, failures)
            all_series.append(series)
            remaining.pop(0)
            if series.rounds_planned < args.rounds:
                args.rounds = series.rounds_planned  # later backends: the same, fewer rounds
    report(all_series, args, failures)
    say()
    say(f"Total {time.perf_counter() - started:.0f} s; load average now {load_average()}.")
    if failures:
        say("FAILED: " + "; ".join(failures))
        return 1
    say("All targets met.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Opening a wave for N employees beside a bare bulk insert of the same rows."
    )
    parser.add_argument("--n", type=int, default=100_000, help="employees (100,000)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved baseline/subject rounds (3)"
    )
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgresql", "both"),
        default=None,
        help="default: both when PostgreSQL is reachable, else sqlite",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("PULSE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
        help="a server where we may CREATE DATABASE (PULSE_TEST_POSTGRES_URL, else %(default)s)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=330.0,
        help="seconds the whole run should take; fewer rounds when projected longer (330)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="one extra subject run per backend under cProfile"
    )
    parser.add_argument(
        "--profile-lines", type=int, default=30, help="lines per cProfile listing (30)"
    )
    args = parser.parse_args(argv)
    if args.n < 200:
        parser.error("--n must be at least 200 (the directory has 111 managers)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
