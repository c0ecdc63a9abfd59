"""Liveness, readiness and metrics for the people who run Pulse."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import httpx

from app.main import create_app
from tests.conftest import Org, make_settings
from tests.core.problems import assert_problem


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
