"""Who may call what: API keys in the Authorization header, and their scopes."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.conftest import Org
from tests.core.problems import assert_problem


def assert_unauthorized(response: httpx.Response) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_request_without_authorization_header_is_unauthorized(
    client: httpx.AsyncClient, org: Org
) -> None:
    assert_unauthorized(await client.get("/v1/organization"))


async def test_basic_credentials_are_not_accepted(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.get("/v1/organization", auth=("admin", org.admin_key))
    assert_unauthorized(response)


@pytest.mark.parametrize(
    "token",
    [
        "pulse_x",
        "not-a-key-at-all",
        secrets.token_urlsafe(40),
        "pulse_ABCDEF123456_" + "s" * 43,  # upper-case prefix
        "pulse_0123456789ab_short",  # secret too short
        "pulse_0123456789ab_" + "s" * 200,  # secret too long
        "",
    ],
)
async def test_malformed_key_is_unauthorized(
    client: httpx.AsyncClient, org: Org, token: str
) -> None:
    response = await client.get("/v1/organization", headers={"Authorization": f"Bearer {token}"})
    assert_unauthorized(response)


async def test_known_prefix_with_wrong_secret_is_unauthorized(
    client: httpx.AsyncClient, org: Org
) -> None:
    _, prefix, _ = org.admin_key.split("_", 2)
    forged = f"pulse_{prefix}_{secrets.token_urlsafe(32)}"
    assert forged != org.admin_key
    response = await client.get("/v1/organization", headers={"Authorization": f"Bearer {forged}"})
    assert_unauthorized(response)


async def test_unknown_prefix_is_unauthorized(client: httpx.AsyncClient, org: Org) -> None:
    _, _, secret = org.admin_key.split("_", 2)
    forged = f"pulse_{secrets.token_hex(6)}_{secret}"
    response = await client.get("/v1/organization", headers={"Authorization": f"Bearer {forged}"})
    assert_unauthorized(response)


async def test_revoked_key_is_unauthorized_from_then_on(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await client.post(
        "/v1/api-keys", json={"name": "temporary", "scope": "admin"}, headers=org.admin
    )
    assert created.status_code == 201
    key = created.json()
    temporary = {"Authorization": f"Bearer {key['key']}"}
    assert (await client.get("/v1/organization", headers=temporary)).status_code == 200

    revoked = await client.delete(f"/v1/api-keys/{key['id']}", headers=org.admin)
    assert revoked.status_code == 204

    assert_unauthorized(await client.get("/v1/organization", headers=temporary))
    listed = (await client.get("/v1/api-keys", headers=org.admin)).json()["items"]
    assert next(k for k in listed if k["id"] == key["id"])["revoked_at"] is not None


async def test_key_can_revoke_itself(client: httpx.AsyncClient, org: Org) -> None:
    keys = (await client.get("/v1/api-keys", headers=org.admin)).json()["items"]
    own = next(k for k in keys if org.admin_key.startswith(f"pulse_{k['prefix']}_"))
    assert (await client.delete(f"/v1/api-keys/{own['id']}", headers=org.admin)).status_code == 204
    assert_unauthorized(await client.get("/v1/organization", headers=org.admin))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/organization", None),
        ("PATCH", "/v1/organization", {"min_group_size": 7}),
        ("GET", "/v1/api-keys", None),
        ("POST", "/v1/api-keys", {"name": "escalate", "scope": "admin"}),
        ("DELETE", "/v1/api-keys/{own_id}", None),
    ],
)
async def test_reports_key_is_forbidden_on_admin_endpoints(
    client: httpx.AsyncClient, org: Org, method: str, path: str, body: object
) -> None:
    keys = (await client.get("/v1/api-keys", headers=org.admin)).json()["items"]
    own_id = next(k["id"] for k in keys if k["scope"] == "reports")
    response = await client.request(
        method, path.format(own_id=own_id), json=body, headers=org.reports
    )
    problem = assert_problem(response, 403)
    assert "admin" in problem["detail"]
    # Nothing happened: the reports key still works and the organization is unchanged.
    after = (await client.get("/v1/api-keys", headers=org.admin)).json()["items"]
    assert len(after) == len(keys)
    assert all(k["revoked_at"] is None for k in after)
    assert (await client.get("/v1/organization", headers=org.admin)).json()["min_group_size"] == 5
