"""Request text no database can store is refused at the door, naming the field."""

from __future__ import annotations

import json

import httpx
import pytest

from app.core.validation import find_unstorable_text
from tests.conftest import Org
from tests.core.problems import assert_problem

JSON = {"Content-Type": "application/json"}
SURROGATE = "lone UTF-16 surrogate"
SURVEY = {
    "name": "Monthly pulse",
    "questions": [{"key": "enps", "kind": "enps", "prompt": "How likely are you?"}],
}


def deep_body(depth: int, **fields: str) -> bytes:
    """A JSON object with ``fields`` first and then an array nested ``depth`` deep."""
    head = json.dumps(fields)[:-1] + (", " if fields else "")
    return f'{head}"b": {"[" * depth}{"]" * depth}}}'.encode()


@pytest.mark.parametrize("path", ["/r/abc", "/v1/respond/abc"])
async def test_deeply_nested_body_with_a_nul_is_refused_without_a_key(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, content=deep_body(50_000, a="\x00"), headers=JSON)
    assert response.status_code == 422, response.text


async def test_deeply_nested_body_is_a_validation_problem(
    client: httpx.AsyncClient, org: Org
) -> None:
    for body in (deep_body(50_000, a="\x00"), deep_body(50_000, a="\ud800"), deep_body(50_000)):
        response = await client.post("/v1/employees", content=body, headers={**org.admin, **JSON})
        problem = assert_problem(response, 422)
        assert problem["errors"] == [{"loc": ["body"], "msg": "JSON is nested too deeply"}]


async def test_nul_deep_in_a_body_the_parser_accepts_is_located(
    client: httpx.AsyncClient, org: Org
) -> None:
    body = b'{"email": "lena@example.com", "attributes": ' + b"[" * 500 + b'"\\u0000"'
    body += b"]" * 500 + b"}"
    response = await client.post("/v1/employees", content=body, headers={**org.admin, **JSON})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["body", "attributes", *[0] * 500]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/employees", {"email": "lena@example.com", "name": "Lena \ud800"}, ["name"]),
        ("/v1/employees", {"email": "lena@example.com", "name": "\udc00"}, ["name"]),
        ("/v1/surveys", {**SURVEY, "name": "Pulse \udfff"}, ["name"]),
        (
            "/v1/surveys",
            {**SURVEY, "questions": [{"key": "enps", "kind": "enps", "prompt": {"en": "\ud83d"}}]},
            ["questions", 0, "prompt", "en"],
        ),
        (
            "/v1/employees",
            {"email": "lena@example.com", "attributes": {"site\ud800": "Cairo"}},
            ["attributes", "site\ud800"],
        ),
    ],
)
async def test_lone_surrogate_is_refused_naming_the_field(
    client: httpx.AsyncClient, org: Org, path: str, body: object, field: list[str | int]
) -> None:
    # json.dumps writes each lone surrogate as its \uXXXX escape, as a client would.
    response = await client.post(path, content=json.dumps(body), headers={**org.admin, **JSON})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["body", *field]
    assert SURROGATE in problem["errors"][0]["msg"]
    assert SURROGATE in problem["detail"]


async def test_lone_surrogate_with_an_idempotency_key_is_refused_and_replayed(
    client: httpx.AsyncClient, org: Org
) -> None:
    body = json.dumps({"email": "lena@example.com", "attributes": {"\ud800": "x"}})
    headers = {**org.admin, **JSON, "Idempotency-Key": "surrogate-1"}
    first = await client.post("/v1/employees", content=body, headers=headers)
    second = await client.post("/v1/employees", content=body, headers=headers)
    assert_problem(first, 422)
    assert second.status_code == 422
    assert second.headers["idempotent-replayed"] == "true"
    assert second.content == first.content


async def test_surrogate_pair_escapes_are_ordinary_text(
    client: httpx.AsyncClient, org: Org
) -> None:
    body = json.dumps({"email": "lena@example.com", "name": "Lena \U0001f600"})  # \ud83d\ude00
    assert "\\ud83d\\ude00" in body
    response = await client.post("/v1/employees", content=body, headers={**org.admin, **JSON})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Lena \U0001f600"


def test_text_check_walks_nesting_deeper_than_the_stack() -> None:
    value: object = "\x00"
    for _ in range(100_000):
        value = [value]
    found = find_unstorable_text({"a": value})
    assert found is not None
    path, problem = found
    assert path == ["a", *[0] * 100_000]
    assert "NUL" in problem


def test_text_check_reports_the_first_bad_string_in_document_order() -> None:
    found = find_unstorable_text({"ok": ["fine", {"x\ud800": 1}], "later": "\x00"})
    assert found == (
        ["ok", 1, "x\ud800"],
        f"must not contain a {SURROGATE} (an unpaired \\ud800-\\udfff escape)",
    )
    assert find_unstorable_text({"name": "Lena \U0001f600", "n": [1, 2.5, None, True]}) is None
