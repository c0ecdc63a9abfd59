"""Databases for the benchmarks: a fresh migrated SQLite file or PostgreSQL database per
run, dropped afterwards (the tests have their own, tests/databases.py, tied to pytest)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def pg_dsn(url: str) -> str:
    """asyncpg wants postgresql://, SQLAlchemy postgresql+asyncpg://."""
    return "postgresql://" + url.partition("://")[2]


async def pg_exec(url: str, *sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_dsn(url), timeout=10)
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


def postgres_unreachable(url: str) -> str | None:
    """None when we can connect, else why not."""
    try:
        asyncio.run(pg_exec(url, "SELECT 1"))
    except Exception as exc:
        return f"{exc.__class__.__name__}: {exc}"
    return None


def sqlite_path(url: str) -> str:
    return url.split(":///", 1)[1]


@contextmanager
def fresh_database(backend: str, tmp_dir: Path, postgres_url: str) -> Iterator[str]:
    """A new database migrated to head, removed afterwards; yields its async URL."""
    from app.core import migrations
    from app.core.config import normalize_database_url

    if backend == "sqlite":
        path = tmp_dir / f"bench-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite+aiosqlite:///{path}"
        try:
            migrations.upgrade(url)
            yield url
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"pulse_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(pg_exec(postgres_url, f'CREATE DATABASE "{name}"'))
    url = normalize_database_url(postgres_url).rsplit("/", 1)[0] + "/" + name
    try:
        migrations.upgrade(url)
        yield url
    finally:
        asyncio.run(pg_exec(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
