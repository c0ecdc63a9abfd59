"""Fixtures for the email tests: a real SMTP server per test, settings that point at it
with retry delays short enough to wait out, and committed databases for the tests that
need real concurrency (two senders, a killed worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from app.core.config import Settings
from app.core.db import Database
from tests.conftest import make_settings
from tests.databases import migrated_database
from tests.notifications.smtp import SmtpServer, running_smtp_server


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


def smtp_settings_for(database_url: str, server: SmtpServer, **overrides: object) -> Settings:
    """Retries come due within 50 ms, so a test waits them out at once. A test that looks
    at a deferred row runs one batch (``max_batches=1``): the sender would otherwise
    claim that row again in the same call."""
    values: dict[str, object] = {
        "email_url": server.url,
        "email_retry_base_seconds": 0.01,
        "email_retry_max_seconds": 0.05,
        "email_timeout_seconds": 5.0,
        **overrides,
    }
    return make_settings(database_url, **values)


@pytest.fixture
def smtp_settings(database_url: str, smtp: SmtpServer) -> Settings:
    return smtp_settings_for(database_url, smtp)


@pytest.fixture
def committed_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database of its own, migrated, whose commits are real (dropped afterwards)."""
    with migrated_database(backend, tmp_path) as url:
        yield url


@pytest_asyncio.fixture
async def committed_db(committed_url: str) -> AsyncIterator[Database]:
    database = Database.from_url(committed_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A PostgreSQL database of its own; skips when no server is configured."""
    with migrated_database("postgresql", tmp_path) as url:
        yield url
