"""Test databases: a migrated SQLite file, or a fresh PostgreSQL database per use.

PostgreSQL runs when PULSE_TEST_POSTGRES_URL points at a server we can create databases
on (`bash .ci/run` sets it). Without it those tests skip and say how to enable them;
with PULSE_TEST_POSTGRES_REQUIRED=1 (CI) an unreachable server fails instead."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from app.core import migrations
from app.core.config import normalize_database_url

POSTGRES_URL = os.environ.get("PULSE_TEST_POSTGRES_URL", "").strip()
POSTGRES_REQUIRED = os.environ.get("PULSE_TEST_POSTGRES_REQUIRED") == "1"
ENABLE_HINT = (
    "PostgreSQL tests skipped: set PULSE_TEST_POSTGRES_URL=postgresql://user@host:5432/db "
    "to a server where that user may CREATE DATABASE (bash .ci/run does this)"
)

T = TypeVar("T")


def in_thread(fn: Callable[[], T]) -> T:
    """Run blocking code that calls asyncio.run (Alembic's async env) off the test loop."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _pg_admin_dsn() -> str:
    return normalize_database_url(POSTGRES_URL).replace("postgresql+asyncpg://", "postgresql://")


def require_postgres() -> None:
    if not POSTGRES_URL:
        if POSTGRES_REQUIRED:
            pytest.fail("PULSE_TEST_POSTGRES_REQUIRED=1 but PULSE_TEST_POSTGRES_URL is unset")
        pytest.skip(ENABLE_HINT)

    async def ping() -> None:
        conn = await asyncpg.connect(_pg_admin_dsn(), timeout=5)
        await conn.close()

    try:
        in_thread(lambda: asyncio.run(ping()))
    except Exception as exc:
        if POSTGRES_REQUIRED:
            pytest.fail(f"PostgreSQL at PULSE_TEST_POSTGRES_URL is unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable ({exc.__class__.__name__}); {ENABLE_HINT}")


def _pg_exec(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(_pg_admin_dsn(), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    in_thread(lambda: asyncio.run(run()))


@contextmanager
def empty_database(backend: str, tmp_dir: Path) -> Iterator[str]:
    """A new, empty database of the backend; dropped afterwards. Yields its async URL."""
    if backend == "sqlite":
        path = tmp_dir / f"pulse-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    require_postgres()
    name = f"pulse_test_{uuid.uuid4().hex[:12]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    base = normalize_database_url(POSTGRES_URL)
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def migrated_database(backend: str, tmp_dir: Path) -> Iterator[str]:
    """A new database built by running every migration, as a deploy would."""
    with empty_database(backend, tmp_dir) as url:
        in_thread(lambda: migrations.upgrade(url))
        yield url
