"""Creating, listing and revoking API keys."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy import select

from app.core.db import Database
from app.core.idempotency import IdempotencyRecord
from app.organizations.models import ApiKey
from tests.conftest import Org
from tests.core.problems import assert_problem, error_fields

KEY_SHAPE = re.compile(r"^pulse_(?P<prefix>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]+)$")


async def create_key(
    client: httpx.AsyncClient, org: Org, name: str = "Grafana", scope: str = "reports"
) -> dict[str, object]:
    response = await client.post(
        "/v1/api-keys", json={"name": name, "scope": scope}, headers=org.admin
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_created_key_is_shown_once_in_the_documented_shape(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await create_key(client, org)
    match = KEY_SHAPE.match(str(created["key"]))
    assert match, created["key"]
    assert match["prefix"] == created["prefix"]
    # base64url carries 6 bits a character: 22 characters are the 128-bit floor.
    assert len(match["secret"]) >= 22
    assert created["scope"] == "reports"
    assert created["name"] == "Grafana"
    assert created["revoked_at"] is None


async def test_two_created_keys_differ(client: httpx.AsyncClient, org: Org) -> None:
    first = await create_key(client, org)
    second = await create_key(client, org)
    assert first["key"] != second["key"]
    assert first["prefix"] != second["prefix"]


async def test_created_key_works_immediately_within_its_scope(
    client: httpx.AsyncClient, org: Org
) -> None:
    admin = await create_key(client, org, scope="admin")
    reports = await create_key(client, org, scope="reports")
    as_admin = await client.get(
        "/v1/organization", headers={"Authorization": f"Bearer {admin['key']}"}
    )
    assert as_admin.status_code == 200
    assert as_admin.json()["id"] == str(org.id)
    as_reports = await client.get(
        "/v1/organization", headers={"Authorization": f"Bearer {reports['key']}"}
    )
    assert as_reports.status_code == 403


async def test_key_list_never_contains_the_secret_or_its_hash(
    client: httpx.AsyncClient, org: Org, db: Database
) -> None:
    created = await create_key(client, org)
    _, _, secret = str(created["key"]).split("_", 2)
    async with db.sessionmaker() as session:
        stored_hash = await session.scalar(
            select(ApiKey.secret_hash).where(ApiKey.id == uuid.UUID(str(created["id"])))
        )
    assert stored_hash

    response = await client.get("/v1/api-keys", headers=org.admin)
    assert response.status_code == 200
    assert secret not in response.text
    assert stored_hash not in response.text
    for secret_of_fixture in (org.admin_key, org.reports_key):
        assert secret_of_fixture.split("_", 2)[2] not in response.text
    items = response.json()["items"]
    assert {k["id"] for k in items} >= {created["id"]}
    for item in items:
        assert "key" not in item
        assert "secret_hash" not in item


async def test_only_a_hash_of_the_secret_is_stored(
    client: httpx.AsyncClient, org: Org, db: Database
) -> None:
    created = await create_key(client, org)
    _, _, secret = str(created["key"]).split("_", 2)
    async with db.sessionmaker() as session:
        row = await session.get(ApiKey, uuid.UUID(str(created["id"])))
        assert row is not None
        assert secret not in row.secret_hash
        assert secret not in row.prefix


async def test_retried_key_creation_never_stores_or_replays_the_secret(
    client: httpx.AsyncClient, org: Org, db: Database
) -> None:
    headers = {**org.admin, "Idempotency-Key": "create-grafana-key"}
    body = {"name": "Grafana", "scope": "reports"}
    first = await client.post("/v1/api-keys", json=body, headers=headers)
    second = await client.post("/v1/api-keys", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.headers.get("cache-control") == "no-store"
    assert "idempotent-replayed" not in second.headers
    assert first.json()["key"] != second.json()["key"]
    async with db.sessionmaker() as session:
        bodies = (await session.execute(select(IdempotencyRecord.response_body))).scalars().all()
    for stored in bodies:
        assert first.json()["key"].encode() not in (stored or b"")
        assert second.json()["key"].encode() not in (stored or b"")


async def test_last_used_at_is_set_once_a_key_is_used(client: httpx.AsyncClient, org: Org) -> None:
    created = await create_key(client, org, scope="admin")
    assert created["last_used_at"] is None
    response = await client.get(
        "/v1/organization", headers={"Authorization": f"Bearer {created['key']}"}
    )
    assert response.status_code == 200
    keys = (await client.get("/v1/api-keys", headers=org.admin)).json()["items"]
    used = next(k for k in keys if k["id"] == created["id"])
    assert used["last_used_at"] is not None
    assert used["last_used_at"] >= str(created["created_at"])[:19]


async def test_failed_authentication_does_not_touch_last_used_at(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await create_key(client, org, scope="admin")
    forged = f"pulse_{created['prefix']}_{'x' * 43}"
    response = await client.get("/v1/organization", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    keys = (await client.get("/v1/api-keys", headers=org.admin)).json()["items"]
    assert next(k for k in keys if k["id"] == created["id"])["last_used_at"] is None


async def test_another_organizations_key_cannot_be_revoked(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    theirs = (await client.get("/v1/api-keys", headers=other_org.admin)).json()["items"]
    assert theirs
    for key in theirs:
        response = await client.delete(f"/v1/api-keys/{key['id']}", headers=org.admin)
        assert_problem(response, 404)
    still = (await client.get("/v1/api-keys", headers=other_org.admin)).json()["items"]
    assert all(k["revoked_at"] is None for k in still)
    assert (await client.get("/v1/organization", headers=other_org.admin)).status_code == 200


async def test_revoking_an_unknown_key_is_not_found(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.delete(f"/v1/api-keys/{uuid.uuid4()}", headers=org.admin)
    assert_problem(response, 404)


async def test_revoking_with_a_malformed_id_names_the_parameter(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.delete("/v1/api-keys/not-a-uuid", headers=org.admin)
    assert "key_id" in error_fields(assert_problem(response, 422))


async def test_each_organization_lists_only_its_own_keys(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    ours = await create_key(client, org, name="ours-only")
    theirs = (await client.get("/v1/api-keys", headers=other_org.admin)).json()["items"]
    assert ours["id"] not in {k["id"] for k in theirs}
    assert "ours-only" not in {k["name"] for k in theirs}
    assert len(theirs) == 2  # the fixture's admin and reports keys
    mine = (await client.get("/v1/api-keys", headers=org.admin)).json()["items"]
    assert ours["id"] in {k["id"] for k in mine}


async def test_key_list_pages_through_every_key_exactly_once(
    client: httpx.AsyncClient, org: Org
) -> None:
    # Creation order within one millisecond is not asserted here: see
    # tests/core/test_db.py::test_ids_generated_in_a_row_sort_in_creation_order.
    for n in range(3):
        await create_key(client, org, name=f"key-{n}")
    seen: list[str] = []
    ids: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/v1/api-keys", params=params, headers=org.admin)
        assert response.status_code == 200
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [k["name"] for k in page["items"]]
        ids += [k["id"] for k in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == ["admin", "dash", "key-0", "key-1", "key-2"]
    assert ids == sorted(ids, key=uuid.UUID)  # the cursor walks the keys in id order


async def test_key_list_rejects_a_limit_over_500_and_a_forged_cursor(
    client: httpx.AsyncClient, org: Org
) -> None:
    too_many = await client.get("/v1/api-keys", params={"limit": 501}, headers=org.admin)
    assert "limit" in error_fields(assert_problem(too_many, 422))
    forged = await client.get("/v1/api-keys", params={"cursor": "%%%"}, headers=org.admin)
    assert "cursor" in error_fields(assert_problem(forged, 422))


async def test_key_creation_rejects_an_unknown_scope(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.post(
        "/v1/api-keys", json={"name": "root", "scope": "superuser"}, headers=org.admin
    )
    assert "scope" in error_fields(assert_problem(response, 422))
