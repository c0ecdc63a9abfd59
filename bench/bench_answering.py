"""Answer submissions through ``POST /v1/respond/{token}`` on a live ``pulse serve``,
beside a minimal endpoint on the same stack doing the same lookup and insert.

Target (architecture.md, "Performance and scale targets"): response submissions through
the JSON API reach ≥ 70 % of the submissions per second of a minimal endpoint that does
the same token lookup + insert on the same stack (FastAPI, uvicorn, one worker, the same
database), measured in the same run, under 64 concurrent connections, with no errors.

What runs, per backend (``--backend``; by default SQLite, and PostgreSQL at
``--postgres-url`` when it is reachable):

* Setup (not timed): a fresh database migrated to head, as a deploy would; one
  organization, N employees (``--employees``, default 40,000) through
  ``employees.service.bulk_insert``, one active anonymous survey of 3 questions (enps,
  rating 1-5, optional text), and two waves opened for everyone with
  ``surveys.waves.open_wave`` (invitations and outbox rows, as the service writes them):
  one for the subject, one for the baseline, so their tokens never collide. Every
  invitation's token is then recomputed with ``surveys.links.recompute``; each token is
  used once, in a shuffled order.
* Subject: a real ``python -m app.cli serve`` process (one uvicorn worker, uvloop and
  httptools when installed, no in-process worker) with ``PULSE_DATABASE_URL``,
  ``PULSE_SECRET_KEY``, ``PULSE_EMAIL_URL=console://`` and ``PULSE_LOG_LEVEL=WARNING``
  (so the per-request access log line is not written: at INFO one JSON line per request
  to stderr would be measured too), run from an empty folder so no ``.env`` is read.
  Requests: ``POST /v1/respond/{token}`` with
  ``{"answers": {"enps": 9, "workload": 4, "comment": "More focus time"}}``; expect 201.
* Baseline: a minimal FastAPI app in its own process, served by the same uvicorn with
  the same options, on the same database through ``app.core.db.make_engine`` (same
  pool, same SQLite PRAGMAs): ``POST /answer/{token}`` with the same body (a one-field
  pydantic model) does SHA-256 of the token, the conditional ``UPDATE invitation SET
  answered = true WHERE token_hash = :h AND answered = false`` (first, as the app
  does), the ``SELECT`` of the
  invitation joined to its wave by ``token_hash``, ``INSERT`` of the response and its 3
  answer rows, commit: SQLAlchemy Core on the app's tables, no ORM session, no
  SAVEPOINT, no answer checks, no middleware.
* Ping: ``GET /ping`` on the baseline process (a bare FastAPI route, no database), and
  ``GET /healthz`` on the subject (Pulse's middleware stack, no database), through the
  same load generator, at the start and the end: the ping rate shows how much more the
  generator can drive than either side needs (it must reach 2 × the faster side).
* Load generator: a raw asyncio HTTP/1.1 client (uvloop when installed) in its own
  spawned process: 64 keep-alive connections opened before the clock starts, one
  coroutine per connection, every request's bytes built beforehand, one latency per
  request (write to last body byte; p50/p95/p99 and the slowest). Each run lasts
  ``--duration`` seconds (default 10) and, as wrk does, its rate counts the 2xx answers
  completed within that window; the requests in flight at the end are finished and
  checked but not counted in the rate.
  Requests are taken from one token list, each token once. Errors are non-2xx answers
  and socket or protocol errors; what the server logged during a run (its unhandled
  errors, with the failing statement) is printed under it. ``wrk`` is not used.
* One warm-up run of each side (``--warmup`` s, not counted), then ``--rounds``
  (default 3) of each, alternating (B S, S B, B S, ...), each on fresh tokens; medians
  of submissions/s and of each run's p50/p95/p99. Beside them the CPU seconds the
  server process used per request (from /proc: less disturbed by a busy machine than
  wall time; on PostgreSQL the database server's share is not in it) and the load
  generator's own CPU use.
* Afterwards, per side: response rows, answer rows and answered invitations of its wave
  are counted through the models and must equal the 201s it got (warm-up included),
  ×3 for answers: no answer lost or doubled.
* ``--profile`` adds one subject run with ``py-spy record`` (if py-spy is installed in
  the venv: ``.venv/bin/pip install py-spy``) attached to the serve process and prints
  where its time goes: samples of the thread holding the GIL, inclusive per function
  of Pulse and per SQLAlchemy/FastAPI entry point, and own.

The header names the commit measured (and whether app/ had uncommitted changes).

Exit status 1 when the target or a correctness check fails.

    .venv/bin/python bench/bench_answering.py                     # SQLite (+ PostgreSQL)
    .venv/bin/python bench/bench_answering.py --backend sqlite --rounds 5 --profile
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchdb import fresh_database, pg_exec, postgres_unreachable, sqlite_path

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
ORG_NAME = "Bench Org"
SECRET = "bench-secret-key-0123456789abcdef0123456789"
TARGET_RATIO = 0.70
CONNECTIONS = 64
PING_HEADROOM = 2.0  # the generator must drive /ping at least this many times either side
INSERT_BATCH = 10_000
SEED = 20261127
HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent

QUESTIONS: list[dict[str, Any]] = [
    {"key": "enps", "kind": "enps", "required": True},
    {"key": "workload", "kind": "rating", "scale": 5, "required": True, "prompt": "Workload"},
    {"key": "comment", "kind": "text", "required": False, "prompt": "Anything else?"},
]
ANSWERS = {"enps": 9, "workload": 4, "comment": "More focus time"}
BODY = json.dumps({"answers": ANSWERS}, separators=(",", ":")).encode()
SUBJECT_PATH = "/v1/respond/"
BASELINE_PATH = "/answer/"


def cpu_pressure() -> str:
    """How much of the last minute runnable tasks waited for a CPU (Linux PSI)."""
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as f:
            fields = dict(kv.split("=") for kv in f.readline().split()[1:])
        return f"{float(fields['avg60']):.0f} %"
    except (OSError, KeyError, ValueError):
        return "n/a"


def code_version() -> str:
    """The commit measured, and whether app/ differs from it: others change the app
    while benchmarks run."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "app"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in app/' if dirty else ''}"


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


# --------------------------------------------------------------------------- databases


def make_settings(url: str) -> Any:
    from pydantic import SecretStr

    from app.core.config import Settings

    return Settings(
        _env_file=None, database_url=url, email_url="console://", secret_key=SecretStr(SECRET)
    )


# --------------------------------------------------------------------------- setup


@dataclass
class Seeded:
    subject_wave: uuid.UUID
    baseline_wave: uuid.UUID
    subject_tokens: list[str]
    baseline_tokens: list[str]
    seconds: dict[str, float]


def build_employees(org_id: uuid.UUID, n: int) -> list[dict[str, Any]]:
    from app.core.db import new_id

    return [
        {
            "id": new_id(),
            "organization_id": org_id,
            "email": f"person{i}@bench.example",
            "email_key": f"person{i}@bench.example",
            "name": f"Person {i}",
            "team": f"Team {i % 50}",
            "department": f"Department {i % 10}",
            "manager_id": None,
            "locale": "en",
            "timezone": "Europe/London",
            "attributes": {"site": "HQ" if i % 3 else "Remote"},
            "active": True,
        }
        for i in range(n)
    ]


async def seed(url: str, n: int) -> Seeded:
    """Organization, N employees, the survey, two open waves and every invitation's
    token, through the app's own code."""
    from sqlalchemy import select

    from app.core.db import Database, utcnow
    from app.employees import service as employee_service
    from app.organizations import service as organization_service
    from app.surveys import links
    from app.surveys.models import Invitation, Survey
    from app.surveys.waves import open_wave

    settings = make_settings(url)
    seconds: dict[str, float] = {}
    db = Database.from_url(url)
    try:
        t0 = time.perf_counter()
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
                questions=QUESTIONS,
                rrule=None,
                timezone="Europe/London",
                starts_at=None,
                window_hours=24 * 14,
                reminders_hours=[],
                audience={"teams": [], "departments": [], "attributes": {}},
            )
            session.add(survey)
            await session.flush()
        seconds["employees"] = time.perf_counter() - t0
        now = utcnow()
        wave_ids = []
        for occurrence in (now, now - timedelta(minutes=1)):  # subject, baseline
            t0 = time.perf_counter()
            async with db.sessionmaker() as session, session.begin():
                survey = await session.get_one(Survey, survey.id)
                wave_id = await open_wave(session, survey, occurrence, settings, now=now)
                assert wave_id is not None
                wave_ids.append(wave_id)
            seconds.setdefault("open 2 waves", 0.0)
            seconds["open 2 waves"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        tokens: list[list[str]] = []
        rng = random.Random(SEED)
        async with db.sessionmaker() as session:
            for wave_id in wave_ids:
                rows_ = (
                    await session.execute(
                        select(Invitation.id, Invitation.salt, Invitation.key_id).where(
                            Invitation.wave_id == wave_id
                        )
                    )
                ).all()
                wave_tokens = [links.recompute(settings, i, s, k) for i, s, k in rows_]
                rng.shuffle(wave_tokens)
                tokens.append(wave_tokens)
        seconds["tokens"] = time.perf_counter() - t0
    finally:
        await db.dispose()
    t0 = time.perf_counter()
    if url.startswith("sqlite"):
        con = sqlite3.connect(sqlite_path(url), isolation_level=None)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("ANALYZE")
        con.close()
    else:
        await pg_exec(url, "VACUUM ANALYZE")  # statistics, as autovacuum would leave them
    seconds["analyze"] = time.perf_counter() - t0
    return Seeded(wave_ids[0], wave_ids[1], tokens[0], tokens[1], seconds)


async def count_rows(url: str, wave_id: uuid.UUID) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.core.db import Database
    from app.surveys.models import Answer, Invitation, Response

    db = Database.from_url(url)
    try:
        async with db.sessionmaker() as session:

            async def count(model: Any, *where: Any) -> int:
                query = select(func.count()).select_from(model).where(*where)
                return int((await session.execute(query)).scalar_one())

            return {
                "responses": await count(Response, Response.wave_id == wave_id),
                "answers": await count(Answer, Answer.wave_id == wave_id),
                "answered": await count(
                    Invitation, Invitation.wave_id == wave_id, Invitation.answered.is_(True)
                ),
            }
    finally:
        await db.dispose()


# --------------------------------------------------------------------------- baseline app


def build_baseline_app(url: str) -> Any:
    """The minimal endpoint: the same claim, lookup and inserts, bare."""
    import contextlib
    import hashlib
    from collections.abc import AsyncIterator
    from datetime import UTC, datetime

    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel
    from sqlalchemy import insert, select, update

    from app.core.db import make_engine
    from app.surveys.models import Answer, Invitation, Response, Wave

    engine = make_engine(url)
    inv, wave = Invitation.__table__, Wave.__table__
    response_table, answer_table = Response.__table__, Answer.__table__

    class Body(BaseModel):
        answers: dict[str, Any]

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/answer/{token}", status_code=201)
    async def answer(token: str, body: Body) -> dict[str, Any]:
        token_hash = hashlib.sha256(token.encode()).hexdigest()
        async with engine.begin() as conn:
            claimed = await conn.execute(
                update(inv)
                .where(inv.c.token_hash == token_hash, inv.c.answered.is_(False))
                .values(answered=True)
            )
            if claimed.rowcount != 1:
                raise HTTPException(409, "already answered or unknown")
            row = (
                await conn.execute(
                    select(
                        inv.c.wave_id,
                        inv.c.team,
                        inv.c.department,
                        inv.c.manager_id,
                        inv.c.attributes,
                        wave.c.survey_id,
                        wave.c.organization_id,
                        wave.c.questions,
                    )
                    .join(wave, wave.c.id == inv.c.wave_id)
                    .where(inv.c.token_hash == token_hash)
                )
            ).one()
            kinds = {q["key"]: q["kind"] for q in row.questions}
            response_id = uuid.uuid4()
            await conn.execute(
                insert(response_table).values(
                    id=response_id,
                    wave_id=row.wave_id,
                    survey_id=row.survey_id,
                    organization_id=row.organization_id,
                    employee_id=None,
                    team=row.team,
                    department=row.department,
                    manager_id=row.manager_id,
                    attributes=row.attributes,
                    answered_on=datetime.now(UTC).date(),
                )
            )
            await conn.execute(
                insert(answer_table),
                [
                    {
                        "response_id": response_id,
                        "question_key": key,
                        "wave_id": row.wave_id,
                        "kind": kinds[key],
                        "score": value if isinstance(value, int) else None,
                        "choices": None,
                        "text": value if isinstance(value, str) else None,
                    }
                    for key, value in body.answers.items()
                ],
            )
        return {"status": "recorded", "anonymous": True}

    return app


def serve_baseline(url: str, port: int) -> int:
    """The baseline's process: uvicorn with the options ``pulse serve`` uses."""
    import uvicorn

    uvicorn.run(
        build_baseline_app(url),
        host=HOST,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=HOST,
    )
    return 0


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def cpu_seconds(self) -> float:
        """utime + stime of the process, all its threads (/proc/<pid>/stat)."""
        with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    log_offset: int = 0

    def new_log_lines(self) -> Counter[str]:
        """What the server logged since the last call, one line per record (the message
        and the last line of any traceback), counted."""
        try:
            with open(self.log, "rb") as f:
                f.seek(self.log_offset)
                data = f.read()
        except OSError:
            return Counter()
        self.log_offset += len(data)
        out: Counter[str] = Counter()
        for line in data.decode(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                if line.strip():
                    out[line.strip()[:300]] += 1
                continue
            if not isinstance(record, dict):
                continue
            # The exception's own line (not SQLAlchemy's "Background on this error" link)
            # and, for a database error, the statement.
            exc = [
                line
                for line in str(record.get("exc") or "").splitlines()
                if line.startswith("[SQL:") or ("Error: " in line and not line.startswith(" "))
            ]
            out[f"{record.get('level')} {record.get('msg')}: " + " ".join(exc[-2:])] += 1
        return out

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(name: str, argv: list[str], env: dict[str, str], tmp: Path, ready: str) -> Server:
    port = free_port()
    log = tmp / f"{name}-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*argv, "--port", str(port)], env=env, cwd=tmp, stdout=out, stderr=out
        )
    server = Server(name, proc, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}{ready}", timeout=2) as r:
                if r.status == 200:
                    server.new_log_lines()  # start-up lines are not the runs'
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not answer {ready} within 60 s:\n{server.log_tail()}")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}


def start_subject(url: str, tmp: Path) -> Server:
    env = clean_env() | {
        "PULSE_DATABASE_URL": url,
        "PULSE_SECRET_KEY": SECRET,
        "PULSE_EMAIL_URL": "console://",
        "PULSE_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "app.cli", "serve", "--host", HOST]
    return start_server("subject", argv, env, tmp, "/healthz")


def start_baseline(url: str, tmp: Path) -> Server:
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", url]
    return start_server("baseline", argv, clean_env(), tmp, "/ping")


# --------------------------------------------------------------------------- load generator


def _request(method: str, path: str, port: int, body: bytes) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode("ascii") + b"\r\n" + body


async def _drive(
    port: int,
    method: str,
    path: str,
    tokens: list[str] | None,
    body: bytes,
    duration: float,
    connections: int,
) -> dict[str, Any]:
    """One run: ``connections`` keep-alive connections, each sending its next request as
    soon as the last answer is read, until ``duration`` has passed (or the tokens run
    out). Returns counts and per-request latencies."""
    if tokens is None:
        fixed = _request(method, path, port, body)
        requests: list[bytes] = []
    else:
        requests = [_request(method, path + t, port, body) for t in tokens]
    n = len(requests)
    streams = [await asyncio.open_connection(HOST, port) for _ in range(connections)]
    state = {"next": 0, "exhausted": False, "reconnects": 0, "in_window": 0}
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    socket_errors: Counter[str] = Counter()
    samples: list[str] = []
    ends: list[float] = []
    clock = time.perf_counter

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            if clock() >= deadline:
                break
            if tokens is None:
                request = fixed
            else:
                i = state["next"]
                if i >= n:
                    state["exhausted"] = True
                    break
                state["next"] = i + 1
                request = requests[i]
            t0 = clock()
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                lower = head.lower()
                k = lower.find(b"\r\ncontent-length:")
                if k < 0:
                    raise ValueError("no Content-Length")
                length = int(lower[k + 17 : lower.index(b"\r\n", k + 2)])
                answer = await reader.readexactly(length) if length else b""
            except (OSError, EOFError, asyncio.LimitOverrunError, ValueError) as exc:
                socket_errors[exc.__class__.__name__] += 1
                writer.close()
                state["reconnects"] += 1
                try:
                    reader, writer = await asyncio.open_connection(HOST, port)
                except OSError as again:
                    socket_errors[again.__class__.__name__] += 1
                    break
                continue
            t1 = clock()
            latencies.append(t1 - t0)
            statuses[status] += 1
            if t1 <= deadline and 200 <= status < 300:
                state["in_window"] += 1
            if not 200 <= status < 300 and len(samples) < 3:
                samples.append((head + answer[:400]).decode("latin-1"))
            if b"\r\nconnection: close" in lower:
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
        ends.append(clock())
        writer.close()

    cpu0 = time.process_time()
    start = clock()
    deadline = start + duration
    await asyncio.gather(*(connection(r, w) for r, w in streams))
    elapsed = max(ends) - start
    cpu = time.process_time() - cpu0
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    ok = sum(c for s, c in statuses.items() if 200 <= s < 300)
    return {
        "elapsed": elapsed,
        "completed": len(latencies),
        "ok": ok,
        # Like wrk: answers completed within the window, over the window; the ones in
        # flight at the deadline are finished (and checked) but not counted here.
        "rps": state["in_window"] / duration,
        "p50": pct(50) if latencies else float("nan"),
        "p95": pct(95) if latencies else float("nan"),
        "p99": pct(99) if latencies else float("nan"),
        "max": latencies[-1] if latencies else float("nan"),
        "statuses": dict(statuses),
        "socket_errors": dict(socket_errors),
        "samples": samples,
        "used": state["next"],
        "exhausted": state["exhausted"],
        "client_cpu": cpu,
    }


def load_process(params: dict[str, Any], conn: Any) -> None:
    """Entry point of the load generator's spawned process."""
    try:
        try:
            import uvloop

            uvloop.install()
            loop_name = "uvloop"
        except ImportError:
            loop_name = "asyncio"
        result = asyncio.run(_drive(**params))
        result["loop"] = loop_name
        conn.send(result)
    except BaseException as exc:
        conn.send({"error": f"{exc.__class__.__name__}: {exc}"})
        raise
    finally:
        conn.close()


def drive(
    server: Server,
    method: str,
    path: str,
    tokens: list[str] | None,
    duration: float,
    connections: int = CONNECTIONS,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    params = {
        "port": server.port,
        "method": method,
        "path": path,
        "tokens": tokens,
        "body": BODY if method == "POST" else b"",
        "duration": duration,
        "connections": connections,
    }
    proc = ctx.Process(target=load_process, args=(params, child), daemon=True)
    cpu0 = server.cpu_seconds()
    proc.start()
    child.close()
    if not parent.poll(duration + 120):
        proc.kill()
        raise RuntimeError("the load generator did not report back")
    try:
        result: dict[str, Any] = parent.recv()
    except EOFError:
        raise RuntimeError(f"the load generator died (exit code {proc.exitcode})") from None
    proc.join(10)
    if "error" in result:
        raise RuntimeError(f"load generator failed: {result['error']}")
    # Includes the server's share of the generator's start-up (idle) and connection
    # set-up: small against a run.
    result["server_cpu"] = server.cpu_seconds() - cpu0
    return result


def errors_of(r: dict[str, Any]) -> int:
    bad = sum(c for s, c in r["statuses"].items() if not 200 <= int(s) < 300)
    return bad + sum(r["socket_errors"].values())


def describe(r: dict[str, Any]) -> str:
    line = (
        f"{r['rps']:>7,.0f} req/s  p50 {ms(r['p50']):>9}  p95 {ms(r['p95']):>9}  "
        f"p99 {ms(r['p99']):>9}  max {ms(r['max']):>9}  "
        f"{r['completed']:>6,} responses in {r['elapsed']:.1f} s  "
        f"errors {errors_of(r)}  server CPU {r['server_cpu'] / max(1, r['completed']) * 1e3:.2f}"
        f" ms/req  generator CPU {r['client_cpu'] / r['elapsed']:.0%} of a core"
    )
    if errors_of(r):
        line += f"  statuses {r['statuses']} socket errors {r['socket_errors']}"
    return line


# --------------------------------------------------------------------------- profiling


def profile_subject(server: Server, tokens: list[str], duration: float, tmp: Path) -> int:
    """One subject run with py-spy attached to the serve process; prints the top
    functions by inclusive and by own samples. Returns the tokens it used."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        say("  --profile: py-spy not found (.venv/bin/pip install py-spy); skipped")
        return 0
    out = tmp / "subject.collapsed"
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(server.proc.pid),
            "--format",
            "raw",
            "--output",
            str(out),
            "--duration",
            str(int(duration)),
            "--rate",
            "200",
            "--nonblocking",
            "--gil",  # only the thread holding the GIL: where the one core goes
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    r = drive(server, "POST", SUBJECT_PATH, tokens, duration)
    _, err = spy.communicate(timeout=60)
    say(f"  profiled subject run (py-spy attached, slower): {describe(r)}")
    if spy.returncode != 0 or not out.exists():
        say(f"  py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-500:]}")
        return int(r["used"])
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        # py-spy frames: "function (file:line)"; key by function and file, not line.
        keys = []
        for frame in frames:
            fn, _, where = frame.partition(" (")
            keys.append(f"{fn} ({where.rsplit(':', 1)[0].removeprefix(str(ROOT) + '/')})")
        for key in set(keys):
            inclusive[key] += count
        own[keys[-1]] += count
    say(f"  py-spy: {total:,} samples of the thread holding the GIL")
    say("  inclusive, Pulse's own functions (% of samples):")
    for key, count in [kc for kc in inclusive.most_common() if " (app/" in kc[0]][:25]:
        say(f"    {count / total:6.1%}  {key[-150:]}")
    say("  inclusive, SQLAlchemy, FastAPI and Starlette entry points (% of samples):")
    shown = 0
    for key, count in inclusive.most_common():
        if shown < 15 and any(
            name in key
            for name in (
                "AsyncSession.execute",
                "AsyncSession.commit",
                "greenlet_spawn",
                "solve_dependencies",
                "run_in_threadpool",
                "serialize_response",
                "_compile_w_cache",
                "_generate_cache_key",
                "bulk_persistence",
                "Connection._execute (aiosqlite",
                "begin_nested",
            )
        ):
            say(f"    {count / total:6.1%}  {key[-150:]}")
            shown += 1
    say("  own (% of samples):")
    for key, count in own.most_common(25):
        say(f"    {count / total:6.1%}  {key[-150:]}")
    return int(r["used"])


# --------------------------------------------------------------------------- runs


@dataclass
class Result:
    backend: str
    pings: list[dict[str, Any]] = field(default_factory=list)
    healthz: list[dict[str, Any]] = field(default_factory=list)
    baseline: list[dict[str, Any]] = field(default_factory=list)
    subject: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def median(self, side: str, key: str) -> float:
        return statistics.median(r[key] for r in getattr(self, side))

    @property
    def ratio(self) -> float:
        baseline = self.median("baseline", "rps")
        return self.median("subject", "rps") / baseline if baseline else float("nan")

    def cpu_per_request(self, side: str) -> float:
        return statistics.median(r["server_cpu"] / r["completed"] for r in getattr(self, side))

    @property
    def ok(self) -> bool:
        return not self.problems and self.ratio >= TARGET_RATIO  # False when nan


class Tokens:
    """Each token once, across every run of one side."""

    def __init__(self, name: str, tokens: list[str]) -> None:
        self.name, self.tokens, self.cursor, self.ok = name, tokens, 0, 0

    def remaining(self) -> list[str]:
        return self.tokens[self.cursor :]

    def consume(self, r: dict[str, Any], problems: list[str]) -> None:
        self.cursor += int(r["used"])
        self.ok += int(r["statuses"].get(201, 0))
        if r["exhausted"]:
            problems.append(
                f"{self.name}: ran out of tokens mid-run; raise --employees "
                f"(used {self.cursor:,} of {len(self.tokens):,})"
            )


def bench_backend(backend: str, url: str, args: argparse.Namespace, tmp: Path) -> Result:
    result = Result(backend)
    started = time.perf_counter()
    seeded = asyncio.run(seed(url, args.employees))
    say(
        f"  setup {time.perf_counter() - started:.1f} s ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in seeded.seconds.items())
        + f"): {args.employees:,} employees, 2 open waves, "
        f"{len(seeded.subject_tokens) + len(seeded.baseline_tokens):,} invitations and tokens"
    )
    subject_tokens = Tokens("subject", seeded.subject_tokens)
    baseline_tokens = Tokens("baseline", seeded.baseline_tokens)
    servers: list[Server] = []
    try:
        subject = start_subject(url, tmp)
        servers.append(subject)
        baseline = start_baseline(url, tmp)
        servers.append(baseline)
        say(
            f"  pulse serve pid {subject.proc.pid} (port {subject.port}, PULSE_LOG_LEVEL=WARNING),"
            f" baseline pid {baseline.proc.pid} (port {baseline.port}); {CONNECTIONS} connections"
        )

        def ping() -> None:
            r = drive(baseline, "GET", "/ping", None, args.ping_duration)
            result.pings.append(r)
            say(f"  bare /ping      {describe(r)}")

        def run(side: str, label: str) -> dict[str, Any]:
            server, tokens, path = (
                (subject, subject_tokens, SUBJECT_PATH)
                if side == "subject"
                else (baseline, baseline_tokens, BASELINE_PATH)
            )
            duration = args.warmup if label == "warm-up" else args.duration
            r = drive(server, "POST", path, tokens.remaining(), duration)
            tokens.consume(r, result.problems)
            say(f"  {label:<7} {side[0].upper()} {describe(r)}")
            for line, count in server.new_log_lines().most_common(5):
                say(f"    server log ({count}×): {line[:400]}")
            if errors_of(r):
                result.problems.append(
                    f"{side} {label}: {errors_of(r)} errors, statuses {r['statuses']}, "
                    f"socket errors {r['socket_errors']}"
                )
                for sample in r["samples"]:
                    say("    " + sample.replace("\r\n", "\n    ")[:800])
            return r

        ping()
        r = drive(subject, "GET", "/healthz", None, args.ping_duration)
        result.healthz.append(r)
        say(f"  pulse /healthz  {describe(r)}")
        run("baseline", "warm-up")
        run("subject", "warm-up")
        for i in range(args.rounds):
            order = ("baseline", "subject") if i % 2 == 0 else ("subject", "baseline")
            for side in order:
                getattr(result, side).append(run(side, f"round {i + 1}"))
        ping()
        if args.profile:
            subject_tokens.cursor += profile_subject(
                subject, subject_tokens.remaining(), args.duration, tmp
            )
            subject_tokens.ok = -1  # the profiled run's 201s were not counted
    finally:
        for server in servers:
            server.stop()

    # Every 201 is one response, 3 answers and one answered invitation; nothing else.
    for tokens, wave_id in (
        (subject_tokens, seeded.subject_wave),
        (baseline_tokens, seeded.baseline_wave),
    ):
        counts = asyncio.run(count_rows(url, wave_id))
        if tokens.ok < 0:
            say(f"  rows of the {tokens.name} wave: {counts} (profiled run: not compared)")
            continue
        expected = {"responses": tokens.ok, "answers": 3 * tokens.ok, "answered": tokens.ok}
        same = counts == expected
        say(
            f"  {tokens.name}: {tokens.ok:,} × 201 → {counts['responses']:,} responses, "
            f"{counts['answers']:,} answers, {counts['answered']:,} answered invitations: "
            + ("as expected" if same else f"MISMATCH (expected {expected})")
        )
        if not same:
            result.problems.append(f"{tokens.name}: rows {counts} != {expected}")

    fastest = max(result.median("baseline", "rps"), result.median("subject", "rps"))
    slowest_ping = min(r["rps"] for r in result.pings)
    if slowest_ping < PING_HEADROOM * fastest:
        result.problems.append(
            f"the load generator drove /ping at only {slowest_ping:,.0f} req/s, under "
            f"{PING_HEADROOM} × the fastest side ({fastest:,.0f} req/s): it may be the bottleneck"
        )
    for r in result.pings + result.healthz:
        if errors_of(r):
            result.problems.append(f"ping runs had errors: {r['statuses']} {r['socket_errors']}")
    return result


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"))
    parser.add_argument(
        "--employees",
        type=int,
        default=40_000,
        help="employees, so tokens per side (default 40,000; each token is used once)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of each warm-up")
    parser.add_argument("--ping-duration", type=float, default=5.0, help="seconds per ping run")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("PULSE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
    )
    parser.add_argument("--profile", action="store_true", help="one more subject run under py-spy")
    parser.add_argument("--serve-baseline", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        return serve_baseline(args.serve_baseline, args.port)

    backends = ["sqlite", "postgresql"] if args.backend in (None, "both") else [args.backend]
    if "postgresql" in backends:
        why = postgres_unreachable(args.postgres_url)
        if why is not None:
            if args.backend is not None:
                say(f"PostgreSQL at {args.postgres_url} is unreachable: {why}")
                return 1
            say(f"PostgreSQL skipped: {args.postgres_url} unreachable ({why})")
            backends.remove("postgresql")

    import fastapi
    import uvicorn

    say(
        f"answer submissions: POST /v1/respond/{{token}} on pulse serve vs a minimal endpoint "
        f"(same token lookup + insert); target subject ≥ {TARGET_RATIO:.0%} of baseline req/s, "
        f"no errors; {CONNECTIONS} connections, {args.rounds} alternating round(s) of "
        f"{args.duration:g} s after a {args.warmup:g} s warm-up; one uvicorn {uvicorn.__version__}"
        f" worker each, FastAPI {fastapi.__version__}, SQLite {sqlite3.sqlite_version}; the "
        f"subject runs with PULSE_LOG_LEVEL=WARNING (no access log line per request); load "
        f"generator: raw asyncio HTTP/1.1 keep-alive client in its own process (wrk "
        f"{'found but not used' if shutil.which('wrk') else 'not installed'}); "
        f"code at {code_version()}; {os.cpu_count()} CPUs; CPU pressure (last minute) "
        f"{cpu_pressure()}"
    )
    t0 = time.perf_counter()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        for backend in backends:
            say(f"\n[{backend}]")
            with fresh_database(backend, Path(tmp), args.postgres_url) as url:
                results.append(bench_backend(backend, url, args, Path(tmp)))

    say("\nsummary (medians over rounds)")
    for res in results:
        say(f"  {res.backend}")
        say(
            f"    bare /ping       {statistics.median(r['rps'] for r in res.pings):>7,.0f} req/s"
            f"   pulse /healthz {statistics.median(r['rps'] for r in res.healthz):,.0f} req/s"
        )
        for side, label in (("baseline", "minimal endpoint"), ("subject", "POST /v1/respond")):
            runs = getattr(res, side)
            say(
                f"    {label:<16} {res.median(side, 'rps'):>7,.0f} req/s   "
                f"p50 {ms(res.median(side, 'p50'))}   p95 {ms(res.median(side, 'p95'))}   "
                f"p99 {ms(res.median(side, 'p99'))}   errors {sum(errors_of(r) for r in runs)}"
                f"   server CPU {res.cpu_per_request(side) * 1e3:.2f} ms/req   runs "
                + ", ".join(f"{r['rps']:,.0f}" for r in runs)
            )
        cpu_ratio = res.cpu_per_request("baseline") / res.cpu_per_request("subject")
        say(
            f"    ratio {res.ratio:.2f} (target ≥ {TARGET_RATIO:.2f})   "
            f"{'PASS' if res.ok else 'FAIL'}   (for comparison, baseline ÷ subject server CPU "
            f"per request: {cpu_ratio:.2f}"
            + (", the database server's share not included)" if res.backend != "sqlite" else ")")
        )
        for p in res.problems:
            say(f"    !! {p}")
    say(f"total {time.perf_counter() - t0:.0f} s; CPU pressure now {cpu_pressure()}")
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
