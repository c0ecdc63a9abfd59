"""Small helpers the employee tests share: creating people and reading problem answers."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Org

PROBLEM_FIELDS = {"type", "title", "status", "detail"}


async def create_employee(client: httpx.AsyncClient, org: Org, **fields: Any) -> dict[str, Any]:
    """POST one employee and return its body; fails the test unless it answers 201."""
    response = await client.post("/v1/employees", json=fields, headers=org.admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def get_employee(client: httpx.AsyncClient, org: Org, employee_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/employees/{employee_id}", headers=org.admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def list_all(
    client: httpx.AsyncClient, org: Org, **params: str | int | bool
) -> list[dict[str, Any]]:
    """Every employee the list shows for these filters (one big page)."""
    response = await client.get("/v1/employees", params={"limit": 500, **params}, headers=org.admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    items: list[dict[str, Any]] = body["items"]
    return items


async def by_email(client: httpx.AsyncClient, org: Org) -> dict[str, dict[str, Any]]:
    """The organization's directory keyed by lower-cased email."""
    return {e["email"].lower(): e for e in await list_all(client, org)}


def assert_problem(
    response: httpx.Response, status: int, *, field: str | None = None
) -> dict[str, Any]:
    """The answer is an RFC 9457 problem with this status; with ``field``, its detail
    mentions the field and (for 422) an ``errors[].loc`` names it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_FIELDS, body
    assert body["status"] == status
    if field is not None:
        assert field in body["detail"], body
        if status == 422:
            locs = [[str(p) for p in e["loc"]] for e in body["errors"]]
            assert any(field in loc for loc in locs), body
    return body
