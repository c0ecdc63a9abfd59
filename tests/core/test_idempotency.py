"""``Idempotency-Key`` on POST: a retried request is answered once."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.core.config import Settings
from app.core.db import Database
from app.core.idempotency import IdempotencyRecord
from app.main import create_app
from tests.conftest import Org
from tests.core.problems import assert_problem

LENA = {"email": "lena.berg@example.com", "name": "Lena Berg", "team": "Sales"}


async def employee_emails(client: httpx.AsyncClient, org: Org) -> list[str]:
    response = await client.get("/v1/employees", headers=org.admin)
    assert response.status_code == 200
    return [e["email"] for e in response.json()["items"]]


async def test_retry_with_same_key_and_body_creates_one_employee(
    client: httpx.AsyncClient, org: Org
) -> None:
    headers = {**org.admin, "Idempotency-Key": "create-lena-1"}
    first = await client.post("/v1/employees", json=LENA, headers=headers)
    second = await client.post("/v1/employees", json=LENA, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.content == first.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert await employee_emails(client, org) == ["lena.berg@example.com"]


async def test_replay_keeps_its_own_request_id(client: httpx.AsyncClient, org: Org) -> None:
    headers = {**org.admin, "Idempotency-Key": "create-lena-rid"}
    await client.post("/v1/employees", json=LENA, headers={**headers, "X-Request-ID": "first-0001"})
    second = await client.post(
        "/v1/employees", json=LENA, headers={**headers, "X-Request-ID": "second-0001"}
    )
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["x-request-id"] == "second-0001"


async def test_same_key_with_a_different_body_is_rejected(
    client: httpx.AsyncClient, org: Org
) -> None:
    headers = {**org.admin, "Idempotency-Key": "create-lena-2"}
    assert (await client.post("/v1/employees", json=LENA, headers=headers)).status_code == 201
    other = {**LENA, "email": "omar.farouk@example.com"}
    response = await client.post("/v1/employees", json=other, headers=headers)
    problem = assert_problem(response, 422)
    assert "Idempotency-Key" in problem["detail"]
    assert await employee_emails(client, org) == ["lena.berg@example.com"]


async def test_same_key_on_a_different_path_is_rejected(
    client: httpx.AsyncClient, org: Org
) -> None:
    headers = {**org.admin, "Idempotency-Key": "shared-3"}
    assert (await client.post("/v1/employees", json=LENA, headers=headers)).status_code == 201
    response = await client.post(
        "/v1/api-keys", json={"name": "x", "scope": "reports"}, headers=headers
    )
    assert_problem(response, 422)


async def test_keys_are_scoped_to_the_calling_api_key(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    ours = await client.post(
        "/v1/employees", json=LENA, headers={**org.admin, "Idempotency-Key": "same-key"}
    )
    theirs = await client.post(
        "/v1/employees", json=LENA, headers={**other_org.admin, "Idempotency-Key": "same-key"}
    )
    assert ours.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert ours.json()["id"] != theirs.json()["id"]
    assert await employee_emails(client, org) == ["lena.berg@example.com"]
    assert await employee_emails(client, other_org) == ["lena.berg@example.com"]


async def test_client_error_answer_is_replayed_too(client: httpx.AsyncClient, org: Org) -> None:
    headers = {**org.admin, "Idempotency-Key": "bad-email-1"}
    bad = {"email": "not an email"}
    first = await client.post("/v1/employees", json=bad, headers=headers)
    second = await client.post("/v1/employees", json=bad, headers=headers)
    assert_problem(first, 422)
    assert second.status_code == 422
    assert second.headers["idempotent-replayed"] == "true"
    assert second.content == first.content


async def test_conflict_answer_is_replayed_even_after_the_conflict_is_gone(
    client: httpx.AsyncClient, org: Org
) -> None:
    assert (await client.post("/v1/employees", json=LENA, headers=org.admin)).status_code == 201
    headers = {**org.admin, "Idempotency-Key": "dup-lena"}
    first = await client.post("/v1/employees", json=LENA, headers=headers)
    assert_problem(first, 409)
    second = await client.post("/v1/employees", json=LENA, headers=headers)
    assert second.status_code == 409
    assert second.headers["idempotent-replayed"] == "true"


async def test_request_without_a_key_is_not_deduplicated(
    client: httpx.AsyncClient, org: Org
) -> None:
    assert (await client.post("/v1/employees", json=LENA, headers=org.admin)).status_code == 201
    again = await client.post("/v1/employees", json=LENA, headers=org.admin)
    assert again.status_code == 409
    assert "idempotent-replayed" not in again.headers


@pytest.mark.parametrize("key", ["k" * 256, "", "   ", "tab\there"])
async def test_invalid_key_is_a_bad_request(client: httpx.AsyncClient, org: Org, key: str) -> None:
    response = await client.post(
        "/v1/employees", json=LENA, headers={**org.admin, "Idempotency-Key": key}
    )
    problem = assert_problem(response, 400)
    assert problem["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await employee_emails(client, org) == []


async def test_key_of_255_characters_is_accepted(client: httpx.AsyncClient, org: Org) -> None:
    headers = {**org.admin, "Idempotency-Key": "k" * 255}
    assert (await client.post("/v1/employees", json=LENA, headers=headers)).status_code == 201
    replay = await client.post("/v1/employees", json=LENA, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"


@pytest.fixture
def flaky_app(settings: Settings, db: Database) -> FastAPI:
    app = create_app(settings, db=db)
    calls = {"n": 0}

    @app.post("/flaky")
    async def flaky() -> dict[str, int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("first attempt fails")
        return {"attempt": calls["n"]}

    return app


async def test_server_error_is_not_stored_so_a_retry_runs_again(flaky_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=flaky_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pulse.test") as client:
        headers = {"Idempotency-Key": "flaky-1"}
        first = await client.post("/flaky", json={}, headers=headers)
        second = await client.post("/flaky", json={}, headers=headers)
        third = await client.post("/flaky", json={}, headers=headers)
    assert first.status_code == 500
    assert second.status_code == 200
    assert second.json() == {"attempt": 2}
    assert "idempotent-replayed" not in second.headers
    assert third.json() == {"attempt": 2}
    assert third.headers["idempotent-replayed"] == "true"


@pytest.fixture
def anonymous_app(settings: Settings, db: Database) -> FastAPI:
    app = create_app(settings, db=db)

    @app.post("/anonymous/{token}")
    async def anonymous(token: str) -> dict[str, str]:
        return {"token": token}

    return app


async def test_callers_without_api_keys_do_not_share_idempotency_keys(
    anonymous_app: FastAPI,
) -> None:
    """Employee links need no API key; two employees picking the same key must not collide."""
    transport = httpx.ASGITransport(app=anonymous_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pulse.test") as client:
        headers = {"Idempotency-Key": "1"}
        first = await client.post("/anonymous/token-a", json={}, headers=headers)
        second = await client.post("/anonymous/token-b", json={}, headers=headers)
    assert first.json() == {"token": "token-a"}
    assert second.status_code == 200, second.text
    assert second.json() == {"token": "token-b"}


async def test_unauthorized_answer_is_not_stored(
    client: httpx.AsyncClient, org: Org, db: Database
) -> None:
    forged = {"Authorization": "Bearer pulse_0123456789ab_" + "x" * 43}
    for _ in range(2):
        response = await client.post(
            "/v1/employees", json=LENA, headers={**forged, "Idempotency-Key": "spray-1"}
        )
        assert_problem(response, 401)
        assert "idempotent-replayed" not in response.headers
    async with db.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(IdempotencyRecord))
    assert count == 0


@pytest.fixture
def slow_app(settings: Settings, db: Database) -> tuple[FastAPI, asyncio.Event, asyncio.Event]:
    app = create_app(settings, db=db)
    started, release = asyncio.Event(), asyncio.Event()

    @app.post("/slow")
    async def slow() -> dict[str, str]:
        started.set()
        await release.wait()
        return {"done": "yes"}

    return app, started, release


async def test_retry_while_the_first_request_runs_is_a_conflict(
    slow_app: tuple[FastAPI, asyncio.Event, asyncio.Event],
) -> None:
    app, started, release = slow_app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pulse.test") as client:
        headers = {"Idempotency-Key": "slow-1", "Authorization": "Bearer anything"}
        first = asyncio.create_task(client.post("/slow", json={}, headers=headers))
        await asyncio.wait_for(started.wait(), 5)
        retry = await client.post("/slow", json={}, headers=headers)
        release.set()
        done = await first
        after = await client.post("/slow", json={}, headers=headers)
    assert assert_problem(retry, 409)["code"] == "idempotency_in_progress"
    assert done.status_code == 200
    assert after.headers["idempotent-replayed"] == "true"
    assert after.json() == {"done": "yes"}


async def new_admin_key(client: httpx.AsyncClient, org: Org) -> tuple[str, dict[str, str]]:
    """A second admin key of ``org``: its id, and headers that use it."""
    response = await client.post(
        "/v1/api-keys", json={"name": "deploy", "scope": "admin"}, headers=org.admin
    )
    assert response.status_code == 201, response.text
    created = response.json()
    return created["id"], {"Authorization": f"Bearer {created['key']}"}


async def test_revoked_key_gets_401_not_the_stored_answer(
    client: httpx.AsyncClient, org: Org
) -> None:
    key_id, auth = await new_admin_key(client, org)
    headers = {**auth, "Idempotency-Key": "create-lena-revoked"}
    first = await client.post("/v1/employees", json=LENA, headers=headers)
    assert first.status_code == 201, first.text
    revoked = await client.delete(f"/v1/api-keys/{key_id}", headers=org.admin)
    assert revoked.status_code in (200, 204), revoked.text

    retry = await client.post("/v1/employees", json=LENA, headers=headers)
    problem = assert_problem(retry, 401)
    assert problem["code"] == "invalid_api_key"
    assert retry.headers["www-authenticate"].startswith("Bearer")
    assert "idempotent-replayed" not in retry.headers
    assert "lena.berg@example.com" not in retry.text


async def test_replay_after_authentication_runs_the_endpoint_once(
    client: httpx.AsyncClient, org: Org, db: Database
) -> None:
    """The retry is authenticated by the app, then answered from the store: one
    employee, the same body, and the record kept for the next retry."""
    headers = {**org.admin, "Idempotency-Key": "create-lena-auth"}
    first = await client.post("/v1/employees", json=LENA, headers=headers)
    for _ in range(2):
        again = await client.post("/v1/employees", json=LENA, headers=headers)
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
    assert await employee_emails(client, org) == ["lena.berg@example.com"]
    async with db.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(IdempotencyRecord))
    assert count == 1


async def test_wrong_scope_retry_is_refused_after_authentication(
    client: httpx.AsyncClient, org: Org
) -> None:
    headers = {**org.reports, "Idempotency-Key": "reports-key-1"}
    first = await client.post("/v1/employees", json=LENA, headers=headers)
    second = await client.post("/v1/employees", json=LENA, headers=headers)
    assert_problem(first, 403)
    assert second.status_code == 403
    assert second.content == first.content
    assert await employee_emails(client, org) == []
