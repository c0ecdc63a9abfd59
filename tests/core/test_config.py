"""Settings: a bad value stops start-up with one line naming the variable."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from app.core.config import Settings, describe_settings_error, normalize_database_url
from app.core.db import make_engine
from tests import databases
from tests.test_cli import run_pulse


def settings_with(**values: object) -> Settings:
    return Settings(_env_file=None, email_url="console://", **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "value",
    [
        "HR, Acme <hr@example.com>",
        "not an address",
        "hr@example.com, it@example.com",
        "Pulse <pulse@example.com",
        "Pulse <@example.com>",
        "Pulse <pulse@>",
        "Pulse <pulse@exa mple.com>",
        "Pulse <pulse@example.com>\r\nBcc: everyone@example.com",
        "",
    ],
)
def test_email_from_that_is_not_one_address_stops_start_up(tmp_path: Path, value: str) -> None:
    result = run_pulse("migrate", cwd=tmp_path, env={"PULSE_EMAIL_FROM": value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pulse: configuration error: PULSE_EMAIL_FROM: ")
    assert "Pulse <pulse@example.com>" in lines[0]  # the example of what to write
    assert "Traceback" not in result.stderr


def test_a_display_name_with_a_comma_is_told_to_quote_it() -> None:
    with pytest.raises(ValidationError) as caught:
        settings_with(email_from="HR, Acme <hr@example.com>")
    line = describe_settings_error(caught.value)
    assert line.startswith("PULSE_EMAIL_FROM: must be exactly one address")
    assert '"HR, Acme" <hr@example.com>' in line


@pytest.mark.parametrize(
    "value",
    [
        "Pulse <pulse@example.com>",
        "Pulse <pulse@localhost>",
        "pulse@example.com",
        "<pulse@mail.corp.internal>",
        '"HR, Acme" <hr@example.com>',
        "Pülse Team <pulse@example.com>",
        "نبض <pulse@example.com>",
    ],
)
def test_one_address_with_or_without_a_display_name_is_accepted(value: str) -> None:
    assert settings_with(email_from=value).email_from == value


def test_default_email_from_is_accepted() -> None:
    assert settings_with().email_from == "Pulse <pulse@localhost>"


@pytest.mark.parametrize("value", ["debug", "Debug", "warning", "INFO", "error"])
def test_log_level_is_accepted_in_any_case(value: str) -> None:
    assert settings_with(log_level=value).log_level == value.upper()


def test_lower_case_log_level_starts(tmp_path: Path) -> None:
    result = run_pulse("migrate", cwd=tmp_path, env={"PULSE_LOG_LEVEL": "debug"})
    assert result.returncode == 0, result.stderr


def test_unknown_log_level_is_still_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        settings_with(log_level="verbose")
    assert describe_settings_error(caught.value).startswith("PULSE_LOG_LEVEL: ")


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        (
            "postgresql://user@db.example.com/pulse?sslmode=require",
            "postgresql+asyncpg://user@db.example.com/pulse?ssl=require",
        ),
        (
            "postgres://user:pw@db.example.com:5433/pulse?sslmode=verify-full",
            "postgresql+asyncpg://user:pw@db.example.com:5433/pulse?ssl=verify-full",
        ),
        (
            "postgresql+asyncpg://user@db/pulse?sslmode=disable",
            "postgresql+asyncpg://user@db/pulse?ssl=disable",
        ),
        ("postgresql://user@db/pulse?ssl=prefer", "postgresql+asyncpg://user@db/pulse?ssl=prefer"),
        (
            "postgresql://user@db/pulse?sslmode=allow&target_session_attrs=read-write",
            "postgresql+asyncpg://user@db/pulse?ssl=allow&target_session_attrs=read-write",
        ),
        ("postgresql://user@db/pulse", "postgresql+asyncpg://user@db/pulse"),
    ],
)
def test_libpq_sslmode_becomes_asyncpg_ssl(url: str, normalized: str) -> None:
    assert normalize_database_url(url) == normalized


def test_password_survives_the_query_rewrite() -> None:
    url = normalize_database_url("postgresql://user:p%40ss%2Fw@db/pulse?sslmode=require")
    assert make_engine(url).url.password == "p@ss/w"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://user@db/pulse?sslmode=sometimes", "sslmode 'sometimes'"),
        ("postgresql://user@db/pulse?ssl=true", "ssl 'true'"),
        ("postgresql://user@db/pulse?application_name=pulse", "'application_name'"),
        ("postgresql://user@db/pulse?connect_timeout=5", "'connect_timeout'"),
        ("postgresql://user@db/pulse?sslmode=require&ssl=disable", "not both"),
        ("postgresql://user@db/pulse?sslmode=require&sslmode=disable", "more than once"),
    ],
)
def test_query_parameter_asyncpg_cannot_take_is_refused(url: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        normalize_database_url(url)


def test_unsupported_database_parameter_stops_start_up_with_one_line(tmp_path: Path) -> None:
    env = {"PULSE_DATABASE_URL": "postgresql://user@db/pulse?application_name=pulse"}
    result = run_pulse("migrate", cwd=tmp_path, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PULSE_DATABASE_URL" in lines[0]
    assert "application_name" in lines[0]


def test_sslmode_disable_connects_to_postgresql() -> None:
    databases.require_postgres()
    url = normalize_database_url(f"{databases.POSTGRES_URL}?sslmode=disable")

    async def select_one() -> int:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT 1"))).scalar_one())
        finally:
            await engine.dispose()

    assert databases.in_thread(lambda: asyncio.run(select_one())) == 1
