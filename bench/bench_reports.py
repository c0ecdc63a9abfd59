"""The eNPS monthly trend by team through the API, beside the bare SQL ``GROUP BY``.

Target (architecture.md, "Performance and scale targets"): the eNPS monthly trend by
team over 1,000,000 responses (100 teams, 24 months) takes ≤ 1.5 × the bare SQL
``GROUP BY`` on the same data, measured in the same run, on SQLite and PostgreSQL.

What runs, per backend (SQLite file and/or PostgreSQL):

* Setup (not timed, but reported): a fresh database migrated to head, as a deploy would;
  one organization (time zone Europe/London), one survey, 24 monthly waves (the first
  Monday of each month of 2024 and 2025, 09:00 local), and a ``reports`` API key
  (``organizations.service.create_api_key``), all through the app's own code. Then N
  responses (``--responses``, default 1,000,000), spread evenly over the 24 waves and
  100 teams in 10 departments (~417 per team and wave), each with one eNPS answer
  (kind 'enps', score 0-10 drawn around a per-team centre). The data is the same on
  both backends (a seeded generator). Invitations are not loaded: the eNPS report does
  not read them. It reads each wave's segment census (``wave_segment``), written here as
  opening the wave would: a row per team with 500 invited.
* Loading bypasses the app: SQLite through the ``sqlite3`` module (``executemany`` in
  one transaction, rows sorted by primary key since both tables are WITHOUT ROWID, the
  app's PRAGMAs plus a bigger page cache) in the formats SQLAlchemy writes (UUIDs as
  32 hex digits, dates 'YYYY-MM-DD', JSON as text); PostgreSQL through asyncpg
  ``copy_records_to_table`` with foreign-key triggers off for the load
  (``session_replication_role = replica``, when the user may; the rows are consistent by
  construction and counted through the app's models afterwards). Then ANALYZE on
  SQLite, VACUUM (ANALYZE) on PostgreSQL (statistics, and a visibility map for
  index-only scans, as autovacuum would leave them). Three responses and their answers
  are read back through the app's models and compared with what was generated, and the
  answers joined to their responses are counted through the models.
* Subject: ``GET /v1/reports/enps?interval=month&group_by=team&survey_id=…&from=…&to=…``
  over the 24 months, through ``create_app(settings)`` with an ``httpx.AsyncClient``
  over ``ASGITransport`` and the reports key: authentication, the queries, the Python
  work, pydantic and the JSON body all included; the client's parsing of the body is
  not timed. The app's engine (and its connection pool) lives for the whole run.
* Baseline: the bare ``GROUP BY`` that yields the same numbers, with the raw driver on
  the same database (a ``sqlite3`` connection / an asyncpg connection, each opened once):

      SELECT a.wave_id, r.team, count(*) FILTER (WHERE a.score >= 9), …
      FROM answer a JOIN response r ON r.id = a.response_id
      WHERE a.kind = 'enps' GROUP BY a.wave_id, r.team

* One warm-up of each, then ``--rounds`` (default 5) of each, alternating (B S, S B, …);
  medians, the ratio and pass/fail are printed. Beside them: how a subject request splits
  into the report query, the other SQL (timed with ``before/after_cursor_execute``) and
  everything else, and the CPU time of this process per run (less disturbed by a busy
  machine than wall time; on SQLite it holds both sides' whole work, on PostgreSQL not
  the server's). Every subject answer is checked against
  the baseline's counts and the generator's (per team and month: promoters, passives,
  detractors, responses).
* The app's report query is captured with SQLAlchemy's ``before_cursor_execute`` and its
  plan printed (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN (ANALYZE, BUFFERS)),
  beside the baseline's plan and the app's query narrowed to one wave (the other 23 ids
  swapped for ids that match nothing), to show where the covering index is used: over
  all 24 waves, i.e. the whole table, PostgreSQL rightly prefers a sequential scan.
* ``--profile`` adds one subject request under cProfile (not counted) and prints where
  its time goes.

Exit status 1 when a target or a correctness check fails.

    .venv/bin/python bench/bench_reports.py                       # 1,000,000 responses
    .venv/bin/python bench/bench_reports.py --responses 100000 --backend sqlite --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from benchdb import fresh_database, pg_dsn, postgres_unreachable, sqlite_path

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
ORG_NAME = "Bench Org"
SECRET = "bench-secret-key-0123456789abcdef0123456789"
TARGET_RATIO = 1.5
DEPARTMENTS = 10
TEAMS_PER_DEPARTMENT = 10
TEAMS = DEPARTMENTS * TEAMS_PER_DEPARTMENT
FIRST_YEAR = 2024
MONTHS = 24
TIMEZONE = "Europe/London"
SEED = 20261126

RESPONSE_COLUMNS = (
    "id",
    "wave_id",
    "survey_id",
    "organization_id",
    "employee_id",
    "team",
    "department",
    "manager_id",
    "attributes",
    "answered_on",
)
ANSWER_COLUMNS = ("response_id", "question_key", "wave_id", "kind", "score", "choices", "text")

BASELINE_SQL = (
    "SELECT a.wave_id, r.team,"
    " count(*) FILTER (WHERE a.score >= 9),"
    " count(*) FILTER (WHERE a.score BETWEEN 7 AND 8),"
    " count(*) FILTER (WHERE a.score <= 6)"
    " FROM answer a JOIN response r ON r.id = a.response_id"
    " WHERE a.kind = 'enps'"
    " GROUP BY a.wave_id, r.team"
)

# (month, team) -> (promoters, passives, detractors)
Cells = dict[tuple[date, str], tuple[int, int, int]]


def cpu_pressure() -> str:
    """How much of the last minute runnable tasks waited for a CPU (Linux PSI)."""
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as f:
            fields = dict(kv.split("=") for kv in f.readline().split()[1:])
        return f"{float(fields['avg60']):.0f} %"
    except (OSError, KeyError, ValueError):
        return "n/a"


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


# --------------------------------------------------------------------------- databases


def make_settings(url: str) -> Any:
    from pydantic import SecretStr

    from app.core.config import Settings

    return Settings(_env_file=None, database_url=url, secret_key=SecretStr(SECRET))


# --------------------------------------------------------------------------- data


def team_name(t: int) -> str:
    return f"Team {t // TEAMS_PER_DEPARTMENT + 1}.{t % TEAMS_PER_DEPARTMENT + 1}"


def department_name(t: int) -> str:
    return f"Department {t // TEAMS_PER_DEPARTMENT + 1}"


def occurrences() -> list[datetime]:
    """The first Monday of each of the 24 months, 09:00 in the organization's zone, UTC."""
    zone = ZoneInfo(TIMEZONE)
    out = []
    for m in range(MONTHS):
        first = date(FIRST_YEAR + m // 12, m % 12 + 1, 1)
        monday = first + timedelta(days=(7 - first.weekday()) % 7)
        local = datetime(monday.year, monday.month, monday.day, 9, tzinfo=zone)
        out.append(local.astimezone(UTC))
    return out


@dataclass
class Data:
    """N responses as columns: the same on every backend (seeded)."""

    ids: list[int]  # 128-bit UUIDv4 values
    wave: list[int]  # index into the 24 waves
    team: list[int]  # 0..99
    score: list[int]  # 0..10
    day: list[int]  # days after the wave's occurrence the answer came
    truth: dict[tuple[int, int], list[int]] = field(default_factory=dict)


def generate(n: int) -> Data:
    """Responses in arrival order (wave by wave), teams round-robin, scores around a
    per-team centre with a slight drift per month."""
    rng = random.Random(SEED)
    centre = [5.0 + 4.5 * ((t * 37) % TEAMS) / (TEAMS - 1) for t in range(TEAMS)]
    drift = [((t * 53) % 7 - 3) * 0.05 for t in range(TEAMS)]
    version = (0x4 << 76) | (0b10 << 62)
    mask = ~((0xF << 76) | (0b11 << 62)) & ((1 << 128) - 1)
    data = Data([], [], [], [], [])
    truth: dict[tuple[int, int], list[int]] = {}
    for i in range(n):
        w = i * MONTHS // n
        t = i % TEAMS
        s = max(0, min(10, round(rng.gauss(centre[t] + drift[t] * (w - 12), 2.0))))
        data.ids.append((rng.getrandbits(128) & mask) | version)
        data.wave.append(w)
        data.team.append(t)
        data.score.append(s)
        data.day.append(rng.randrange(5))
        cell = truth.setdefault((w, t), [0, 0, 0])
        cell[0 if s >= 9 else 1 if s >= 7 else 2] += 1
    data.truth = truth
    return data


@dataclass
class Seeded:
    org_id: uuid.UUID
    survey_id: uuid.UUID
    wave_ids: list[uuid.UUID]
    months: list[date]  # each wave's month in the organization's zone
    api_key: str


async def seed(url: str) -> Seeded:
    """Organization, survey, 24 closed waves and a reports key, through the app's code."""
    from sqlalchemy import insert

    from app.core.db import Database, new_id, utcnow
    from app.demo.surveys import QUESTIONS, RULE
    from app.organizations import service as organization_service
    from app.organizations.schemas import ApiKeyCreate
    from app.surveys.models import Survey, Wave, WaveSegment

    db = Database.from_url(url)
    try:
        async with db.sessionmaker() as session, session.begin():
            org = await organization_service.get_or_create_organization(session, ORG_NAME)
            org.default_timezone = TIMEZONE
            survey = Survey(
                organization_id=org.id,
                name="Bench pulse",
                status="active",
                anonymous=True,
                min_group_size=5,
                comment_min_group_size=5,
                questions=QUESTIONS[:1],
                rrule=RULE,
                timezone=TIMEZONE,
                starts_at=occurrences()[0],
                window_hours=120,
                reminders_hours=[48, 96],
                audience={"teams": [], "departments": [], "attributes": {}},
            )
            session.add(survey)
            await session.flush()
            wave_ids, months = [], []
            zone = ZoneInfo(TIMEZONE)
            for occurrence in occurrences():
                wave_id = new_id()
                closes_at = occurrence + timedelta(hours=survey.window_hours)
                await session.execute(
                    insert(Wave).values(
                        id=wave_id,
                        organization_id=org.id,
                        survey_id=survey.id,
                        occurrence_at=occurrence,
                        opens_at=occurrence,
                        closes_at=closes_at,
                        closed_at=closes_at,
                        status="closed",
                        questions=survey.questions,
                        anonymous=True,
                        min_group_size=survey.min_group_size,
                        reminders_hours=survey.reminders_hours,
                        reminders_sent=2,
                        invited=0,
                        created_at=utcnow(),
                    )
                )
                await session.execute(
                    insert(WaveSegment),
                    [
                        {
                            "wave_id": wave_id,
                            "team": team_name(t),
                            "department": department_name(t),
                            "manager_id": None,
                            "attributes": {},
                            "invited": 500,
                        }
                        for t in range(TEAMS)
                    ],
                )
                wave_ids.append(wave_id)
                months.append(occurrence.astimezone(zone).date().replace(day=1))
            _key, plaintext = await organization_service.create_api_key(
                session, org.id, ApiKeyCreate(name="bench", scope="reports")
            )
            return Seeded(org.id, survey.id, wave_ids, months, plaintext)
    finally:
        await db.dispose()


def load_sqlite(url: str, seeded: Seeded, data: Data) -> dict[str, float]:
    """executemany in one transaction, in the column formats SQLAlchemy writes."""
    zone = ZoneInfo(TIMEZONE)
    local_days = [o.astimezone(zone).date() for o in occurrences()]
    started = time.perf_counter()
    waves = [w.hex for w in seeded.wave_ids]
    survey, org = seeded.survey_id.hex, seeded.org_id.hex
    teams = [team_name(t) for t in range(TEAMS)]
    departments = [department_name(t) for t in range(TEAMS)]
    days = {
        (w, d): (local_days[w] + timedelta(days=d)).isoformat()
        for w in range(MONTHS)
        for d in range(5)
    }
    order = sorted(range(len(data.ids)), key=data.ids.__getitem__)  # WITHOUT ROWID: PK order
    hexes = [f"{data.ids[i]:032x}" for i in order]
    responses = [
        (
            h,
            waves[data.wave[i]],
            survey,
            org,
            None,
            teams[data.team[i]],
            departments[data.team[i]],
            None,
            "{}",
            days[data.wave[i], data.day[i]],
        )
        for h, i in zip(hexes, order, strict=True)
    ]
    answers = [
        (h, "enps", waves[data.wave[i]], "enps", data.score[i], None, None)
        for h, i in zip(hexes, order, strict=True)
    ]
    built = time.perf_counter()
    con = sqlite3.connect(sqlite_path(url), isolation_level=None)
    try:
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA cache_size=-524288",  # 512 MB for the load only
        ):
            con.execute(pragma)
        con.execute("BEGIN")
        con.executemany(
            f"INSERT INTO response ({', '.join(RESPONSE_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(RESPONSE_COLUMNS))})",
            responses,
        )
        con.executemany(
            f"INSERT INTO answer ({', '.join(ANSWER_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(ANSWER_COLUMNS))})",
            answers,
        )
        con.execute("COMMIT")
        inserted = time.perf_counter()
        con.execute("ANALYZE")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    analyzed = time.perf_counter()
    size = Path(sqlite_path(url)).stat().st_size
    return {
        "build rows": built - started,
        "insert": inserted - built,
        "ANALYZE": analyzed - inserted,
        "size_mb": size / 1e6,
    }


async def load_postgres(url: str, seeded: Seeded, data: Data) -> dict[str, float]:
    """COPY (binary) in one transaction, then VACUUM (ANALYZE)."""
    import asyncpg

    zone = ZoneInfo(TIMEZONE)
    local_days = [o.astimezone(zone).date() for o in occurrences()]
    started = time.perf_counter()
    teams = [team_name(t) for t in range(TEAMS)]
    departments = [department_name(t) for t in range(TEAMS)]
    days = {(w, d): local_days[w] + timedelta(days=d) for w in range(MONTHS) for d in range(5)}
    waves = seeded.wave_ids
    ids = [uuid.UUID(int=x) for x in data.ids]  # arrival order: the heap as it would grow
    responses = [
        (
            ids[i],
            waves[data.wave[i]],
            seeded.survey_id,
            seeded.org_id,
            None,
            teams[data.team[i]],
            departments[data.team[i]],
            None,
            "{}",
            days[data.wave[i], data.day[i]],
        )
        for i in range(len(ids))
    ]
    answers = [
        (ids[i], "enps", waves[data.wave[i]], "enps", data.score[i], None, None)
        for i in range(len(ids))
    ]
    built = time.perf_counter()
    conn = await asyncpg.connect(pg_dsn(url), timeout=10)
    try:
        superuser = await conn.fetchval(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        async with conn.transaction():
            if superuser:
                await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.copy_records_to_table(
                "response", records=responses, columns=list(RESPONSE_COLUMNS)
            )
            await conn.copy_records_to_table(
                "answer", records=answers, columns=list(ANSWER_COLUMNS)
            )
        inserted = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) response")
        await conn.execute("VACUUM (ANALYZE) answer")
        await conn.execute("CHECKPOINT")
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    analyzed = time.perf_counter()
    return {
        "build rows": built - started,
        "COPY" + ("" if superuser else " (FK triggers on)"): inserted - built,
        "VACUUM ANALYZE + CHECKPOINT": analyzed - inserted,
        "size_mb": size / 1e6,
    }


async def verify_load(url: str, seeded: Seeded, data: Data) -> list[str]:
    """Read rows back through the app's models: wrong formats would not match."""
    from sqlalchemy import func, select

    from app.core.db import Database
    from app.surveys.models import Answer, Response

    problems = []
    zone = ZoneInfo(TIMEZONE)
    local_days = [o.astimezone(zone).date() for o in occurrences()]
    db = Database.from_url(url)
    try:
        async with db.sessionmaker() as session:
            for i in (0, len(data.ids) // 2, len(data.ids) - 1):
                rid = uuid.UUID(int=data.ids[i])
                r = await session.get(Response, rid)
                a = await session.get(Answer, (rid, "enps"))
                expected_r: tuple[Any, ...] = (
                    rid,
                    seeded.wave_ids[data.wave[i]],
                    seeded.survey_id,
                    seeded.org_id,
                    None,
                    team_name(data.team[i]),
                    department_name(data.team[i]),
                    None,
                    {},
                    local_days[data.wave[i]] + timedelta(days=data.day[i]),
                )
                got_r = None if r is None else tuple(getattr(r, c) for c in RESPONSE_COLUMNS)
                if got_r != expected_r:
                    problems.append(f"response {i}: read {got_r}, wrote {expected_r}")
                expected_a = (rid, "enps", seeded.wave_ids[data.wave[i]], "enps", data.score[i])
                got_a = None if a is None else tuple(getattr(a, c) for c in ANSWER_COLUMNS[:5])
                if got_a != expected_a or (a is not None and (a.choices, a.text) != (None, None)):
                    problems.append(f"answer {i}: read {got_a}, wrote {expected_a}")
            joined = await session.scalar(
                select(func.count())
                .select_from(Answer)
                .join(Response, Response.id == Answer.response_id)
                .where(Response.survey_id == seeded.survey_id, Answer.kind == "enps")
            )
            if joined != len(data.ids):
                problems.append(f"{joined} answers joined to their responses, not {len(data.ids)}")
    finally:
        await db.dispose()
    return problems


# --------------------------------------------------------------------------- runs


def cells_from_report(body: dict[str, Any]) -> tuple[Cells, list[str]]:
    out: Cells = {}
    problems = []
    for row in body["series"]:
        key = (date.fromisoformat(row["period_start"]), row["group"])
        if row["suppressed"]:
            problems.append(f"{key} suppressed")
            continue
        out[key] = (row["promoters"], row["passives"], row["detractors"])
        if row["responses"] != sum(out[key]):
            problems.append(f"{key}: responses {row['responses']} != {sum(out[key])}")
    return out, problems


def cells_from_baseline(rows: list[Any], month_of: dict[Any, date]) -> Cells:
    return {(month_of[w], t): (int(p), int(pa), int(d)) for w, t, p, pa, d in rows}


def cells_from_truth(seeded: Seeded, data: Data) -> Cells:
    return {
        (seeded.months[w], team_name(t)): (c[0], c[1], c[2]) for (w, t), c in data.truth.items()
    }


def compare(name: str, got: Cells, expected: Cells) -> list[str]:
    if got == expected:
        return []
    missing = sorted(set(expected) - set(got))[:3]
    extra = sorted(set(got) - set(expected))[:3]
    wrong = [k for k in sorted(set(got) & set(expected)) if got[k] != expected[k]][:3]
    return [
        f"{name}: {len(got)} cells vs {len(expected)} expected; missing {missing}, "
        f"extra {extra}, differing {[(k, got[k], expected[k]) for k in wrong]}"
    ]


@dataclass
class Result:
    backend: str
    n: int
    load: dict[str, float]
    baseline: list[float]
    subject: list[float]
    problems: list[str]

    @property
    def ratio(self) -> float:
        return statistics.median(self.subject) / statistics.median(self.baseline)

    @property
    def ok(self) -> bool:
        return not self.problems and self.ratio <= TARGET_RATIO


async def bench_backend(
    backend: str, url: str, n: int, rounds: int, data: Data, profile: bool
) -> Result:
    import httpx
    from sqlalchemy import event

    from app.main import create_app

    started = time.perf_counter()
    seeded = await seed(url)
    seeded_at = time.perf_counter()
    if backend == "sqlite":
        load = load_sqlite(url, seeded, data)
    else:
        load = await load_postgres(url, seeded, data)
    load = {"migrate + seed": seeded_at - started, **load}
    problems = await verify_load(url, seeded, data)
    say(
        f"  loaded {n:,} responses + {n:,} answers in "
        f"{sum(v for k, v in load.items() if k != 'size_mb'):.1f} s ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in load.items() if k != "size_mb")
        + f"); database {load['size_mb']:,.0f} MB; read back through the models: "
        + ("ok" if not problems else "MISMATCH")
    )
    for p in problems:
        say(f"  !! {p}")

    truth = cells_from_truth(seeded, data)
    month_of: dict[Any, date] = {}
    for wave_id, month in zip(seeded.wave_ids, seeded.months, strict=True):
        month_of[wave_id] = month
        month_of[wave_id.hex] = month

    # Baseline: the raw driver, one connection for the whole run.
    pg_conn: Any = None
    sq_conn: sqlite3.Connection | None = None
    if backend == "sqlite":
        sq_conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        sq_conn.execute("PRAGMA journal_mode=WAL")

        async def baseline() -> list[Any]:
            assert sq_conn is not None
            return sq_conn.execute(BASELINE_SQL).fetchall()
    else:
        import asyncpg

        pg_conn = await asyncpg.connect(pg_dsn(url), timeout=10)

        async def baseline() -> list[Any]:
            return list(await pg_conn.fetch(BASELINE_SQL))

    # Subject: the real app, the full HTTP path in-process.
    app = create_app(make_settings(url))
    engine = app.state.db.engine.sync_engine
    captured: list[tuple[str, Any]] = []
    # Time in the database driver during each request: the report query, and the rest
    # (API key lookup, organization, waves). Rows are fetched inside execute by both
    # SQLAlchemy adapters, so this spans the query and the transfer of its rows.
    in_sql = {"report": 0.0, "other": 0.0}

    def before(conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM answer" in statement and not captured:
            captured.append((statement, parameters))
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seconds = time.perf_counter() - conn.info.pop("bench_t0")
        in_sql["report" if "FROM answer" in statement else "other"] += seconds

    params = {
        "interval": "month",
        "group_by": "team",
        "survey_id": str(seeded.survey_id),
        "from": f"{FIRST_YEAR}-01-01",
        "to": f"{FIRST_YEAR + MONTHS // 12 - 1}-12-31",
    }
    headers = {"Authorization": f"Bearer {seeded.api_key}"}
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
    bodies: list[bytes] = []

    splits: list[tuple[float, float]] = []

    async def subject() -> None:
        in_sql.update(report=0.0, other=0.0)
        response = await client.get("/v1/reports/enps", params=params, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
        splits.append((in_sql["report"], in_sql["other"]))
        bodies.append(response.content)

    baseline_rows: list[list[Any]] = []

    cpu: dict[Any, list[float]] = {baseline: [], subject: []}

    async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = await fn()
        seconds = time.perf_counter() - t0
        cpu[fn].append(time.process_time() - c0)
        if out is not None:
            baseline_rows.append(out)
        return seconds

    baseline_times: list[float] = []
    subject_times: list[float] = []
    try:
        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        warm_s = await timed(subject)
        warm_b = await timed(baseline)
        say(f"  warm-up: baseline {ms(warm_b)}, subject {ms(warm_s)} (not counted)")
        for r in range(rounds):
            order = (baseline, subject) if r % 2 == 0 else (subject, baseline)
            for fn in order:
                seconds = await timed(fn)
                (baseline_times if fn is baseline else subject_times).append(seconds)
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
        timed_splits = splits[1:]
        report_sql = statistics.median(x[0] for x in timed_splits)
        other_sql = statistics.median(x[1] for x in timed_splits)
        rest = statistics.median(
            t - a - b for t, (a, b) in zip(subject_times, timed_splits, strict=True)
        )
        say(
            f"  inside the subject (medians): report query {ms(report_sql)}, other SQL "
            f"{ms(other_sql)}, everything else (HTTP, auth, Python, pydantic, JSON) {ms(rest)}"
        )
        # CPU of this process (all its threads) is less disturbed by other load than wall
        # time. On SQLite it holds the whole work of both sides (the engine runs
        # in-process); on PostgreSQL the server's share is not in it.
        cpu_b, cpu_s = (statistics.median(cpu[f][1:]) for f in (baseline, subject))
        say(
            f"  CPU of this process per run (medians): baseline {ms(cpu_b)}, subject "
            f"{ms(cpu_s)}"
            + (f" (ratio {cpu_s / cpu_b:.2f})" if backend == "sqlite" and cpu_b > 0 else "")
        )

        # Correctness: every subject answer and every baseline result, against the truth.
        for i, rows in enumerate(baseline_rows):
            problems += compare(f"baseline run {i}", cells_from_baseline(rows, month_of), truth)
        import json

        seen: set[bytes] = set()
        for i, body in enumerate(bodies):
            if body in seen:
                continue
            seen.add(body)
            report, report_problems = cells_from_report(json.loads(body))
            problems += [f"subject run {i}: {p}" for p in report_problems[:3]]
            problems += compare(f"subject run {i}", report, truth)
        if len(seen) != 1:
            problems.append(f"{len(seen)} different bodies across {len(bodies)} subject runs")
        say(
            f"  checked: {len(bodies)} subject answers ({len(bodies[0]):,} bytes, "
            f"{len(truth):,} team-months) and {len(baseline_rows)} baseline results "
            "against the generated counts: " + ("equal" if not problems else "DIFFERENT")
        )

        await explain(backend, seeded.wave_ids, captured, sq_conn, pg_conn)
        if profile:
            await profile_subject(subject)
    finally:
        await client.aclose()
        await app.state.db.dispose()
        if sq_conn is not None:
            sq_conn.close()
        if pg_conn is not None:
            await pg_conn.close()
    return Result(backend, n, load, baseline_times, subject_times, problems)


def clip(line: str, width: int = 200) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


async def explain(
    backend: str,
    wave_ids: list[uuid.UUID],
    captured: list[tuple[str, Any]],
    sq_conn: sqlite3.Connection | None,
    pg_conn: Any,
) -> None:
    """Plans of the app's report query as sent, of the baseline, and of the app's query
    with only the first wave's id left in its IN list (one month out of 24: where an
    index pays on either database)."""
    if not captured:
        say("  !! the report query on answer was not captured")
        return
    statement, parameters = captured[0]
    say("  the app's query (as sent; the IN list holds the 24 wave ids):")
    say("    " + clip(" ".join(statement.split()), 1000))
    # The first wave stays; the other 23 become ids that match nothing.
    others = {w: uuid.uuid4() for w in wave_ids[1:]}
    swap: dict[Any, Any] = others | {w.hex: u.hex for w, u in others.items()}
    one_wave = type(parameters)(swap.get(p, p) for p in parameters)
    plans = (
        ("app", statement, parameters),
        ("baseline", BASELINE_SQL, ()),
        ("app, narrowed to one wave", statement, one_wave),
    )
    for name, sql, args in plans:
        if backend == "sqlite":
            assert sq_conn is not None
            say(f"  EXPLAIN QUERY PLAN, {name}:")
            for row in sq_conn.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall():
                say(f"    {row[-1]}")
        else:
            say(f"  EXPLAIN (ANALYZE, BUFFERS), {name}:")
            for row in await pg_conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args):
                say("    " + clip(row[0]))


async def profile_subject(subject: Callable[[], Awaitable[None]]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    t0 = time.perf_counter()
    await subject()
    seconds = time.perf_counter() - t0
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(15)
    say(f"  profile of one subject request ({ms(seconds)} under cProfile):")
    for line in out.getvalue().splitlines():
        if line.strip():
            say("    " + line)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"))
    parser.add_argument("--responses", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("PULSE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
    )
    parser.add_argument("--profile", action="store_true", help="profile one subject request")
    args = parser.parse_args()
    if args.responses < MONTHS * TEAMS:
        parser.error(f"--responses must be at least {MONTHS * TEAMS}")

    backends = ["sqlite", "postgresql"] if args.backend in (None, "both") else [args.backend]
    if "postgresql" in backends:
        why = postgres_unreachable(args.postgres_url)
        if why is not None:
            if args.backend is not None:
                say(f"PostgreSQL at {args.postgres_url} is unreachable: {why}")
                return 1
            say(f"PostgreSQL skipped: {args.postgres_url} unreachable ({why})")
            backends.remove("postgresql")

    n = args.responses
    say(
        f"eNPS monthly trend by team: {n:,} responses, {TEAMS} teams, {MONTHS} monthly waves "
        f"(~{n / TEAMS / MONTHS:,.0f} per team-wave); target subject ≤ {TARGET_RATIO} × "
        f"bare GROUP BY; {args.rounds} alternating round(s) of each after a warm-up; "
        f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs; CPU pressure (time "
        f"tasks waited for a CPU, last minute) {cpu_pressure()}"
    )
    t0 = time.perf_counter()
    data = generate(n)
    say(f"generated the data in {time.perf_counter() - t0:.1f} s")

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        for backend in backends:
            say(f"\n[{backend}]")
            with fresh_database(backend, Path(tmp), args.postgres_url) as url:
                results.append(
                    asyncio.run(bench_backend(backend, url, n, args.rounds, data, args.profile))
                )
            r = results[-1]
            say(
                "  baseline (bare GROUP BY, raw driver): "
                + ", ".join(ms(s) for s in r.baseline)
                + f"  median {ms(statistics.median(r.baseline))}"
            )
            say(
                "  subject (GET /v1/reports/enps):       "
                + ", ".join(ms(s) for s in r.subject)
                + f"  median {ms(statistics.median(r.subject))}"
            )

    say("\nsummary (medians)")
    for r in results:
        say(
            f"  {r.backend:<10} bare GROUP BY {ms(statistics.median(r.baseline)):>9}   "
            f"API {ms(statistics.median(r.subject)):>9}   ratio {r.ratio:.2f} "
            f"(target ≤ {TARGET_RATIO})   numbers {'equal' if not r.problems else 'DIFFER'}   "
            f"{'PASS' if r.ok else 'FAIL'}"
        )
        for p in r.problems:
            say(f"    !! {p}")
    say(f"total {time.perf_counter() - t0:.0f} s; CPU pressure now {cpu_pressure()}")
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
