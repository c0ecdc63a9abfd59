"""Request ids and body size limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import Org
from tests.core.problems import assert_problem

MB = 1024 * 1024


async def test_sane_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "lb-7f3a9c.01_x"})
    assert response.headers["x-request-id"] == "lb-7f3a9c.01_x"


async def test_request_id_is_generated_when_none_is_sent(client: httpx.AsyncClient) -> None:
    first = (await client.get("/healthz")).headers["x-request-id"]
    second = (await client.get("/healthz")).headers["x-request-id"]
    assert len(first) >= 16
    assert first != second


@pytest.mark.parametrize(
    "sent",
    ["short", "x" * 129, "has space in it", "semi;colon;id", "quote\"in'id", "ünïcødé-id"],
)
async def test_unsafe_request_id_is_replaced(client: httpx.AsyncClient, sent: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": sent.encode()})
    assert response.headers["x-request-id"] != sent
    assert response.headers["x-request-id"].isalnum()


def employee_json(size: int) -> bytes:
    """A create-employee body padded to ``size`` bytes with whitespace (still valid JSON)."""
    body = json.dumps({"email": "lena.berg@example.com", "name": "Lena"}).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


async def test_create_employee_body_over_one_megabyte_is_too_large(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.post(
        "/v1/employees",
        content=employee_json(MB + 1),
        headers={**org.admin, "Content-Type": "application/json"},
    )
    assert_problem(response, 413)
    listed = await client.get("/v1/employees", headers=org.admin)
    assert listed.json()["items"] == []


async def test_create_employee_body_just_under_the_limit_is_accepted(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.post(
        "/v1/employees",
        content=employee_json(MB),
        headers={**org.admin, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


async def test_patch_body_over_one_megabyte_is_too_large(
    client: httpx.AsyncClient, org: Org
) -> None:
    body = b'{"name": "Acme"' + b" " * MB + b"}"
    response = await client.patch(
        "/v1/organization", content=body, headers={**org.admin, "Content-Type": "application/json"}
    )
    assert_problem(response, 413)


async def test_import_of_two_megabytes_is_not_too_large(
    client: httpx.AsyncClient, org: Org
) -> None:
    body = b"[" + b" " * (2 * MB) + b"]"
    response = await client.post(
        "/v1/employees/import",
        content=body,
        headers={**org.admin, "Content-Type": "application/json"},
    )
    assert response.status_code in (200, 422), response.text


async def test_import_over_twenty_megabytes_is_too_large(
    client: httpx.AsyncClient, org: Org
) -> None:
    body = b"[" + b" " * (20 * MB) + b"]"
    response = await client.post(
        "/v1/employees/import",
        content=body,
        headers={**org.admin, "Content-Type": "application/json"},
    )
    assert_problem(response, 413)


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    yield b'{"email": "lena.berg@example.com"'
    sent = 0
    while sent < total:
        yield b" " * size
        sent += size
    yield b"}"


async def test_chunked_body_without_length_over_the_limit_is_too_large(
    client: httpx.AsyncClient, org: Org
) -> None:
    request = client.build_request(
        "POST",
        "/v1/employees",
        content=chunks(MB + 1),
        headers={**org.admin, "Content-Type": "application/json"},
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    response = await client.send(request)
    assert_problem(response, 413)


async def test_chunked_body_within_the_limit_is_read_whole(
    client: httpx.AsyncClient, org: Org
) -> None:
    request = client.build_request(
        "POST",
        "/v1/employees",
        content=chunks(256 * 1024),
        headers={**org.admin, "Content-Type": "application/json"},
    )
    response = await client.send(request)
    assert response.status_code == 201, response.text
    assert response.json()["email"] == "lena.berg@example.com"


async def test_too_large_answer_carries_the_request_id(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.post(
        "/v1/employees",
        content=employee_json(MB + 1),
        headers={**org.admin, "Content-Type": "application/json", "X-Request-ID": "big-body-01"},
    )
    assert assert_problem(response, 413)["request_id"] == "big-body-01"
