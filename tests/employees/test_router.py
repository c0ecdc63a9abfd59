"""The employee directory over HTTP: CRUD, manager rules, filters, paging, tenancy, scopes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from app.employees import service as employee_service
from tests.conftest import Org
from tests.employees.helpers import (
    assert_problem,
    create_employee,
    get_employee,
    list_all,
)

# --- create, read, update, deactivate -------------------------------------------------


async def test_created_employee_is_answered_with_201_and_can_be_read_back(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await create_employee(
        client,
        org,
        email="amira.haddad@example.com",
        name="أميرة حداد",
        team="Sales",
        department="Commercial",
        locale="ar",
        timezone="Africa/Cairo",
        attributes={"location": "Cairo"},
    )

    read = await get_employee(client, org, created["id"])
    assert read == created
    assert read["email"] == "amira.haddad@example.com"
    assert read["name"] == "أميرة حداد"
    assert read["team"] == "Sales"
    assert read["department"] == "Commercial"
    assert read["locale"] == "ar"
    assert read["timezone"] == "Africa/Cairo"
    assert read["attributes"] == {"location": "Cairo"}
    assert read["active"] is True
    assert read["manager_id"] is None


async def test_locale_and_timezone_default_to_the_organizations(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.patch(
        "/v1/organization",
        json={"default_locale": "fr-CA", "default_timezone": "America/Toronto"},
        headers=org.admin,
    )
    assert response.status_code == 200, response.text

    defaulted = await create_employee(client, org, email="claire@example.com")
    explicit = await create_employee(
        client, org, email="omar@example.com", locale="ar", timezone="Africa/Cairo"
    )

    assert (defaulted["locale"], defaulted["timezone"]) == ("fr-CA", "America/Toronto")
    assert (explicit["locale"], explicit["timezone"]) == ("ar", "Africa/Cairo")


async def test_patch_changes_only_the_fields_sent(client: httpx.AsyncClient, org: Org) -> None:
    created = await create_employee(
        client, org, email="lena@example.com", name="Lena Berg", team="Sales", locale="de"
    )

    response = await client.patch(
        f"/v1/employees/{created['id']}", json={"team": "Support"}, headers=org.admin
    )

    assert response.status_code == 200, response.text
    read = await get_employee(client, org, created["id"])
    assert read["team"] == "Support"
    assert read["name"] == "Lena Berg"
    assert read["locale"] == "de"
    assert read["email"] == "lena@example.com"


@pytest.mark.parametrize("blank", [None, "", "   "])
async def test_blank_or_null_team_and_department_clear_them(
    client: httpx.AsyncClient, org: Org, blank: str | None
) -> None:
    created = await create_employee(
        client, org, email="lena@example.com", team="Sales", department="Commercial"
    )

    response = await client.patch(
        f"/v1/employees/{created['id']}",
        json={"team": blank, "department": blank},
        headers=org.admin,
    )

    assert response.status_code == 200, response.text
    read = await get_employee(client, org, created["id"])
    assert (read["team"], read["department"]) == (None, None)


async def test_blank_team_on_create_is_stored_as_none(client: httpx.AsyncClient, org: Org) -> None:
    created = await create_employee(client, org, email="lena@example.com", team="", department=" ")

    assert (created["team"], created["department"]) == (None, None)


async def test_team_longer_than_200_characters_answers_422(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.post(
        "/v1/employees", json={"email": "a@example.com", "team": "x" * 201}, headers=org.admin
    )

    assert_problem(response, 422, field="team")


async def test_delete_deactivates_and_keeps_the_employee(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await create_employee(client, org, email="leaver@example.com", name="Leaver")

    response = await client.delete(f"/v1/employees/{created['id']}", headers=org.admin)

    assert response.status_code == 204
    assert response.content == b""
    read = await get_employee(client, org, created["id"])
    assert read["active"] is False
    assert read["name"] == "Leaver"
    assert [e["id"] for e in await list_all(client, org, active=False)] == [created["id"]]


async def test_deleting_an_employee_twice_still_answers_204(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await create_employee(client, org, email="twice@example.com")

    first = await client.delete(f"/v1/employees/{created['id']}", headers=org.admin)
    second = await client.delete(f"/v1/employees/{created['id']}", headers=org.admin)

    assert (first.status_code, second.status_code) == (204, 204)


async def test_unknown_employee_id_answers_404_problem(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.get(f"/v1/employees/{uuid.uuid4()}", headers=org.admin)

    assert_problem(response, 404)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("amira@example.com", "AMIRA@example.com"),
        ("Amira@Example.com", "amira@example.com"),
    ],
)
async def test_email_is_unique_in_the_organization_whatever_its_case(
    client: httpx.AsyncClient, org: Org, first: str, second: str
) -> None:
    await create_employee(client, org, email=first)

    response = await client.post("/v1/employees", json={"email": second}, headers=org.admin)

    body = assert_problem(response, 409, field="email")
    assert any("email" in e["loc"] for e in body["errors"])
    assert len(await list_all(client, org)) == 1


async def test_email_taken_by_a_concurrent_request_answers_409_not_500(
    client: httpx.AsyncClient, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_employee(client, org, email="race@example.com")
    other = await create_employee(client, org, email="other@example.com")

    # As if the other request committed between our look-up and our write.
    async def never_taken(*_args: object, **_kwargs: object) -> bool:
        return False

    monkeypatch.setattr(employee_service, "_email_taken", never_taken)
    created = await client.post(
        "/v1/employees", json={"email": "RACE@example.com"}, headers=org.admin
    )
    patched = await client.patch(
        f"/v1/employees/{other['id']}", json={"email": "race@example.com"}, headers=org.admin
    )

    assert_problem(created, 409, field="email")
    assert_problem(patched, 409, field="email")
    monkeypatch.undo()
    assert {e["email"] for e in await list_all(client, org)} == {
        "race@example.com",
        "other@example.com",
    }


async def test_patch_to_another_employees_email_in_other_case_answers_409(
    client: httpx.AsyncClient, org: Org
) -> None:
    await create_employee(client, org, email="taken@example.com")
    other = await create_employee(client, org, email="other@example.com")

    response = await client.patch(
        f"/v1/employees/{other['id']}", json={"email": "TAKEN@example.com"}, headers=org.admin
    )

    assert_problem(response, 409, field="email")
    assert (await get_employee(client, org, other["id"]))["email"] == "other@example.com"


async def test_patch_may_change_the_case_of_ones_own_email(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await create_employee(client, org, email="lena.berg@example.com")

    response = await client.patch(
        f"/v1/employees/{created['id']}", json={"email": "Lena.Berg@example.com"}, headers=org.admin
    )

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "Lena.Berg@example.com"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("locale", "english"),
        ("locale", "e"),
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "CEST+2"),
        ("email", "not-an-email"),
        ("email", "two@@example.com"),
        ("attributes", {"bad name": "x"}),
        ("attributes", {"": "x"}),
    ],
)
async def test_invalid_field_on_create_answers_422_naming_it(
    client: httpx.AsyncClient, org: Org, field: str, value: Any
) -> None:
    body = {"email": "valid@example.com", field: value}

    response = await client.post("/v1/employees", json=body, headers=org.admin)

    assert_problem(response, 422, field=field)
    assert await list_all(client, org) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("locale", "english"),
        ("timezone", "Europe/Atlantis"),
        ("email", "nobody-at-example.com"),
        ("attributes", {"with space": "x"}),
    ],
)
async def test_invalid_field_on_patch_answers_422_and_changes_nothing(
    client: httpx.AsyncClient, org: Org, field: str, value: Any
) -> None:
    created = await create_employee(client, org, email="valid@example.com")

    response = await client.patch(
        f"/v1/employees/{created['id']}", json={field: value}, headers=org.admin
    )

    assert_problem(response, 422, field=field)
    assert await get_employee(client, org, created["id"]) == created


@pytest.mark.parametrize(
    "email",
    ["someone@example.com", "someone@example.org", "someone@example.net", "someone@corp.test"],
)
async def test_reserved_documentation_and_test_domains_are_accepted(
    client: httpx.AsyncClient, org: Org, email: str
) -> None:
    created = await create_employee(client, org, email=email)

    assert created["email"] == email


async def test_patch_email_null_answers_422_naming_email(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await create_employee(client, org, email="keep@example.com")

    response = await client.patch(
        f"/v1/employees/{created['id']}", json={"email": None}, headers=org.admin
    )

    assert_problem(response, 422, field="email")
    assert (await get_employee(client, org, created["id"]))["email"] == "keep@example.com"


async def test_unknown_field_on_create_answers_422_naming_it(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.post(
        "/v1/employees", json={"email": "a@example.com", "salary": 1}, headers=org.admin
    )

    assert_problem(response, 422, field="salary")


# --- managers ---------------------------------------------------------------------------


async def test_patch_manager_id_null_clears_the_manager(
    client: httpx.AsyncClient, org: Org
) -> None:
    boss = await create_employee(client, org, email="boss@example.com")
    report = await create_employee(client, org, email="report@example.com", manager_id=boss["id"])
    assert report["manager_id"] == boss["id"]

    response = await client.patch(
        f"/v1/employees/{report['id']}", json={"manager_id": None}, headers=org.admin
    )

    assert response.status_code == 200, response.text
    assert (await get_employee(client, org, report["id"]))["manager_id"] is None


async def test_patch_without_manager_id_keeps_the_manager(
    client: httpx.AsyncClient, org: Org
) -> None:
    boss = await create_employee(client, org, email="boss@example.com")
    report = await create_employee(client, org, email="report@example.com", manager_id=boss["id"])

    response = await client.patch(
        f"/v1/employees/{report['id']}", json={"name": "Renamed"}, headers=org.admin
    )

    assert response.status_code == 200, response.text
    assert (await get_employee(client, org, report["id"]))["manager_id"] == boss["id"]


async def test_an_employee_cannot_manage_themselves(client: httpx.AsyncClient, org: Org) -> None:
    created = await create_employee(client, org, email="solo@example.com")

    response = await client.patch(
        f"/v1/employees/{created['id']}", json={"manager_id": created["id"]}, headers=org.admin
    )

    assert_problem(response, 422, field="manager_id")
    assert (await get_employee(client, org, created["id"]))["manager_id"] is None


async def test_unknown_manager_id_answers_422(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.post(
        "/v1/employees",
        json={"email": "a@example.com", "manager_id": str(uuid.uuid4())},
        headers=org.admin,
    )

    assert_problem(response, 422, field="manager_id")
    assert await list_all(client, org) == []


async def test_manager_from_another_organization_answers_422(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    outsider = await create_employee(client, other_org, email="outsider@example.com")
    insider = await create_employee(client, org, email="insider@example.com")

    on_create = await client.post(
        "/v1/employees",
        json={"email": "new@example.com", "manager_id": outsider["id"]},
        headers=org.admin,
    )
    on_patch = await client.patch(
        f"/v1/employees/{insider['id']}", json={"manager_id": outsider["id"]}, headers=org.admin
    )

    assert_problem(on_create, 422, field="manager_id")
    assert_problem(on_patch, 422, field="manager_id")
    assert (await get_employee(client, org, insider["id"]))["manager_id"] is None


async def test_manager_chain_may_not_form_a_cycle(client: httpx.AsyncClient, org: Org) -> None:
    # C reports to B, B reports to A; making C A's manager would close the loop.
    a = await create_employee(client, org, email="a@example.com")
    b = await create_employee(client, org, email="b@example.com", manager_id=a["id"])
    c = await create_employee(client, org, email="c@example.com", manager_id=b["id"])

    direct = await client.patch(
        f"/v1/employees/{a['id']}", json={"manager_id": b["id"]}, headers=org.admin
    )
    transitive = await client.patch(
        f"/v1/employees/{a['id']}", json={"manager_id": c["id"]}, headers=org.admin
    )

    assert_problem(direct, 422, field="manager_id")
    body = assert_problem(transitive, 422, field="manager_id")
    assert "cycle" in body["detail"]
    assert (await get_employee(client, org, a["id"]))["manager_id"] is None


async def test_manager_may_be_moved_within_an_acyclic_chain(
    client: httpx.AsyncClient, org: Org
) -> None:
    a = await create_employee(client, org, email="a@example.com")
    b = await create_employee(client, org, email="b@example.com", manager_id=a["id"])
    c = await create_employee(client, org, email="c@example.com", manager_id=b["id"])

    response = await client.patch(
        f"/v1/employees/{c['id']}", json={"manager_id": a["id"]}, headers=org.admin
    )

    assert response.status_code == 200, response.text
    assert response.json()["manager_id"] == a["id"]


# --- filters and paging -----------------------------------------------------------------


async def _directory(client: httpx.AsyncClient, org: Org) -> dict[str, str]:
    """A small directory; returns email → id."""
    people = [
        {"email": "omar.farouk@example.com", "name": "عمر فاروق", "team": "Sales"},
        {"email": "amira.haddad@example.com", "name": "أميرة حداد", "team": "Sales"},
        {
            "email": "lena.berg@example.com",
            "name": "Lena Berg",
            "team": "Support",
            "department": "Operations",
        },
        {
            "email": "JONAS.Weber@example.com",
            "name": "Jonas Weber",
            "team": "Support",
            "department": "Operations",
        },
        {"email": "ana_lopez@example.com", "name": "Ana López", "department": "Finance"},
    ]
    ids = {}
    for person in people:
        ids[person["email"]] = (await create_employee(client, org, **person))["id"]
    return ids


async def test_team_filter_lists_only_that_team(client: httpx.AsyncClient, org: Org) -> None:
    ids = await _directory(client, org)

    found = await list_all(client, org, team="Sales")

    assert {e["id"] for e in found} == {
        ids["omar.farouk@example.com"],
        ids["amira.haddad@example.com"],
    }


async def test_department_filter_lists_only_that_department(
    client: httpx.AsyncClient, org: Org
) -> None:
    ids = await _directory(client, org)

    found = await list_all(client, org, department="Operations")

    assert {e["id"] for e in found} == {
        ids["lena.berg@example.com"],
        ids["JONAS.Weber@example.com"],
    }


async def test_active_filter_separates_active_and_deactivated(
    client: httpx.AsyncClient, org: Org
) -> None:
    ids = await _directory(client, org)
    gone = ids["lena.berg@example.com"]
    assert (await client.delete(f"/v1/employees/{gone}", headers=org.admin)).status_code == 204

    inactive = await list_all(client, org, active=False)
    active = await list_all(client, org, active=True)

    assert [e["id"] for e in inactive] == [gone]
    assert {e["id"] for e in active} == set(ids.values()) - {gone}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("berg", {"lena.berg@example.com"}),  # name
        ("LENA", {"lena.berg@example.com"}),  # name, other case
        ("jonas.weber@", {"JONAS.Weber@example.com"}),  # email, other case
        ("haddad@example", {"amira.haddad@example.com"}),  # email only
        ("فاروق", {"omar.farouk@example.com"}),  # Arabic name substring
        ("حد", {"amira.haddad@example.com"}),  # Arabic substring inside a word
        ("_", {"ana_lopez@example.com"}),  # a LIKE wildcard, taken literally
        ("%", set()),
        ("nobody", set()),
    ],
)
async def test_q_finds_a_substring_of_name_or_email(
    client: httpx.AsyncClient, org: Org, q: str, expected: set[str]
) -> None:
    ids = await _directory(client, org)

    found = await list_all(client, org, q=q)

    assert {e["id"] for e in found} == {ids[email] for email in expected}


async def test_filters_combine(client: httpx.AsyncClient, org: Org) -> None:
    ids = await _directory(client, org)

    found = await list_all(client, org, team="Support", q="weber")

    assert [e["id"] for e in found] == [ids["JONAS.Weber@example.com"]]


async def test_paging_walks_every_employee_once_in_creation_order(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = [
        (await create_employee(client, org, email=f"p{i}@example.com"))["id"] for i in range(7)
    ]

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/v1/employees", params=params, headers=org.admin)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([e["id"] for e in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10, "paging does not end"

    walked = [i for page in pages for i in page]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert walked == created  # no gaps, no duplicates, in the order they were added


async def test_an_exactly_full_last_page_has_a_null_cursor(
    client: httpx.AsyncClient, org: Org
) -> None:
    for i in range(3):
        await create_employee(client, org, email=f"p{i}@example.com")

    response = await client.get("/v1/employees", params={"limit": 3}, headers=org.admin)

    assert response.status_code == 200
    assert len(response.json()["items"]) == 3
    assert response.json()["next_cursor"] is None


@pytest.mark.parametrize("cursor", ["not-a-cursor!", "abc", "%%%%", "A" * 40])
async def test_garbage_cursor_answers_422_naming_cursor(
    client: httpx.AsyncClient, org: Org, cursor: str
) -> None:
    response = await client.get("/v1/employees", params={"cursor": cursor}, headers=org.admin)

    assert_problem(response, 422, field="cursor")


@pytest.mark.parametrize("limit", [0, 501, -1])
async def test_limit_out_of_range_answers_422_naming_limit(
    client: httpx.AsyncClient, org: Org, limit: int
) -> None:
    response = await client.get("/v1/employees", params={"limit": limit}, headers=org.admin)

    assert_problem(response, 422, field="limit")


async def test_limit_500_is_accepted(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.get("/v1/employees", params={"limit": 500}, headers=org.admin)

    assert response.status_code == 200


# --- tenancy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("PATCH", {"name": "Hijacked"}), ("DELETE", None)],
)
async def test_another_organizations_employee_answers_404(
    client: httpx.AsyncClient, org: Org, other_org: Org, method: str, body: dict[str, Any] | None
) -> None:
    mine = await create_employee(client, org, email="mine@example.com", name="Mine")

    response = await client.request(
        method, f"/v1/employees/{mine['id']}", json=body, headers=other_org.admin
    )

    problem = assert_problem(response, 404)
    missing_id = str(uuid.uuid4())
    missing = await client.request(
        method, f"/v1/employees/{missing_id}", json=body, headers=other_org.admin
    )
    # Exactly as an id that does not exist: nothing tells the two apart.
    unknown = assert_problem(missing, 404)
    assert problem["detail"].replace(mine["id"], "<id>") == unknown["detail"].replace(
        missing_id, "<id>"
    )
    assert await get_employee(client, org, mine["id"]) == mine


async def test_another_organizations_list_never_shows_our_employees(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    await _directory(client, org)
    theirs = await create_employee(client, other_org, email="theirs@example.com", team="Sales")

    for params in ({}, {"team": "Sales"}, {"q": "example.com"}, {"active": True}):
        found = await list_all(client, other_org, **params)
        assert [e["id"] for e in found] == [theirs["id"]], params


async def test_another_organization_may_use_the_same_email(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    mine = await create_employee(client, org, email="shared@example.com", name="Mine")

    theirs = await create_employee(client, other_org, email="SHARED@example.com", name="Theirs")

    assert theirs["id"] != mine["id"]
    assert (await get_employee(client, org, mine["id"]))["name"] == "Mine"


# --- scopes -----------------------------------------------------------------------------

EMPLOYEE_ENDPOINTS = [
    ("GET", "/v1/employees", None),
    ("POST", "/v1/employees", {"email": "new@example.com"}),
    ("GET", "/v1/employees/{id}", None),
    ("PATCH", "/v1/employees/{id}", {"name": "Changed"}),
    ("DELETE", "/v1/employees/{id}", None),
    ("POST", "/v1/employees/import", [{"email": "new@example.com"}]),
]


@pytest.mark.parametrize(("method", "path", "body"), EMPLOYEE_ENDPOINTS)
async def test_reports_key_is_forbidden_on_every_employee_endpoint(
    client: httpx.AsyncClient, org: Org, method: str, path: str, body: Any
) -> None:
    existing = await create_employee(client, org, email="existing@example.com", name="Existing")

    response = await client.request(
        method, path.format(id=existing["id"]), json=body, headers=org.reports
    )

    assert_problem(response, 403)
    assert await list_all(client, org) == [existing]


@pytest.mark.parametrize(("method", "path", "body"), EMPLOYEE_ENDPOINTS)
async def test_no_key_is_unauthorized_on_every_employee_endpoint(
    client: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    response = await client.request(method, path.format(id=uuid.uuid4()), json=body)

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
