"""The declarative base, column types, the engine and the per-request session."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from fastapi import Request
from sqlalchemy import JSON, DateTime, MetaData, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so migrations can drop and alter them by name on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


_id_lock = threading.Lock()
_id_state = {"ms": 0, "counter": 0}


def new_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): unguessable, and time-ordered so keyset pagination by id
    lists rows in creation order. Within one millisecond the 12-bit ``rand_a`` field is
    a counter (RFC 9562 §6.2, method 1), so ids made in a row still sort in the order
    they were made. (``uuid.uuid7`` arrives in Python 3.14.)"""
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _id_state["ms"]:
            ms = _id_state["ms"]
            counter = _id_state["counter"] + 1
            if counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                ms += 1
                counter = secrets.randbelow(0x800)
        else:
            counter = secrets.randbelow(0x800)  # random start, with room to count up
        _id_state["ms"], _id_state["counter"] = ms, counter
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= counter << 64  # rand_a as a counter
    value |= 0b10 << 62  # variant
    value |= secrets.randbits(62)  # rand_b
    return uuid.UUID(int=value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware.

    SQLite keeps no offset, so without this a value read back would be naive and compare
    wrongly with aware ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; Pulse stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[dict[str, Any]]: JSONType,
        list[int]: JSONType,
        list[str]: JSONType,
    }


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """WAL, foreign keys on, a busy timeout instead of instant 'database is locked', and
    our own BEGIN IMMEDIATEs so SAVEPOINTs work (the sqlite3 driver's own transaction
    handling breaks them; see SQLAlchemy's pysqlite notes) and writers queue instead of
    failing (see _on_begin)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock at BEGIN, waiting up to the busy timeout. A
        # deferred BEGIN that reads, then writes after another connection committed,
        # fails at once with SQLITE_BUSY_SNAPSHOT (the busy timeout does not apply to
        # that upgrade): with the worker writing beside the API, requests that read
        # then write (every authenticated one updates last_used_at) would answer 500.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


async def refresh_statistics(session: AsyncSession, table: str) -> None:
    """Let SQLite's planner know how the rows of ``table`` are spread.

    Without statistics SQLite takes every indexed equality as selective: for a wave it
    then walks the directory by its organization index (on the embedded default that
    is every row) and sorts, instead of reading it in primary-key order.
    PostgreSQL's autovacuum keeps its own statistics, so this does nothing there."""
    if session.get_bind().dialect.name == "sqlite":
        # Not ANALYZE with an analysis_limit: its sampled counts made the organization
        # index look selective again. A full pass over 100,000 employees takes ~40 ms.
        await session.execute(text(f'ANALYZE "{table}"'))


def make_engine(url: str, *, busy_timeout_ms: int = 5000) -> AsyncEngine:
    if url.startswith("sqlite"):
        # One connection: with BEGIN IMMEDIATE transactions run one at a time anyway, and
        # the pool queues them first come, first served, where several connections would
        # poll SQLite's busy handler and some would time out (a 500) under load.
        database = make_url(url).database or ""
        in_memory = database in ("", ":memory:") or "mode=memory" in url
        # (An in-memory database already has exactly one connection, a StaticPool.)
        pool = {} if in_memory else {"pool_size": 1, "max_overflow": 0, "pool_timeout": 60}
        engine = create_async_engine(url, **pool)
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """The engine and the session factory the app and the worker share.

    Tests build one around a single connection whose outer transaction they roll back;
    sessions then commit to SAVEPOINTs and nothing survives the test."""

    def __init__(self, engine: AsyncEngine | None, sessionmaker: async_sessionmaker[AsyncSession]):
        self.engine = engine
        self.sessionmaker = sessionmaker

    @classmethod
    def from_url(cls, url: str, *, busy_timeout_ms: int = 5000) -> Database:
        engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
        return cls(engine, async_sessionmaker(engine, expire_on_commit=False))

    @classmethod
    def from_connection(cls, connection: AsyncConnection) -> Database:
        maker = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        return cls(None, maker)

    async def dispose(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the endpoint returns, rolled back when
    it raises. Used with ``Depends(..., scope="function")`` so the commit happens before
    the response is sent, and a failed commit still becomes an error response."""
    db: Database = request.app.state.db
    async with db.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()
