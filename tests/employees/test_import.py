"""Bulk import over HTTP: JSON and CSV, managers, duplicates, cycles, errors by row,
re-imports, deactivate_missing, atomic, and tenancy."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.db import Database
from app.employees import importer
from app.main import create_app
from tests.conftest import Org, create_org, make_settings
from tests.databases import in_thread, migrated_database, require_postgres
from tests.employees.helpers import assert_problem, by_email, create_employee, list_all
from tests.live import live_server

CSV = "text/csv; charset=utf-8"


async def import_json(
    client: httpx.AsyncClient, org: Org, rows: Any, **params: str
) -> httpx.Response:
    return await client.post("/v1/employees/import", json=rows, params=params, headers=org.admin)


async def import_csv(
    client: httpx.AsyncClient, org: Org, text: str | bytes, **params: str
) -> httpx.Response:
    content = text.encode() if isinstance(text, str) else text
    return await client.post(
        "/v1/employees/import",
        content=content,
        params=params,
        headers={**org.admin, "Content-Type": CSV},
    )


def result(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def errors_by_row(body: dict[str, Any]) -> dict[int, set[str | None]]:
    """Row number → the fields its errors name."""
    out: dict[int, set[str | None]] = {}
    for error in body["errors"]:
        assert error["msg"], error
        out.setdefault(error["row"], set()).add(error["field"])
    return out


# --- the happy paths --------------------------------------------------------------------


async def test_json_import_creates_employees(client: httpx.AsyncClient, org: Org) -> None:
    body = result(
        await import_json(
            client,
            org,
            [
                {"email": "omar@example.com", "name": "Omar", "team": "Sales", "locale": "ar"},
                {"email": "lena@example.com", "name": "Lena", "timezone": "Europe/Berlin"},
            ],
        )
    )

    assert body == {"created": 2, "updated": 0, "unchanged": 0, "deactivated": 0, "errors": []}
    people = await by_email(client, org)
    assert people["omar@example.com"]["team"] == "Sales"
    assert people["omar@example.com"]["locale"] == "ar"
    assert people["omar@example.com"]["timezone"] == "UTC"  # the organization's default
    assert people["lena@example.com"]["timezone"] == "Europe/Berlin"
    assert people["lena@example.com"]["active"] is True


async def test_csv_import_with_bom_keeps_arabic_names_exactly(
    client: httpx.AsyncClient, org: Org
) -> None:
    names = {
        "omar.farouk@example.com": "عمر فاروق",
        "amira.haddad@example.com": "أميرة حداد",
        "nour@example.com": "نُور الهُدى",  # with harakat, which must survive untouched
    }
    text = "email,name,locale\r\n" + "".join(f"{e},{n},ar\r\n" for e, n in names.items())

    body = result(await import_csv(client, org, b"\xef\xbb\xbf" + text.encode("utf-8")))

    assert (body["created"], body["errors"]) == (3, [])
    people = await by_email(client, org)
    assert {e: p["name"] for e, p in people.items()} == names
    assert {p["locale"] for p in people.values()} == {"ar"}


async def test_imported_employees_list_in_the_files_order(
    client: httpx.AsyncClient, org: Org
) -> None:
    emails = [f"person{i:02}@example.com" for i in range(40)]

    result(await import_json(client, org, [{"email": e} for e in emails]))

    assert [e["email"] for e in await list_all(client, org)] == emails


@pytest.mark.parametrize("content_type", ["text/csv", "Text/CSV; charset=UTF-8", "application/csv"])
async def test_csv_is_recognised_by_its_media_type_in_any_case(
    client: httpx.AsyncClient, org: Org, content_type: str
) -> None:
    response = await client.post(
        "/v1/employees/import",
        content=b"email,name\nlena@example.com,Lena\n",
        headers={**org.admin, "Content-Type": content_type},
    )

    assert result(response)["created"] == 1
    assert (await by_email(client, org))["lena@example.com"]["name"] == "Lena"


@pytest.mark.parametrize(
    "header",
    ["Email,Name,TEAM,Attr.location", " email , name ,team, attr.location "],
)
async def test_csv_header_is_matched_whatever_its_case_and_padding(
    client: httpx.AsyncClient, org: Org, header: str
) -> None:
    text = f"{header}\nlena@example.com,Lena,Sales,Berlin\n"

    body = result(await import_csv(client, org, text))

    assert (body["created"], body["errors"]) == (1, [])
    lena = (await by_email(client, org))["lena@example.com"]
    assert (lena["name"], lena["team"], lena["attributes"]) == (
        "Lena",
        "Sales",
        {"location": "Berlin"},
    )


@pytest.mark.parametrize("separator", [";", "\t"])
async def test_semicolon_or_tab_separated_csv_is_read(
    client: httpx.AsyncClient, org: Org, separator: str
) -> None:
    # As Excel writes it where the decimal separator is a comma: a comma inside a cell.
    rows = [["email", "name", "team"], ["mueller@example.com", "Müller, Anna", "Vertrieb"]]
    text = "".join(separator.join(row) + "\r\n" for row in rows)

    body = result(await import_csv(client, org, text))

    assert (body["created"], body["errors"]) == (1, [])
    anna = (await by_email(client, org))["mueller@example.com"]
    assert (anna["name"], anna["team"]) == ("Müller, Anna", "Vertrieb")


async def test_manager_email_resolves_to_a_row_later_in_the_file(
    client: httpx.AsyncClient, org: Org
) -> None:
    text = (
        "email,name,manager_email\n"
        "report@example.com,Report,boss@example.com\n"
        "boss@example.com,Boss,\n"
    )

    body = result(await import_csv(client, org, text))

    assert (body["created"], body["errors"]) == (2, [])
    people = await by_email(client, org)
    assert people["report@example.com"]["manager_id"] == people["boss@example.com"]["id"]
    assert people["boss@example.com"]["manager_id"] is None


async def test_manager_email_resolves_from_the_directory_whatever_its_case(
    client: httpx.AsyncClient, org: Org
) -> None:
    boss = await create_employee(client, org, email="boss@example.com")

    body = result(
        await import_json(
            client, org, [{"email": "report@example.com", "manager_email": "BOSS@example.com"}]
        )
    )

    assert (body["created"], body["errors"]) == (1, [])
    assert (await by_email(client, org))["report@example.com"]["manager_id"] == boss["id"]


async def test_import_updates_existing_employees_by_email_whatever_its_case(
    client: httpx.AsyncClient, org: Org
) -> None:
    existing = await create_employee(
        client, org, email="lena@example.com", name="Lena", team="Sales", locale="de"
    )

    body = result(
        await import_json(client, org, [{"email": "LENA@example.com", "team": "Support"}])
    )

    assert (body["created"], body["updated"], body["errors"]) == (0, 1, [])
    people = await list_all(client, org)
    assert len(people) == 1
    assert people[0]["id"] == existing["id"]
    assert people[0]["team"] == "Support"
    assert people[0]["name"] == "Lena"  # not in the row: unchanged
    assert people[0]["locale"] == "de"


async def test_empty_manager_email_cell_clears_the_manager(
    client: httpx.AsyncClient, org: Org
) -> None:
    boss = await create_employee(client, org, email="boss@example.com")
    await create_employee(client, org, email="report@example.com", manager_id=boss["id"])

    body = result(await import_csv(client, org, "email,manager_email\nreport@example.com,\n"))

    assert (body["updated"], body["errors"]) == (1, [])
    assert (await by_email(client, org))["report@example.com"]["manager_id"] is None


async def test_attr_columns_set_attributes_and_an_empty_cell_removes_one(
    client: httpx.AsyncClient, org: Org
) -> None:
    await create_employee(
        client,
        org,
        email="lena@example.com",
        attributes={"location": "Berlin", "level": "L3", "contract": "full-time"},
    )
    text = (
        "email,attr.location,attr.level,attr.cost-center\n"
        "lena@example.com,Cairo,,CC_12\n"
        "omar@example.com,Cairo,L2,\n"
    )

    body = result(await import_csv(client, org, text))

    assert (body["created"], body["updated"], body["errors"]) == (1, 1, [])
    people = await by_email(client, org)
    # location changed, level removed, cost-center added, contract (no column) kept.
    assert people["lena@example.com"]["attributes"] == {
        "location": "Cairo",
        "cost-center": "CC_12",
        "contract": "full-time",
    }
    assert people["omar@example.com"]["attributes"] == {"location": "Cairo", "level": "L2"}


async def test_json_attr_null_removes_an_attribute(client: httpx.AsyncClient, org: Org) -> None:
    await create_employee(
        client, org, email="lena@example.com", attributes={"location": "Berlin", "level": "L3"}
    )

    body = result(
        await import_json(client, org, [{"email": "lena@example.com", "attr.level": None}])
    )

    assert (body["updated"], body["errors"]) == (1, [])
    assert (await by_email(client, org))["lena@example.com"]["attributes"] == {"location": "Berlin"}


async def test_reimporting_the_same_file_changes_nothing(
    client: httpx.AsyncClient, org: Org
) -> None:
    text = (
        "email,name,team,department,manager_email,locale,timezone,active,attr.location\n"
        "report@example.com,Report,Sales,Commercial,boss@example.com,fr-CA,"
        "America/Toronto,true,Montréal\n"
        "boss@example.com,رئيس,Sales,Commercial,,ar,Africa/Cairo,,Cairo\n"
        "empty@example.com,,,,,,,,\n"
    )
    first = result(await import_csv(client, org, text))
    before = await list_all(client, org)

    second = result(await import_csv(client, org, text))

    assert (first["created"], first["errors"]) == (3, [])
    assert second == {"created": 0, "updated": 0, "unchanged": 3, "deactivated": 0, "errors": []}
    assert await list_all(client, org) == before


# --- rows with errors -------------------------------------------------------------------


async def test_bad_rows_are_listed_by_row_and_field_and_good_rows_apply(
    client: httpx.AsyncClient, org: Org
) -> None:
    text = (
        "email,name,locale,timezone\n"
        "good1@example.com,Good One,en,UTC\n"
        "not-an-email,Bad Email,en,UTC\n"
        "badlocale@example.com,Bad Locale,english!,UTC\n"
        "badzone@example.com,Bad Zone,en,Mars/Olympus\n"
        "good2@example.com,Good Two,,\n"
    )

    body = result(await import_csv(client, org, text))

    # Rows count data rows from 1; the header is not a row.
    assert errors_by_row(body) == {2: {"email"}, 3: {"locale"}, 4: {"timezone"}}
    assert (body["created"], body["updated"]) == (2, 0)
    assert set(await by_email(client, org)) == {"good1@example.com", "good2@example.com"}


async def test_row_numbers_count_records_not_lines(client: httpx.AsyncClient, org: Org) -> None:
    text = (
        "email,name\n"
        'multi@example.com,"Two\nLines"\n'  # one record over two lines
        "\n"  # a blank line is no record
        "bad-address,Bad\n"
    )

    body = result(await import_csv(client, org, text))

    assert errors_by_row(body) == {2: {"email"}}
    assert (await by_email(client, org))["multi@example.com"]["name"] == "Two\nLines"


async def test_json_rows_are_numbered_from_one(client: httpx.AsyncClient, org: Org) -> None:
    body = result(
        await import_json(
            client,
            org,
            [{"email": "ok@example.com"}, {"email": "ok2@example.com"}, {"email": "nope"}],
        )
    )

    assert errors_by_row(body) == {3: {"email"}}
    assert body["created"] == 2


async def test_json_row_that_is_not_an_object_is_an_error_of_its_row(
    client: httpx.AsyncClient, org: Org
) -> None:
    body = result(await import_json(client, org, [{"email": "ok@example.com"}, "nobody"]))

    assert list(errors_by_row(body)) == [2]
    assert body["created"] == 1


async def test_duplicate_emails_in_one_file_report_every_occurrence_and_apply_none(
    client: httpx.AsyncClient, org: Org
) -> None:
    text = (
        "email,name\ntwin@example.com,First\nsingle@example.com,Single\nTWIN@example.com,Second\n"
    )

    body = result(await import_csv(client, org, text))

    assert errors_by_row(body) == {1: {"email"}, 3: {"email"}}
    assert all("1" in e["msg"] and "3" in e["msg"] for e in body["errors"])
    assert body["created"] == 1
    assert set(await by_email(client, org)) == {"single@example.com"}


async def test_a_duplicate_is_reported_even_when_its_twin_has_another_error(
    client: httpx.AsyncClient, org: Org
) -> None:
    text = "email,name,locale\ntwin@example.com,First,xx-!!\ntwin@example.com,Second,en\n"

    body = result(await import_csv(client, org, text))

    assert 2 in errors_by_row(body)
    assert "email" in errors_by_row(body)[2]
    assert await list_all(client, org) == []


async def test_unknown_manager_email_is_an_error_of_its_row(
    client: httpx.AsyncClient, org: Org
) -> None:
    body = result(
        await import_json(
            client,
            org,
            [
                {"email": "ok@example.com"},
                {"email": "orphan@example.com", "manager_email": "ghost@example.com"},
            ],
        )
    )

    assert errors_by_row(body) == {2: {"manager_email"}}
    assert set(await by_email(client, org)) == {"ok@example.com"}


async def test_a_manager_only_in_a_failed_row_fails_the_report_too(
    client: httpx.AsyncClient, org: Org
) -> None:
    text = (
        "email,manager_email,locale\n"
        "report@example.com,boss@example.com,en\n"
        "boss@example.com,,not a locale\n"
    )

    body = result(await import_csv(client, org, text))

    assert errors_by_row(body) == {1: {"manager_email"}, 2: {"locale"}}
    assert await list_all(client, org) == []


async def test_self_manager_in_the_file_is_an_error(client: httpx.AsyncClient, org: Org) -> None:
    body = result(
        await import_json(
            client, org, [{"email": "me@example.com", "manager_email": "ME@example.com"}]
        )
    )

    assert errors_by_row(body) == {1: {"manager_email"}}
    assert await list_all(client, org) == []


async def test_a_cycle_within_the_file_fails_both_rows(client: httpx.AsyncClient, org: Org) -> None:
    text = (
        "email,manager_email\n"
        "a@example.com,b@example.com\n"
        "b@example.com,a@example.com\n"
        "c@example.com,\n"
    )

    body = result(await import_csv(client, org, text))

    assert errors_by_row(body) == {1: {"manager_email"}, 2: {"manager_email"}}
    assert all("cycle" in e["msg"] for e in body["errors"])
    assert set(await by_email(client, org)) == {"c@example.com"}


async def test_a_report_of_a_row_on_a_cycle_fails_instead_of_crashing(
    client: httpx.AsyncClient, org: Org
) -> None:
    # a and b are new and manage each other; c's manager, a, is therefore never created.
    rows = [
        {"email": "a@example.com", "manager_email": "b@example.com"},
        {"email": "b@example.com", "manager_email": "a@example.com"},
        {"email": "c@example.com", "manager_email": "a@example.com"},
        {"email": "d@example.com"},
    ]

    body = result(await import_json(client, org, rows))

    assert errors_by_row(body) == {1: {"manager_email"}, 2: {"manager_email"}, 3: {"manager_email"}}
    assert set(await by_email(client, org)) == {"d@example.com"}


async def test_a_cycle_through_the_directory_is_an_error(
    client: httpx.AsyncClient, org: Org
) -> None:
    # In the directory B reports to A; the file would make A report to B.
    a = await create_employee(client, org, email="a@example.com")
    b = await create_employee(client, org, email="b@example.com", manager_id=a["id"])

    body = result(
        await import_json(
            client, org, [{"email": "a@example.com", "manager_email": "b@example.com"}]
        )
    )

    assert errors_by_row(body) == {1: {"manager_email"}}
    people = await by_email(client, org)
    assert people["a@example.com"]["manager_id"] is None
    assert people["b@example.com"] == b


async def test_a_file_may_untangle_a_chain_the_directory_holds(
    client: httpx.AsyncClient, org: Org
) -> None:
    # In the directory B reports to A; the file swaps them, which is no cycle once applied.
    a = await create_employee(client, org, email="a@example.com")
    b = await create_employee(client, org, email="b@example.com", manager_id=a["id"])

    body = result(
        await import_json(
            client,
            org,
            [
                {"email": "a@example.com", "manager_email": "b@example.com"},
                {"email": "b@example.com", "manager_email": None},
            ],
        )
    )

    assert (body["updated"], body["errors"]) == (2, [])
    people = await by_email(client, org)
    assert people["a@example.com"]["manager_id"] == b["id"]
    assert people["b@example.com"]["manager_id"] is None


@pytest.mark.parametrize(
    ("header", "cell", "field"),
    [
        ("active", "maybe", "active"),
        ("manager_email", "not-an-email", "manager_email"),
    ],
)
async def test_a_bad_cell_is_an_error_naming_its_column(
    client: httpx.AsyncClient, org: Org, header: str, cell: str, field: str
) -> None:
    text = f"email,{header}\nok@example.com,\nbad@example.com,{cell}\n"

    body = result(await import_csv(client, org, text))

    assert errors_by_row(body) == {2: {field}}
    assert set(await by_email(client, org)) == {"ok@example.com"}


async def test_a_row_with_more_than_50_attributes_is_an_error(
    client: httpx.AsyncClient, org: Org
) -> None:
    many = {f"attr.a{i}": "x" for i in range(51)}
    rows = [{"email": "many@example.com", **many}, {"email": "few@example.com", "attr.a1": "x"}]

    body = result(await import_json(client, org, rows))

    assert list(errors_by_row(body)) == [1]
    assert set(await by_email(client, org)) == {"few@example.com"}


async def test_csv_row_with_more_cells_than_the_header_is_an_error(
    client: httpx.AsyncClient, org: Org
) -> None:
    text = "email,name\nok@example.com,Ok\nlong@example.com,Long,surplus\n"

    body = result(await import_csv(client, org, text))

    assert list(errors_by_row(body)) == [2]
    assert set(await by_email(client, org)) == {"ok@example.com"}


async def test_csv_row_with_fewer_cells_than_the_header_leaves_the_rest_unset(
    client: httpx.AsyncClient, org: Org
) -> None:
    text = "email,name,team\nshort@example.com,Short\n"

    body = result(await import_csv(client, org, text))

    assert (body["created"], body["errors"]) == (1, [])
    person = (await by_email(client, org))["short@example.com"]
    assert (person["name"], person["team"]) == ("Short", None)


async def test_csv_short_row_leaves_an_existing_employees_missing_columns_unchanged(
    client: httpx.AsyncClient, org: Org
) -> None:
    await create_employee(client, org, email="b1@example.com", name="Bea One", team="Sales")
    await create_employee(client, org, email="b2@example.com", name="Bea Two", team="Sales")
    # b1's row stops after the email: name and team are absent. b2's row has them, empty:
    # an empty name cell empties the name and an empty team cell clears the team.
    text = "email,name,team\nb1@example.com\nb2@example.com,,\n"

    body = result(await import_csv(client, org, text))

    assert (body["updated"], body["unchanged"], body["errors"]) == (1, 1, [])
    people = await by_email(client, org)
    assert (people["b1@example.com"]["name"], people["b1@example.com"]["team"]) == (
        "Bea One",
        "Sales",
    )
    assert (people["b2@example.com"]["name"], people["b2@example.com"]["team"]) == ("", None)


# --- files we cannot read ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "email,name,salary\na@example.com,A,100\n",
        "email,name,Email Address\na@example.com,A,a@example.com\n",
    ],
)
async def test_unknown_csv_column_answers_422_naming_it(
    client: httpx.AsyncClient, org: Org, content: str
) -> None:
    unknown = content.splitlines()[0].split(",")[-1]

    response = await import_csv(client, org, content)

    assert_problem(response, 422, field=unknown)
    assert await list_all(client, org) == []


@pytest.mark.parametrize(
    "column",
    [
        "attr.bad name",
        "attr.",
        "attr.موقع",  # attribute names are ASCII, as on POST /v1/employees
        "attr." + "x" * 65,
    ],
)
async def test_bad_attribute_column_name_answers_422_naming_it(
    client: httpx.AsyncClient, org: Org, column: str
) -> None:
    response = await import_csv(client, org, f"email,{column}\na@example.com,x\n")

    assert_problem(response, 422, field=column)
    assert await list_all(client, org) == []


async def test_unknown_json_key_answers_422_naming_it(client: httpx.AsyncClient, org: Org) -> None:
    response = await import_json(
        client, org, [{"email": "a@example.com"}, {"email": "b@example.com", "salary": 1}]
    )

    assert_problem(response, 422, field="salary")
    assert await list_all(client, org) == []


async def test_csv_without_an_email_column_answers_422(client: httpx.AsyncClient, org: Org) -> None:
    response = await import_csv(client, org, "name,team\nA,Sales\n")

    assert_problem(response, 422, field="email")


async def test_csv_with_a_repeated_column_answers_422_naming_it(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await import_csv(client, org, "email,team,team\na@example.com,Sales,Support\n")

    assert_problem(response, 422, field="team")
    assert await list_all(client, org) == []


async def test_non_utf8_csv_answers_422(client: httpx.AsyncClient, org: Org) -> None:
    content = "email,name\nrene@example.com,René Müller\n".encode("latin-1")

    response = await import_csv(client, org, content)

    assert_problem(response, 422, field="body")
    assert await list_all(client, org) == []


async def test_empty_csv_answers_422(client: httpx.AsyncClient, org: Org) -> None:
    response = await import_csv(client, org, b"")

    assert_problem(response, 422)


@pytest.mark.parametrize(
    "content",
    [b'{"email": "a@example.com"}', b'"a@example.com"', b"null", b"[{", b"\xff\xfe"],
)
async def test_json_body_that_is_not_an_array_answers_422(
    client: httpx.AsyncClient, org: Org, content: bytes
) -> None:
    response = await client.post(
        "/v1/employees/import",
        content=content,
        headers={**org.admin, "Content-Type": "application/json"},
    )

    assert_problem(response, 422, field="body")
    assert await list_all(client, org) == []


async def test_csv_cell_over_the_size_limit_answers_422_naming_its_row_and_writes_nothing(
    client: httpx.AsyncClient, org: Org
) -> None:
    await create_employee(client, org, email="kept@example.com", team="Sales")
    before = await list_all(client, org)
    huge = "x" * 200_000
    text = f"email,team\nkept@example.com,Support\nnew@example.com,{huge}\n"

    response = await import_csv(client, org, text)

    body = assert_problem(response, 422)
    assert [e["loc"] for e in body["errors"]] == [["body", 2]]
    assert "longer than" in body["errors"][0]["msg"]
    assert await list_all(client, org) == before


async def test_csv_header_cell_over_the_size_limit_answers_422(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await import_csv(client, org, "email," + "y" * 200_000 + "\na@example.com,b\n")

    body = assert_problem(response, 422, field="body")
    assert "header" in body["detail"]
    assert await list_all(client, org) == []


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'[{"email": "a@example.com", "team": ' + b"9" * 5000 + b"}]", "number is too long"),
        (
            b'[{"email": "a@example.com", "team": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]",
            "nested",
        ),
    ],
    ids=["integer-of-5000-digits", "nested-100000-deep"],
)
async def test_json_the_parser_cannot_hold_answers_422_and_writes_nothing(
    client: httpx.AsyncClient, org: Org, content: bytes, says: str
) -> None:
    response = await client.post(
        "/v1/employees/import",
        content=content,
        headers={**org.admin, "Content-Type": "application/json"},
    )

    body = assert_problem(response, 422, field="body")
    assert says in body["detail"]
    assert await list_all(client, org) == []


@pytest.mark.parametrize(
    ("content", "loc"),
    [
        (b'[{"email": "x@example.com", "\\ud800": "v"}]', ["body", 1, "\\ud800"]),
        (
            b'[{"email": "ok@example.com"}, {"email": "\\ud800@example.com"}]',
            ["body", 2, "email"],
        ),
        (b'[{"email": "x@example.com", "name": "Ali \\udc00"}]', ["body", 1, "name"]),
        # Encoded surrogate bytes, which the JSON parser decodes with "surrogatepass".
        (b'[{"email": "x@example.com", "team": "\xed\xa0\x80"}]', ["body", 1, "team"]),
        (b'[{"email": "x@example.com"}, "\\udfff"]', ["body", 2]),
    ],
    ids=["key", "email", "name", "raw-bytes", "row-not-an-object"],
)
async def test_json_lone_surrogate_answers_422_naming_row_and_field(
    client: httpx.AsyncClient, org: Org, content: bytes, loc: list[str | int]
) -> None:
    await create_employee(client, org, email="ok@example.com", name="Ok")
    before = await list_all(client, org)

    response = await client.post(
        "/v1/employees/import",
        content=content,
        headers={**org.admin, "Content-Type": "application/json"},
    )

    body = assert_problem(response, 422)
    assert [e["loc"] for e in body["errors"]] == [loc]
    assert "not valid Unicode" in body["errors"][0]["msg"]
    assert await list_all(client, org) == before


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ("email,name\r\nlena@example.com,Lena\r\n".encode("utf-16"), CSV),  # Excel: BOM FF FE
        (b"\xfe\xff" + "email,name\nlena@example.com,Lena\n".encode("utf-16-be"), CSV),
        ("email,name\nlena@example.com,Lena\n".encode("utf-16-le"), CSV),  # no BOM at all
        ('[{"email": "lena@example.com"}]'.encode("utf-16"), "application/json"),
    ],
    ids=["csv-utf-16-le-bom", "csv-utf-16-be-bom", "csv-utf-16-le-no-bom", "json-utf-16"],
)
async def test_utf16_file_answers_422_asking_for_utf8(
    client: httpx.AsyncClient, org: Org, content: bytes, content_type: str
) -> None:
    response = await client.post(
        "/v1/employees/import",
        content=content,
        headers={**org.admin, "Content-Type": content_type},
    )

    body = assert_problem(response, 422, field="body")
    assert "save the file as UTF-8" in body["detail"]
    assert "NUL" not in body["detail"]
    assert await list_all(client, org) == []


async def test_csv_header_repeated_in_another_case_answers_422_naming_it(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await import_csv(client, org, "email,Team,TEAM\na@example.com,Sales,Support\n")

    assert_problem(response, 422, field="team")
    assert await list_all(client, org) == []


# --- deactivate_missing -----------------------------------------------------------------


async def test_deactivate_missing_deactivates_only_active_employees_not_in_the_file(
    client: httpx.AsyncClient, org: Org
) -> None:
    kept = await create_employee(client, org, email="kept@example.com")
    missing = await create_employee(client, org, email="missing@example.com")
    already = await create_employee(client, org, email="already@example.com")
    assert (await client.delete(f"/v1/employees/{already['id']}", headers=org.admin)).is_success

    body = result(
        await import_json(
            client,
            org,
            [{"email": "KEPT@example.com"}, {"email": "new@example.com"}],
            deactivate_missing="true",
        )
    )

    assert (body["created"], body["deactivated"], body["errors"]) == (1, 1, [])
    people = await by_email(client, org)
    assert people["kept@example.com"]["active"] is True
    assert people["new@example.com"]["active"] is True
    assert people["missing@example.com"]["active"] is False
    assert people["already@example.com"]["active"] is False
    assert people["missing@example.com"]["id"] == missing["id"]
    assert people["kept@example.com"]["id"] == kept["id"]


async def test_without_deactivate_missing_nobody_is_deactivated(
    client: httpx.AsyncClient, org: Org
) -> None:
    await create_employee(client, org, email="absent@example.com")

    body = result(await import_json(client, org, [{"email": "new@example.com"}]))

    assert body["deactivated"] == 0
    assert (await by_email(client, org))["absent@example.com"]["active"] is True


@pytest.mark.parametrize(
    "bad_row",
    [
        "stays@example.com,not a locale,",  # fails validation
        "stays@example.com,en,x,surplus",  # more cells than the header
        "STAYS@example.com,en,manager@nowhere.example",  # unknown manager
    ],
)
async def test_a_failed_row_with_a_readable_email_is_not_deactivated(
    client: httpx.AsyncClient, org: Org, bad_row: str
) -> None:
    await create_employee(client, org, email="stays@example.com")
    await create_employee(client, org, email="goes@example.com")
    text = f"email,locale,manager_email\nother@example.com,en,\n{bad_row}\n"

    body = result(await import_csv(client, org, text, deactivate_missing="true"))

    assert list(errors_by_row(body)) == [2]
    assert body["deactivated"] == 1
    people = await by_email(client, org)
    assert people["stays@example.com"]["active"] is True
    assert people["goes@example.com"]["active"] is False


async def test_a_bad_attribute_column_answers_422_and_deactivates_nobody(
    client: httpx.AsyncClient, org: Org
) -> None:
    await create_employee(client, org, email="stays@example.com")
    await create_employee(client, org, email="absent@example.com")
    rows = [{"email": "stays@example.com"}, {"email": "new@example.com", "attr.bad name": "x"}]

    response = await import_json(client, org, rows, deactivate_missing="true")

    assert_problem(response, 422, field="attr.bad name")
    assert {e["active"] for e in await list_all(client, org)} == {True}
    assert "new@example.com" not in await by_email(client, org)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"[]", "application/json"),
        (b"email,name\n", CSV),
        (b"\xef\xbb\xbfemail,name\r\n", CSV),
        (b"email,name\n,Nobody\n", CSV),  # rows, but none names anybody
    ],
    ids=["json-empty-array", "csv-header-only", "csv-bom-and-header", "csv-no-email"],
)
async def test_deactivate_missing_with_a_file_naming_nobody_answers_422_and_changes_nothing(
    client: httpx.AsyncClient, org: Org, content: bytes, content_type: str
) -> None:
    await create_employee(client, org, email="a@example.com")
    await create_employee(client, org, email="b@example.com")
    before = await list_all(client, org)

    response = await client.post(
        "/v1/employees/import",
        content=content,
        params={"deactivate_missing": "true"},
        headers={**org.admin, "Content-Type": content_type},
    )

    body = assert_problem(response, 422, field="body")
    assert "would deactivate everyone" in body["detail"]
    assert await list_all(client, org) == before


async def test_an_empty_file_without_deactivate_missing_changes_nothing(
    client: httpx.AsyncClient, org: Org
) -> None:
    await create_employee(client, org, email="a@example.com")

    body = result(await import_json(client, org, []))

    assert body == {"created": 0, "updated": 0, "unchanged": 0, "deactivated": 0, "errors": []}
    assert (await by_email(client, org))["a@example.com"]["active"] is True


async def test_deactivate_missing_activates_listed_employees_unless_active_says_false(
    client: httpx.AsyncClient, org: Org
) -> None:
    for email in ("back@example.com", "blank@example.com", "still-out@example.com"):
        person = await create_employee(client, org, email=email, active=False)
        assert person["active"] is False
    await create_employee(client, org, email="leaving@example.com")
    await create_employee(client, org, email="absent@example.com")
    text = (
        "email,active\n"
        "back@example.com,true\n"
        "blank@example.com,\n"  # an empty cell is no explicit value
        "still-out@example.com,false\n"
        "leaving@example.com,false\n"
    )

    body = result(await import_csv(client, org, text, deactivate_missing="true"))

    assert (body["updated"], body["unchanged"], body["deactivated"], body["errors"]) == (
        3,
        1,
        1,
        [],
    )
    active = {e: p["active"] for e, p in (await by_email(client, org)).items()}
    assert active == {
        "back@example.com": True,
        "blank@example.com": True,
        "still-out@example.com": False,
        "leaving@example.com": False,
        "absent@example.com": False,
    }


async def test_deactivate_missing_activates_listed_employees_without_an_active_column(
    client: httpx.AsyncClient, org: Org
) -> None:
    await create_employee(client, org, email="back@example.com", team="Sales", active=False)

    body = result(
        await import_json(
            client, org, [{"email": "back@example.com", "team": "Sales"}], deactivate_missing="true"
        )
    )

    assert (body["updated"], body["deactivated"], body["errors"]) == (1, 0, [])
    assert (await by_email(client, org))["back@example.com"]["active"] is True


async def test_without_deactivate_missing_a_listed_inactive_employee_stays_inactive(
    client: httpx.AsyncClient, org: Org
) -> None:
    await create_employee(client, org, email="out@example.com", active=False)

    body = result(await import_json(client, org, [{"email": "out@example.com", "team": "Sales"}]))

    assert (body["updated"], body["errors"]) == (1, [])
    out = (await by_email(client, org))["out@example.com"]
    assert (out["team"], out["active"]) == ("Sales", False)


# --- atomic -----------------------------------------------------------------------------


async def test_atomic_import_with_one_bad_row_applies_nothing(
    client: httpx.AsyncClient, org: Org
) -> None:
    await create_employee(client, org, email="existing@example.com", team="Sales")
    await create_employee(client, org, email="absent@example.com")
    before = await list_all(client, org)
    text = (
        "email,team\n"
        "existing@example.com,Support\n"
        "new@example.com,Support\n"
        "broken-address,Support\n"
    )

    response = await import_csv(client, org, text, atomic="true", deactivate_missing="true")

    body = assert_problem(response, 422)
    assert body["detail"].startswith("1 row(s)")
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(3, "email")]
    assert all(e["loc"][:2] == ["body", 3] for e in body["errors"])
    assert await list_all(client, org) == before


async def test_atomic_import_counts_rows_not_errors(client: httpx.AsyncClient, org: Org) -> None:
    rows = [{"email": "ok@example.com"}, {"email": "bad", "locale": "??", "timezone": "Nowhere"}]

    response = await import_json(client, org, rows, atomic="true")

    body = assert_problem(response, 422)
    assert body["detail"].startswith("1 row(s)")
    assert {e["field"] for e in body["errors"]} == {"email", "locale", "timezone"}
    assert await list_all(client, org) == []


async def test_atomic_import_without_errors_applies_everything(
    client: httpx.AsyncClient, org: Org
) -> None:
    body = result(
        await import_json(
            client, org, [{"email": "a@example.com"}, {"email": "b@example.com"}], atomic="true"
        )
    )

    assert (body["created"], body["errors"]) == (2, [])
    assert len(await list_all(client, org)) == 2


# --- tenancy ----------------------------------------------------------------------------


async def test_another_organizations_import_creates_its_own_rows(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    boss = await create_employee(client, org, email="boss@example.com", name="Our Boss")
    await create_employee(
        client, org, email="report@example.com", name="Ours", team="Sales", manager_id=boss["id"]
    )
    ours_before = await list_all(client, org)
    rows = [
        {"email": "REPORT@example.com", "name": "Theirs", "team": "Support"},
        {"email": "solo@example.com"},
    ]

    body = result(await import_json(client, other_org, rows, deactivate_missing="true"))

    assert (body["created"], body["updated"], body["deactivated"], body["errors"]) == (
        2,
        0,
        0,
        [],
    )
    theirs = await by_email(client, other_org)
    assert set(theirs) == {"report@example.com", "solo@example.com"}
    assert theirs["report@example.com"]["name"] == "Theirs"
    assert await list_all(client, org) == ours_before


async def test_manager_email_never_resolves_to_another_organizations_employee(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    await create_employee(client, org, email="boss@example.com")

    body = result(
        await import_json(
            client,
            other_org,
            [{"email": "report@example.com", "manager_email": "boss@example.com"}],
        )
    )

    assert errors_by_row(body) == {1: {"manager_email"}}
    assert await list_all(client, other_org) == []


# --- a large import and the event loop --------------------------------------------------


async def test_health_check_is_answered_while_a_large_import_is_being_checked(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real HTTP, a server that commits. The import's first row waits (in the server)
    until /healthz has been answered: were rows checked on the event loop, that wait
    would hold the loop, /healthz could not be answered, and the gate would time out."""
    rows = 30_000
    checking, gate = threading.Event(), threading.Event()
    opened: list[bool] = []
    validate_row = importer._validate_row

    def gated(number: int, record: dict[str, Any], plan: Any) -> Any:
        if number == 1:
            checking.set()
            opened.append(gate.wait(timeout=15))
        return validate_row(number, record, plan)

    monkeypatch.setattr(importer, "_validate_row", gated)
    text = "email,name,team\n" + "".join(
        f"person{i}@example.com,Person {i},Team {i % 40}\n" for i in range(rows)
    )
    with migrated_database(backend, tmp_path) as url:

        async def seed() -> Org:
            db = Database.from_url(url)
            try:
                return await create_org(db, "Acme")
            finally:
                await db.dispose()

        org = in_thread(lambda: asyncio.run(seed()))
        with live_server(create_app(make_settings(url))) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
                finished: list[str] = []

                async def run_import() -> httpx.Response:
                    response = await import_csv(client, org, text)
                    finished.append("import")
                    return response

                importing = asyncio.create_task(run_import())
                assert await asyncio.to_thread(checking.wait, 60)
                health = await client.get("/healthz")
                finished.append("healthz")
                gate.set()
                imported = await importing

                assert health.status_code == 200
                assert opened == [True]  # released by the health check, not by the timeout
                assert finished == ["healthz", "import"]
                assert (result(imported)["created"], result(imported)["errors"]) == (rows, [])
                last = f"person{rows - 1}@example.com"
                found = await client.get("/v1/employees", params={"q": last}, headers=org.admin)
                assert [e["email"] for e in found.json()["items"]] == [last]


async def test_an_email_added_while_an_import_runs_answers_409_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL runs two writers at once (SQLite takes its write lock at BEGIN): an
    employee created between the import's look-up and its insert must not turn the
    import into a 500, and nothing of the import may stay. The POST uses the import's
    API key while the import's transaction is open: it must not wait for it (the key's
    last_used_at row was locked by the import, which held every such request)."""
    require_postgres()
    looked_up, go_on = threading.Event(), threading.Event()
    load_current = importer._load_current

    async def gated(*args: Any, **kwargs: Any) -> Any:
        found = await load_current(*args, **kwargs)
        looked_up.set()
        await asyncio.to_thread(go_on.wait, 30)
        return found

    monkeypatch.setattr(importer, "_load_current", gated)
    text = "email,name\nfirst@example.com,First\nraced@example.com,Raced\n"
    with migrated_database("postgresql", tmp_path) as url:
        db = Database.from_url(url)
        try:
            org = await create_org(db, "Acme")
            with live_server(create_app(make_settings(url))) as base_url:
                async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
                    importing = asyncio.create_task(import_csv(client, org, text))
                    assert await asyncio.to_thread(looked_up.wait, 30)
                    created = await create_employee(
                        client, org, email="raced@example.com", name="Quick"
                    )
                    go_on.set()
                    response = await importing
                    assert_problem(response, 409)
                    assert response.json()["code"] == "import_conflict"
                    everyone = await list_all(client, org)
        finally:
            await db.dispose()
    assert [(e["email"], e["name"]) for e in everyone] == [(created["email"], "Quick")]
