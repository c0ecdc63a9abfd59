"""Every error a client can meet is problem+json, and no internals leak."""

from __future__ import annotations

import json
import logging
import uuid

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.core.db import Database
from app.core.errors import problem_response
from app.main import create_app
from tests.conftest import Org
from tests.core.problems import assert_problem, error_fields


async def test_unknown_path_is_a_problem(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await client.get("/v1/nothing-here"), 404)
    assert problem["title"] == "Not Found"


async def test_unknown_path_is_a_problem_even_with_a_key(
    client: httpx.AsyncClient, org: Org
) -> None:
    assert_problem(await client.post("/v2/employees", json={}, headers=org.admin), 404)


async def test_wrong_method_is_a_problem_listing_the_allowed_ones(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.put("/v1/organization", json={}, headers=org.admin)
    assert_problem(response, 405)
    # HEAD is answered wherever GET is.
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "PATCH"}


async def test_validation_error_lists_each_field_and_keeps_input_out(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.post(
        "/v1/api-keys", json={"name": "", "scope": "root", "extra": 1}, headers=org.admin
    )
    problem = assert_problem(response, 422)
    assert error_fields(problem) == {"name", "scope", "extra"}
    assert problem["code"] == "validation_failed"
    for err in problem["errors"]:
        assert set(err) == {"loc", "msg"}
    assert "(and 2 more)" in problem["detail"]


async def test_body_that_is_not_json_is_a_validation_problem(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.patch(
        "/v1/organization",
        content=b"{not json",
        headers={**org.admin, "Content-Type": "application/json"},
    )
    assert_problem(response, 422)


@pytest.fixture
def boom_app(settings: Settings, db: Database) -> FastAPI:
    app = create_app(settings, db=db)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


async def test_unexpected_exception_is_a_500_problem_without_internals(
    boom_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.ASGITransport(app=boom_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pulse.test") as client:
        with caplog.at_level(logging.ERROR, logger="pulse.errors"):
            response = await client.get("/boom", headers={"X-Request-ID": "trace-boom-0001"})
    problem = assert_problem(response, 500)
    assert "secret internals" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text
    assert problem["request_id"] == "trace-boom-0001"
    assert response.headers["x-request-id"] == "trace-boom-0001"

    logged = [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and getattr(r, "request_id", None) == "trace-boom-0001"
    ]
    assert logged, [vars(r) for r in caplog.records]
    assert logged[0].exc_info is not None  # the traceback goes to the log, not the client


async def test_unexpected_exception_gets_a_generated_request_id(boom_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=boom_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pulse.test") as client:
        response = await client.get("/boom")
    problem = assert_problem(response, 500)
    assert problem["request_id"]
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_unexpected_exception_is_counted_as_a_500(boom_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=boom_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pulse.test") as client:
        await client.get("/boom")
        metrics = (await client.get("/metrics")).text
    assert 'pulse_http_requests_total{method="GET",route="/boom",status="500"} 1.0' in metrics


async def test_domain_errors_carry_the_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/organization", headers={"X-Request-ID": "trace-401-0001"})
    assert assert_problem(response, 401)["request_id"] == "trace-401-0001"


def test_problem_with_a_lone_surrogate_is_still_valid_json() -> None:
    """Text decoded from a client's ``\\ud800`` escape has no UTF-8 form."""
    response = problem_response(
        422,
        "attributes.x\ud800: unknown",
        errors=[{"loc": ["body", "attributes", "x\ud800"], "msg": "unknown"}],
    )
    body = json.loads(response.body)
    assert body["detail"] == "attributes.x\ud800: unknown"
    assert body["errors"][0]["loc"][-1] == "x\ud800"
    assert response.media_type == "application/problem+json"


def test_problem_keeps_readable_non_ascii_text() -> None:
    body = problem_response(404, "لا يوجد موظف بهذا المعرّف").body
    assert "لا يوجد".encode() in body


async def test_wrong_method_head_on_a_post_only_path_is_a_405(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.head(f"/v1/waves/{uuid.uuid4()}/close", headers=org.admin)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.content == b""


@pytest.mark.parametrize("prefix", ["/r/", "/m/", "/v1/respond/", "/v1/meetings/"])
async def test_errors_on_a_personal_link_never_repeat_its_token(
    client: httpx.AsyncClient, prefix: str
) -> None:
    """A 405 or 413 body is shown in browsers and kept by proxies; the token in the path
    is a credential and must not be echoed back in it."""
    token = "Tok3nThatMustNotBeEchoedBack0123456789abcd"
    wrong_method = await client.put(f"{prefix}{token}", content=b"{}")
    too_big = await client.post(
        f"{prefix}{token}",
        content=b"x" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert wrong_method.status_code == 405
    assert too_big.status_code == 413
    for response in (wrong_method, too_big):
        assert token not in response.text
        assert "***" in response.json()["detail"]
