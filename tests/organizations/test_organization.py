"""Reading and changing the organization's name and defaults."""

from __future__ import annotations

import httpx
import pytest

from app.core.db import Database
from app.core.errors import Conflict
from app.organizations import service
from app.organizations.models import Organization
from app.organizations.schemas import OrganizationUpdate
from tests.conftest import Org
from tests.core.problems import assert_problem, error_fields


async def test_organization_shows_its_name_and_defaults(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.get("/v1/organization", headers=org.admin)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(org.id)
    assert body["name"] == "Acme"
    assert body["default_locale"] == "en"
    assert body["default_timezone"] == "UTC"
    assert body["min_group_size"] == 5


async def test_each_key_sees_its_own_organization(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    ours = (await client.get("/v1/organization", headers=org.admin)).json()
    theirs = (await client.get("/v1/organization", headers=other_org.admin)).json()
    assert (ours["name"], theirs["name"]) == ("Acme", "Globex")


async def test_patch_changes_only_the_fields_sent_and_persists(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.patch(
        "/v1/organization",
        json={"default_timezone": "Europe/Berlin", "min_group_size": 7, "default_locale": "fr-CA"},
        headers=org.admin,
    )
    assert response.status_code == 200, response.text
    again = (await client.get("/v1/organization", headers=org.admin)).json()
    for body in (response.json(), again):
        assert body["default_timezone"] == "Europe/Berlin"
        assert body["min_group_size"] == 7
        assert body["default_locale"] == "fr-CA"
        assert body["name"] == "Acme"


async def test_rename_is_kept(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.patch("/v1/organization", json={"name": "Acme GmbH"}, headers=org.admin)
    assert response.status_code == 200
    assert (await client.get("/v1/organization", headers=org.admin)).json()["name"] == "Acme GmbH"


async def test_renaming_to_its_own_name_is_allowed(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.patch("/v1/organization", json={"name": "Acme"}, headers=org.admin)
    assert response.status_code == 200


@pytest.mark.parametrize("size", [2, 0, -1])
async def test_group_size_below_three_is_rejected_naming_the_field(
    client: httpx.AsyncClient, org: Org, size: int
) -> None:
    response = await client.patch(
        "/v1/organization", json={"min_group_size": size}, headers=org.admin
    )
    problem = assert_problem(response, 422)
    assert error_fields(problem) == {"min_group_size"}
    assert "min_group_size" in problem["detail"]
    assert (await client.get("/v1/organization", headers=org.admin)).json()["min_group_size"] == 5


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "CEST", "europe/berlin", ""])
async def test_unknown_time_zone_is_rejected_naming_the_field(
    client: httpx.AsyncClient, org: Org, zone: str
) -> None:
    response = await client.patch(
        "/v1/organization", json={"default_timezone": zone}, headers=org.admin
    )
    problem = assert_problem(response, 422)
    assert error_fields(problem) == {"default_timezone"}
    assert "default_timezone" in problem["detail"]


async def test_bad_locale_is_rejected_naming_the_field(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.patch(
        "/v1/organization", json={"default_locale": "english please"}, headers=org.admin
    )
    assert error_fields(assert_problem(response, 422)) == {"default_locale"}


async def test_unknown_field_is_rejected_naming_it(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.patch(
        "/v1/organization", json={"plan": "enterprise"}, headers=org.admin
    )
    assert error_fields(assert_problem(response, 422)) == {"plan"}


@pytest.mark.parametrize("field", ["name", "default_locale", "default_timezone", "min_group_size"])
async def test_null_for_a_required_setting_is_rejected_not_ignored(
    client: httpx.AsyncClient, org: Org, field: str
) -> None:
    response = await client.patch("/v1/organization", json={field: None}, headers=org.admin)
    assert error_fields(assert_problem(response, 422)) == {field}


async def test_blank_name_is_rejected(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.patch("/v1/organization", json={"name": "   "}, headers=org.admin)
    assert error_fields(assert_problem(response, 422)) == {"name"}


async def test_name_is_trimmed(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.patch(
        "/v1/organization", json={"name": "  Acme Ltd  "}, headers=org.admin
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Acme Ltd"


async def test_renaming_to_another_organizations_name_conflicts(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    response = await client.patch("/v1/organization", json={"name": "Globex"}, headers=org.admin)
    problem = assert_problem(response, 409)
    assert "name" in problem["detail"]
    assert (await client.get("/v1/organization", headers=org.admin)).json()["name"] == "Acme"


async def test_rename_racing_another_writer_conflicts_instead_of_crashing(
    db: Database, org: Org
) -> None:
    """Between the service's name check and its write another transaction takes the name;
    the unique constraint then decides, and the caller still gets a 409."""
    async with db.sessionmaker() as session:
        with session.no_autoflush:  # the rival row stays unseen until the service writes
            session.add(Organization(name="Initech"))
            with pytest.raises(Conflict):
                await service.update_organization(
                    session, org.id, OrganizationUpdate(name="Initech")
                )


async def test_published_schema_does_not_offer_null_settings(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    ref = doc["paths"]["/v1/organization"]["patch"]["requestBody"]["content"]["application/json"]
    name = ref["schema"]["$ref"].rsplit("/", 1)[1]
    properties = doc["components"]["schemas"][name]["properties"]
    assert set(properties) == {"name", "default_locale", "default_timezone", "min_group_size"}
    for field, schema in properties.items():
        assert "null" not in str(schema), (field, schema)
    assert properties["min_group_size"]["minimum"] == 3
