"""Outbox delivery to a local SMTP sink, beside bare aiosmtplib over one connection.

Target (architecture.md, "Performance and scale targets"): outbox delivery reaches
≥ 70 % of bare aiosmtplib over one connection and ≥ 200 msg/s, with no duplicates and
nothing lost when the server fails a fifth of attempts.

What runs:

* The SMTP sink lives in its own process (``multiprocessing``, spawn): a small asyncio
  SMTP server (default) or aiosmtpd's SMTP class (``--sink aiosmtpd``). It records the
  Message-ID of every message it accepts and its own CPU time, so the report can show it
  is not the bottleneck.
* Baseline: a bare ``aiosmtplib.SMTP`` over one connection sends the same N messages,
  each built in the timed loop exactly as the sender builds it: ``render()`` (its one
  database lookup, the organization, answered from memory) then ``build_message()``.
  The time spent building is measured apart, which also gives a send-only figure.
* Subject: N messages of kind "test" are enqueued with ``outbox.enqueue_many`` in a fresh
  migrated database (not timed), then ``sender.deliver_outbox(db, settings)`` is timed
  until every row is sent.
* The machine's speed drifts (up to 2×), so the series take turns: each round the
  baseline and every subject send the next N/rounds messages (whole batches), the order
  reversing every other round; every series sends all N, and the report gives the median
  of the per-round rates. This also keeps the default run near 4 minutes on 2 idle cores
  (3 × 10,000 messages interleaved, then the failure runs), where whole repeated runs
  would take three times as long.
* The failure run: the sink answers 451 to a random fifth of DATA commands; the bench
  calls ``deliver_outbox`` again (sleeping until the next retry is due) until nothing is
  pending, then checks at the sink that every Message-ID arrived exactly once.

Exit status 1 when a target or a correctness check fails.

    .venv/bin/python bench/bench_outbox.py                 # N=10,000, 10 rounds
    .venv/bin/python bench/bench_outbox.py --n 1000 --backend sqlite --no-failure-run
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
ORG_NAME = "Bench Org"
LOCALES = ("en", "fr", "ar")
TARGET_RATE = 200.0
TARGET_RATIO = 0.70
FAIL_RATE = 0.2


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- the sink


class SinkState:
    """What the sink saw since the last reset; touched only on the sink's event loop."""

    def __init__(self) -> None:
        self.reset(0.0, 0, "data")

    def reset(self, fail_rate: float, seed: int, fail_at: str) -> None:
        self.fail_rate = fail_rate
        self.fail_at = fail_at
        self.rng = random.Random(seed)
        self.ids: list[bytes] = []
        self.rejected = 0
        self.connections = 0
        self.cpu0 = time.process_time()
        self.wall0 = time.perf_counter()

    def fails(self) -> bool:
        return self.fail_rate > 0 and self.rng.random() < self.fail_rate

    def accept(self, content: bytes) -> None:
        head_end = content.find(b"\r\n\r\n")
        for line in content[: head_end if head_end >= 0 else len(content)].split(b"\r\n"):
            if line[:11].lower() == b"message-id:":
                self.ids.append(line[11:].strip())
                return
        self.ids.append(b"")

    def stats(self) -> dict[str, Any]:
        return {
            "ids": [i.decode("ascii", "replace") for i in self.ids],
            "rejected": self.rejected,
            "connections": self.connections,
            "cpu": time.process_time() - self.cpu0,
            "wall": time.perf_counter() - self.wall0,
        }


EHLO_REPLY = b"250-bench-sink\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 HELP\r\n"


class RawSMTP(asyncio.Protocol):
    """Just enough SMTP for a sink: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def __init__(self, state: SinkState) -> None:
        self.state = state
        self.buf = bytearray()
        self.in_data = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.state.connections += 1
        transport.write(b"220 bench-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        while self.buf:
            if self.in_data:
                if self.buf.startswith(b".\r\n"):  # empty content
                    content, consumed = b"", 3
                else:
                    end = self.buf.find(b"\r\n.\r\n")
                    if end < 0:
                        return
                    content, consumed = bytes(self.buf[: end + 2]), end + 5
                del self.buf[:consumed]
                self.in_data = False
                if self.state.fail_at == "content" and self.state.fails():
                    self.state.rejected += 1
                    self.transport.write(b"451 4.3.0 bench sink: try again later\r\n")
                else:
                    self.state.accept(content)
                    self.transport.write(b"250 2.0.0 OK queued\r\n")
                continue
            i = self.buf.find(b"\r\n")
            if i < 0:
                return
            verb = bytes(self.buf[:4]).upper()
            del self.buf[: i + 2]
            self.command(verb)

    def command(self, verb: bytes) -> None:
        assert self.transport is not None
        write = self.transport.write
        if verb == b"EHLO":
            write(EHLO_REPLY)
        elif verb in (b"HELO", b"MAIL", b"RSET", b"NOOP"):
            write(b"250 OK\r\n")
        elif verb == b"RCPT":
            write(b"250 OK\r\n")
        elif verb == b"DATA":
            if self.state.fail_at == "data" and self.state.fails():
                self.state.rejected += 1
                write(b"451 4.3.0 bench sink: try again later\r\n")
            else:
                self.in_data = True
                write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        elif verb == b"QUIT":
            write(b"221 Bye\r\n")
            self.transport.close()
        else:
            write(b"500 Command not recognized\r\n")


def sink_main(conn: Any, kind: str) -> None:
    """The sink process: serve SMTP on 127.0.0.1, answer control messages on ``conn``."""
    state = SinkState()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    if kind == "raw":
        server = loop.run_until_complete(
            loop.create_server(lambda: RawSMTP(state), "127.0.0.1", 0, backlog=128)
        )
        port = server.sockets[0].getsockname()[1]
    else:
        port = loop.run_until_complete(_start_aiosmtpd(state))

    def control() -> None:
        conn.send(port)
        while True:
            msg = conn.recv()
            if msg[0] == "stop":
                loop.call_soon_threadsafe(loop.stop)
                return

            async def act(msg: tuple[Any, ...] = msg) -> Any:
                if msg[0] == "reset":
                    state.reset(*msg[1:])
                    return None
                return state.stats()

            conn.send(asyncio.run_coroutine_threadsafe(act(), loop).result())

    threading.Thread(target=control, daemon=True).start()
    loop.run_forever()


async def _start_aiosmtpd(state: SinkState) -> int:
    """aiosmtpd's SMTP class served on this process's loop (what Controller does, minus
    the thread), with a handler that records what it accepts."""
    from aiosmtpd.smtp import SMTP, Envelope, Session

    class Handler:
        async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
            if state.fails():
                state.rejected += 1
                return "451 4.3.0 bench sink: try again later"
            state.accept(envelope.original_content or b"")
            return "250 2.0.0 OK queued"

    handler = Handler()
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        state.connections += 1
        return SMTP(handler, hostname="bench-sink", enable_SMTPUTF8=True)

    server = await loop.create_server(factory, "127.0.0.1", 0, backlog=128)
    return int(server.sockets[0].getsockname()[1])


class Sink:
    def __init__(self, kind: str) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=sink_main, args=(child, kind), daemon=True)
        self.process.start()
        self.port: int = self.conn.recv()
        self.kind = kind

    def reset(self, fail_rate: float = 0.0, seed: int = 0, fail_at: str = "data") -> None:
        self.conn.send(("reset", fail_rate, seed, fail_at))
        self.conn.recv()

    def stats(self) -> dict[str, Any]:
        self.conn.send(("stats",))
        result: dict[str, Any] = self.conn.recv()
        return result

    def stop(self) -> None:
        self.conn.send(("stop",))
        self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()


# --------------------------------------------------------------------------- databases


@asynccontextmanager
async def fresh_database(backend: str, tmp_dir: Path, postgres_url: str) -> AsyncIterator[str]:
    """A new database migrated to head (as a deploy would), dropped afterwards.
    Alembic runs its own event loop, hence the thread."""
    from app.core import migrations
    from app.core.config import normalize_database_url

    if backend == "sqlite":
        path = tmp_dir / f"bench-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite+aiosqlite:///{path}"
        await asyncio.to_thread(migrations.upgrade, url)
        yield url  # the file goes with the temporary folder
        return
    name = f"pulse_bench_{uuid.uuid4().hex[:12]}"
    await _pg_exec(postgres_url, f'CREATE DATABASE "{name}"')
    url = normalize_database_url(postgres_url).rsplit("/", 1)[0] + "/" + name
    try:
        await asyncio.to_thread(migrations.upgrade, url)
        yield url
    finally:
        await _pg_exec(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _pg_exec(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://" + url.partition("://")[2], timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def postgres_unreachable(url: str) -> str | None:
    """None when we can connect, else why not."""
    try:
        await _pg_exec(url, "SELECT 1")
    except Exception as exc:
        return f"{exc.__class__.__name__}: {exc}"
    return None


# --------------------------------------------------------------------------- messages


def specs(n: int) -> list[dict[str, Any]]:
    """The N messages: what enqueue_many takes, minus the organization id."""
    return [
        {
            "dedupe_key": f"bench:{i}",
            "kind": "test",
            "recipient": f"employee{i}@example.com",
            "recipient_name": f"Employee {i}",
            "locale": LOCALES[i % len(LOCALES)],
        }
        for i in range(n)
    ]


def make_settings(url: str, port: int, batch_size: int) -> Any:
    from app.core.config import Settings

    return Settings(
        _env_file=None,
        database_url=url,
        email_url=f"smtp://127.0.0.1:{port}",
        email_retry_base_seconds=0.05,
        email_retry_max_seconds=0.5,
        email_batch_size=batch_size,
    )


class _MemorySession:
    """Answers the one lookup the "test" kind makes (its organization) from memory."""

    def __init__(self, org: Any) -> None:
        self.org = org

    async def get(self, model: Any, ident: Any) -> Any:
        return self.org


class Baseline:
    """Bare aiosmtplib over one connection; each message built as the sender builds it."""

    label = "baseline"

    def __init__(self, port: int, messages: list[dict[str, Any]], settings: Any) -> None:
        from app.notifications.outbox import Claimed

        org_id = uuid.uuid4()
        self.port = port
        self.settings = settings
        self.session: Any = _MemorySession(SimpleNamespace(id=org_id, name=ORG_NAME))
        self.claimed = [
            Claimed(
                id=uuid.uuid4(),
                organization_id=org_id,
                about_type=None,
                about_id=None,
                attempts=1,
                **{k: m[k] for k in ("dedupe_key", "kind", "recipient", "recipient_name")},
                locale=m["locale"],
            )
            for m in messages
        ]

    async def send(self, lo: int, hi: int) -> float:
        """Send messages [lo, hi) over one connection; returns the seconds spent building."""
        import aiosmtplib

        from app.notifications.render import build_message, render

        clock = time.perf_counter
        build = 0.0
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port, timeout=30)
        await client.connect()
        for c in self.claimed[lo:hi]:
            t = clock()
            msg = build_message(await render(self.session, c, self.settings), c, self.settings)
            build += clock() - t
            errors, _ = await client.send_message(msg)
            if errors:
                raise RuntimeError(f"baseline refused: {errors}")
        await client.quit()
        return build


class Subject:
    """The outbox on one database: enqueue (not timed), then deliver_outbox."""

    def __init__(self, backend: str, url: str, settings: Any) -> None:
        from app.core.db import Database

        self.label = f"outbox {backend}"
        self.backend = backend
        self.settings = settings
        self.db = Database.from_url(url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)

    async def enqueue(self, messages: list[dict[str, Any]]) -> float:
        from app.notifications import outbox
        from app.organizations.service import get_or_create_organization

        t = time.perf_counter()
        async with self.db.sessionmaker() as session, session.begin():
            org = await get_or_create_organization(session, ORG_NAME)
            rows = [{"organization_id": org.id, **m} for m in messages]
            await outbox.enqueue_many(session, rows)
        return time.perf_counter() - t

    async def deliver(self, max_batches: int | None) -> int:
        from app.notifications.sender import deliver_outbox

        return await deliver_outbox(self.db, self.settings, max_batches=max_batches)

    async def left(self) -> tuple[int, datetime | None]:
        """How many rows are pending or sending, and when the first is due."""
        from sqlalchemy import func, select

        from app.notifications.models import OutboxMessage as M

        async with self.db.sessionmaker() as session:
            count, due = (
                await session.execute(
                    select(func.count(), func.min(M.next_attempt_at)).where(
                        M.status.in_(("pending", "sending"))
                    )
                )
            ).one()
        return int(count), due

    async def statuses(self) -> tuple[dict[str, int], int]:
        """Rows by status, and attempts summed over all rows."""
        from sqlalchemy import func, select

        from app.notifications.models import OutboxMessage as M

        async with self.db.sessionmaker() as session:
            by_status = await session.execute(select(M.status, func.count()).group_by(M.status))
            attempts = await session.scalar(select(func.sum(M.attempts)))
        return {s: int(c) for s, c in by_status.all()}, int(attempts or 0)

    async def close(self) -> None:
        await self.db.dispose()


# --------------------------------------------------------------------------- checks, report


@dataclass
class Segment:
    n: int
    seconds: float
    cpu: float  # this process, all threads (the aiosqlite thread too; not PostgreSQL's)
    sink_cpu: float
    build: float = 0.0

    @property
    def rate(self) -> float:
        return self.n / self.seconds


@dataclass
class Series:
    label: str
    segments: list[Segment] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return sum(s.n for s in self.segments)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.segments)

    @property
    def median(self) -> float:
        return statistics.median(s.rate for s in self.segments)

    @property
    def cpu_ms(self) -> float:
        return 1000 * sum(s.cpu for s in self.segments) / self.n


def check_ids(ids: list[str], expected: list[str]) -> tuple[int, int, int]:
    """(duplicates, missing, unexpected) Message-IDs at the sink."""
    seen = Counter(ids)
    want = set(expected)
    duplicates = sum(c - 1 for c in seen.values() if c > 1)
    return duplicates, len(want - seen.keys()), len(seen.keys() - want)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --------------------------------------------------------------------------- the runs


async def interleaved(
    args: argparse.Namespace,
    sink: Sink,
    backends: list[str],
    messages: list[dict[str, Any]],
    expected: list[str],
    tmp_dir: Path,
    failures: list[str],
) -> None:
    """Baseline and every subject take turns, one segment each per round, each series
    sending all N messages over the rounds; the order reverses every other round."""
    per_round = max(1, round(args.n / args.rounds / args.batch_size))  # batches per segment
    size = per_round * args.batch_size
    rounds = math.ceil(args.n / size)
    async with AsyncExitStack() as stack:
        baseline = Baseline(
            sink.port, messages, make_settings("sqlite://", sink.port, args.batch_size)
        )
        subjects: list[Subject] = []
        for b in backends:
            url = await stack.enter_async_context(fresh_database(b, tmp_dir, args.postgres_url))
            subject = Subject(b, url, make_settings(url, sink.port, args.batch_size))
            stack.push_async_callback(subject.close)
            enqueued = await subject.enqueue(messages)
            say(f"  {subject.label}: {args.n:,} rows enqueued in {enqueued:.1f} s (not timed)")
            subjects.append(subject)
        say(
            f"  {rounds} rounds of {size:,} messages ({per_round} batch(es)) per series; "
            "the last round's deliver_outbox runs until nothing is due"
        )
        jobs: list[Baseline | Subject] = [baseline, *subjects]
        series = {x.label: Series(x.label) for x in jobs}
        for r in range(rounds):
            lo, hi = r * size, min(args.n, (r + 1) * size)
            for job in jobs if r % 2 == 0 else jobs[::-1]:
                sink.reset()
                cpu = time.process_time()
                t = time.perf_counter()
                if isinstance(job, Baseline):
                    build = await job.send(lo, hi)
                    n = hi - lo
                else:
                    build = 0.0
                    n = await job.deliver(None if r == rounds - 1 else per_round)
                seconds = time.perf_counter() - t
                cpu = time.process_time() - cpu
                stats = sink.stats()
                series[job.label].segments.append(Segment(n, seconds, cpu, stats["cpu"], build))
                series[job.label].ids.extend(stats["ids"])
            say(
                f"  round {r + 1:>2}: "
                + ", ".join(f"{s.label} {s.segments[-1].rate:6.1f}" for s in series.values())
                + " msg/s"
            )

        for subject in subjects:
            left, _ = await subject.left()
            statuses, _ = await subject.statuses()
            s = series[subject.label]
            dup, missing, unexpected = check_ids(s.ids, expected)
            if left or dup or missing or unexpected or statuses.get("sent") != args.n:
                failures.append(
                    f"{s.label}: rows {statuses}, {dup} duplicate, {missing} missing, "
                    f"{unexpected} unexpected Message-IDs at the sink"
                )
        dup, missing, unexpected = check_ids(series["baseline"].ids, expected)
        if dup or missing or unexpected:
            failures.append(f"baseline: {dup} duplicate, {missing} missing, {unexpected} other")

    report(args, series, rounds, size, failures)


def report(
    args: argparse.Namespace,
    series: dict[str, Series],
    rounds: int,
    size: int,
    failures: list[str],
) -> None:
    base = series["baseline"]
    base_rate = base.median
    build = sum(s.build for s in base.segments)
    send_only = statistics.median(s.n / (s.seconds - s.build) for s in base.segments)
    say()
    say(
        f"Medians of {rounds} rounds of {size:,} messages; in brackets the whole series and "
        "this process's CPU per message (all its threads; not PostgreSQL's, not the sink's):"
    )
    say(
        f"  baseline            {base_rate:7.1f} msg/s  ({base.n / base.seconds:.1f} msg/s in "
        f"{base.seconds:.1f} s; {base.cpu_ms:.2f} ms CPU/msg; building messages {build:.1f} s)"
    )
    say(f"    same, message building excluded: {send_only:.1f} msg/s (for information)")
    for label, s in series.items():
        if label == "baseline":
            continue
        rate = s.median
        ratio = rate / base_rate
        ok_rate, ok_ratio = rate >= TARGET_RATE, ratio >= TARGET_RATIO
        say(
            f"  {label:<19} {rate:7.1f} msg/s  ({s.n / s.seconds:.1f} msg/s in {s.seconds:.1f} s;"
            f" {s.cpu_ms:.2f} ms CPU/msg)  = {ratio:.1%} of baseline"
        )
        say(
            f"    target ≥ {TARGET_RATE:.0f} msg/s: {verdict(ok_rate)};  "
            f"target ≥ {TARGET_RATIO:.0%} of baseline: {verdict(ok_ratio)}"
        )
        if not ok_rate:
            failures.append(f"{label}: {rate:.1f} msg/s < {TARGET_RATE:.0f}")
        if not ok_ratio:
            failures.append(f"{label}: {ratio:.1%} of baseline < {TARGET_RATIO:.0%}")

    segments = [seg for s in series.values() for seg in s.segments]
    capacity = sum(seg.n for seg in segments) / sum(seg.sink_cpu for seg in segments)
    busiest = max(seg.sink_cpu / seg.seconds for seg in segments)
    fastest = max(seg.rate for seg in segments)
    say(
        f"  sink capacity ≈ {capacity:,.0f} msg per sink CPU-second, "
        f"{capacity / fastest:.1f}× the fastest segment above; the sink's CPU was at most "
        f"{busiest:.0%} busy."
    )
    say(
        "    (The baseline is measured against this same sink, so the sink sustains at "
        "least the baseline rate; its CPU shows how far above that it could go.)"
    )
    if capacity < 2 * fastest:
        failures.append("sink capacity is under 2× the fastest segment: it may bound the figures")


async def failure_run(
    args: argparse.Namespace,
    sink: Sink,
    backend: str,
    messages: list[dict[str, Any]],
    expected: list[str],
    tmp_dir: Path,
    failures: list[str],
) -> None:
    """Deliver with the sink refusing a fifth of attempts; call deliver_outbox again
    (sleeping until the next retry is due) until nothing is pending or sending."""
    from app.core.db import utcnow

    async with fresh_database(backend, tmp_dir, args.postgres_url) as url:
        subject = Subject(backend, url, make_settings(url, sink.port, args.batch_size))
        try:
            await subject.enqueue(messages)
            sink.reset(FAIL_RATE, args.seed, args.fail_at)
            calls, slept = 0, 0.0
            t = time.perf_counter()
            while True:
                await subject.deliver(None)
                calls += 1
                left, due = await subject.left()
                if not left:
                    break
                wait = max(0.0, (due - utcnow()).total_seconds()) if due else 0.05
                slept += wait
                await asyncio.sleep(wait)
            seconds = time.perf_counter() - t
            stats = sink.stats()
            statuses, attempts = await subject.statuses()
        finally:
            await subject.close()
    dup, missing, unexpected = check_ids(stats["ids"], expected)
    ok = not (dup or missing or unexpected) and statuses.get("sent") == args.n
    rows = ", ".join(f"{k} {v:,}" for k, v in sorted(statuses.items()))
    say(
        f"  {subject.label:<19} {args.n / seconds:7.1f} msg/s  ({seconds:.1f} s, "
        f"{calls} deliver_outbox calls, {slept:.1f} s of it asleep until a retry was due)"
    )
    say(
        f"    rows: {rows}; attempts {attempts:,}; sink: 451s {stats['rejected']:,}, "
        f"connections {stats['connections']:,}"
    )
    say(
        f"    sink received {len(set(stats['ids'])):,} distinct Message-IDs of {args.n:,}: "
        f"duplicates {dup}, missing {missing}, unexpected {unexpected}  "
        f"no duplicates, nothing lost: {verdict(ok)}"
    )
    if not ok:
        failures.append(
            f"451 run {backend}: rows {statuses}, {dup} duplicate, {missing} missing, "
            f"{unexpected} unexpected"
        )


async def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    why = None
    if args.backend != "sqlite":
        why = await postgres_unreachable(args.postgres_url)
    if args.backend is None:
        backends = ["sqlite"] if why else ["sqlite", "postgresql"]
    elif args.backend == "both":
        backends = ["sqlite", "postgresql"]
    else:
        backends = [args.backend]
    if "postgresql" in backends and why:
        say(f"PostgreSQL at {args.postgres_url} is unreachable: {why}")
        return 1

    from app.core.config import Settings
    from app.notifications.render import message_id

    email_from = Settings(_env_file=None).email_from
    messages = specs(args.n)
    expected = [message_id(m["dedupe_key"], email_from) for m in messages]

    say(
        f"Outbox delivery of N={args.n:,} messages of kind 'test' (locales "
        f"{'/'.join(LOCALES)}), email_batch_size={args.batch_size}; Python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPUs; backends: {', '.join(backends)}"
    )
    if why and args.backend is None:
        say(f"  PostgreSQL skipped ({args.postgres_url} unreachable: {why})")
    sink = Sink(args.sink)
    what = "a minimal asyncio SMTP server" if args.sink == "raw" else "aiosmtpd's SMTP class"
    say(f"Load average before: {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min)")
    say(f"Sink: {what} in its own process (pid {sink.process.pid}, port {sink.port})")
    say(
        "Baseline: bare aiosmtplib.SMTP over one connection (one per round), each message "
        "built in the timed loop the way the sender builds it: render() (its organization "
        "lookup answered from memory) + build_message()"
    )
    say(
        "Subject: outbox.enqueue_many into a fresh migrated database (not timed), then "
        "sender.deliver_outbox(db, settings) timed until every row is sent"
    )
    failures: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
            tmp_dir = Path(tmp)
            say()
            say("Interleaved runs:")
            await interleaved(args, sink, backends, messages, expected, tmp_dir, failures)
            if not args.no_failure_run:
                where = (
                    "the DATA command"
                    if args.fail_at == "data" and args.sink == "raw"
                    else "the end of the message content"
                )
                say()
                say(
                    f"Failure run: the sink answers 451 to a random {FAIL_RATE:.0%} of "
                    f"attempts (at {where}; seed {args.seed}); retry base 0.05 s, max 0.5 s"
                )
                for b in backends:
                    await failure_run(args, sink, b, messages, expected, tmp_dir, failures)
    finally:
        sink.stop()
    say()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    say(f"Total {time.perf_counter() - started:.0f} s; load average after: {load}")
    if failures:
        say("FAILED: " + "; ".join(failures))
        return 1
    say("All targets met.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Outbox delivery to a local SMTP sink beside bare aiosmtplib."
    )
    parser.add_argument("--n", type=int, default=10_000, help="messages per series (10,000)")
    parser.add_argument(
        "--rounds", type=int, default=10, help="interleaved rounds the N are split into (10)"
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
    parser.add_argument("--batch-size", type=int, default=100, help="email_batch_size (100)")
    parser.add_argument("--sink", choices=("raw", "aiosmtpd"), default="raw")
    parser.add_argument(
        "--fail-at",
        choices=("data", "content"),
        default="data",
        help="451 as the reply to the DATA command (default) or after the content "
        "(always after the content with --sink aiosmtpd)",
    )
    parser.add_argument("--seed", type=int, default=1, help="the sink's 451 draw (1)")
    parser.add_argument("--no-failure-run", action="store_true", help="skip the 451 run")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
