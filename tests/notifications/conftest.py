"""Fixtures for the email tests: a real SMTP server per test, settings that point at it
with retry delays short enough to wait out, committed databases for the tests that
need real concurrency (two senders, a killed worker), and a certificate and a host
name for the tests of a remote server's TLS."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from app.core.config import Settings
from app.core.db import Database
from tests.conftest import make_settings
from tests.databases import migrated_database
from tests.notifications.smtp import (
    Certificate,
    SmtpServer,
    running_smtp_server,
    self_signed_certificate,
)

REMOTE_HOST = "smtp.example.test"


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


@pytest.fixture
def remote_host(monkeypatch: pytest.MonkeyPatch) -> str:
    """A mail host name that leads to the test server on 127.0.0.1, as a provider's name
    leads to theirs: by its name it is not loopback, so the rules for a remote server
    (no password in clear) apply to it."""
    resolve = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return resolve("127.0.0.1" if host == REMOTE_HOST else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return REMOTE_HOST


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for REMOTE_HOST and 127.0.0.1."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), REMOTE_HOST)


@pytest.fixture
def trusted_certificate(certificate: Certificate, monkeypatch: pytest.MonkeyPatch) -> Certificate:
    """The test certificate as the only one the client trusts (OpenSSL reads
    SSL_CERT_FILE whenever a default context is made), as a provider's certificate is
    trusted through the system's store."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))
    return certificate
