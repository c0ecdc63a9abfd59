"""Liveness, readiness and metrics for the people who run Pulse."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core import migrations
from app.core.config import Settings
from app.core.db import Database
from app.main import create_app
from tests.conftest import Org, make_settings
from tests.core.problems import assert_problem
from tests.live import live_server


async def test_liveness_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_database_is_migrated(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"


async def readyz_for(database_url: str) -> httpx.Response:
    app = create_app(make_settings(database_url))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pulse.test") as client:
            return await client.get("/readyz")
    finally:
        await app.state.db.dispose()


async def test_not_ready_when_database_was_never_migrated(tmp_path: Path) -> None:
    response = await readyz_for(f"sqlite:///{tmp_path / 'empty.db'}")
    assert_problem(response, 503)


async def test_not_ready_when_migrations_are_behind(tmp_path: Path) -> None:
    path = tmp_path / "behind.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('0000_older')")
    response = await readyz_for(f"sqlite:///{path}")
    problem = assert_problem(response, 503)
    assert "pulse migrate" in problem["detail"]


async def test_not_ready_when_database_is_unreachable(tmp_path: Path) -> None:
    response = await readyz_for(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
    problem = assert_problem(response, 503)
    assert str(tmp_path) not in problem["detail"]


async def test_metrics_count_requests_by_route_template(
    client: httpx.AsyncClient, org: Org
) -> None:
    missing = uuid.uuid4()
    assert (await client.get(f"/v1/employees/{missing}", headers=org.admin)).status_code == 404
    assert (await client.get("/v1/employees", headers=org.admin)).status_code == 200
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE pulse_http_requests_total counter" in text
    by_id = 'method="GET",route="/v1/employees/{employee_id}",status="404"'
    assert f"pulse_http_requests_total{{{by_id}}} 1.0" in text
    assert 'pulse_http_requests_total{method="GET",route="/v1/employees",status="200"} 1.0' in text
    assert str(missing) not in text
    assert "pulse_http_request_duration_seconds_bucket" in text


async def test_metrics_keep_unknown_paths_in_one_series(client: httpx.AsyncClient) -> None:
    for n in range(3):
        await client.get(f"/scanner/probe-{n}")
    text = (await client.get("/metrics")).text
    assert 'pulse_http_requests_total{method="GET",route="unmatched",status="404"} 3.0' in text
    assert "probe-" not in text


async def test_metrics_keep_made_up_methods_in_one_series(client: httpx.AsyncClient) -> None:
    for method in ("BREW", "WHEN", "PROPFIND"):
        await client.request(method, "/healthz")
    text = (await client.get("/metrics")).text
    for method in ("BREW", "WHEN", "PROPFIND"):
        assert f'method="{method}"' not in text
    assert 'method="OTHER"' in text


async def test_metrics_never_label_a_personal_link_token(client: httpx.AsyncClient) -> None:
    await client.get("/r/tok3n-that-must-not-leak")
    assert "tok3n-that-must-not-leak" not in (await client.get("/metrics")).text


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_head_answers_like_get_without_a_body(client: httpx.AsyncClient, path: str) -> None:
    """Uptime checkers send HEAD."""
    get = await client.get(path)
    head = await client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert "x-request-id" in head.headers


async def test_head_on_a_database_that_is_not_ready_is_503(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'empty.db'}"))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pulse.test") as client:
            response = await client.head("/readyz")
    finally:
        await app.state.db.dispose()
    assert response.status_code == 503
    assert response.content == b""


async def test_head_is_counted_as_head(client: httpx.AsyncClient) -> None:
    await client.head("/healthz")
    text = (await client.get("/metrics")).text
    assert 'pulse_http_requests_total{method="HEAD",route="/healthz",status="200"} 1.0' in text


def test_head_over_real_http_keeps_get_s_length_and_sends_no_body(
    settings: Settings, db: Database
) -> None:
    with live_server(create_app(settings, db=db)) as base:
        get = httpx.get(f"{base}/healthz")
        head = httpx.head(f"{base}/healthz")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))


async def test_start_up_check_warns_about_a_database_never_migrated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every API call on it answers 500; the operator must learn why when starting."""
    url = make_settings(f"sqlite:///{tmp_path / 'empty.db'}").database_url
    db = Database.from_url(url)
    try:
        with caplog.at_level(logging.WARNING, logger="pulse.migrations"):
            problem = await migrations.warn_if_pending(db.engine, url)
    finally:
        await db.dispose()
    assert problem is not None
    warnings = [r.getMessage() for r in caplog.records if r.name == "pulse.migrations"]
    assert len(warnings) == 1
    assert "never migrated" in warnings[0]
    assert "pulse migrate" in warnings[0]


async def test_start_up_check_names_the_migration_a_database_is_behind_at(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "behind.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('0006')")
    url = make_settings(f"sqlite:///{path}").database_url
    db = Database.from_url(url)
    try:
        with caplog.at_level(logging.WARNING, logger="pulse.migrations"):
            await migrations.warn_if_pending(db.engine, url)
    finally:
        await db.dispose()
    message = caplog.records[-1].getMessage()
    assert "0006" in message
    assert "pulse migrate" in message


async def test_start_up_check_is_quiet_on_a_migrated_database(
    engine: AsyncEngine, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pulse.migrations"):
        assert await migrations.warn_if_pending(engine, database_url) is None
    assert not [r for r in caplog.records if r.name == "pulse.migrations"]


async def test_start_up_check_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = make_settings(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}").database_url
    db = Database.from_url(url)
    try:
        with caplog.at_level(logging.WARNING, logger="pulse.migrations"):
            assert await migrations.warn_if_pending(db.engine, url) is None
    finally:
        await db.dispose()
    assert "could not check" in caplog.records[-1].getMessage()
