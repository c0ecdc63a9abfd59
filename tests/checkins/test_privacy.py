"""What was said in a one-on-one stays between the two people, and private notes with
their writer alone (architecture.md, "One-on-ones": "HR sees through the API only that
meetings happen ... never what was said").

Each test plants unique strings where people write (check-in answers, talking points,
action items, each side's note) and looks for them where they must not be."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI

from app.core.config import Settings
from app.core.db import Database
from tests.checkins.meeting_support import (
    Series,
    create_series,
    meeting_links,
    person,
    start_meeting,
)
from tests.conftest import Org
from tests.surveys.answering_support import parse_html


def _plant(what: str) -> str:
    return f"PLANTED-{what}-{uuid.uuid4().hex}"


class Planted:
    """One unique string per place people write in, written through the links."""

    def __init__(self) -> None:
        self.checkin = _plant("checkin")
        self.talking_point = _plant("talking-point")
        self.action_item = _plant("action-item")
        self.manager_note = _plant("manager-note")
        self.report_note = _plant("report-note")

    def all(self) -> dict[str, str]:
        return dict(vars(self))


@pytest_asyncio.fixture
async def series(client: httpx.AsyncClient, org: Org, db: Database, settings: Settings) -> Series:
    created = await create_series(
        client,
        org.admin,
        manager=person("maya@example.com", "en", team="Sales", department="Commercial"),
        report=person("bo@example.com", "en", team="Sales", department="Commercial"),
    )
    created.meetings = await meeting_links(db, settings, created.id)
    return created


async def _write_everywhere(client: httpx.AsyncClient, series: Series) -> Planted:
    planted = Planted()
    meeting = series.first
    steps: list[tuple[str, dict[str, Any]]] = [
        (
            meeting.report,
            {
                "action": "submit_checkin",
                "answers": {"feeling": 4, "on_mind": planted.checkin},
            },
        ),
        (meeting.report, {"action": "add_talking_point", "text": planted.talking_point}),
        (
            meeting.manager,
            {"action": "add_action_item", "text": planted.action_item, "owner": "report"},
        ),
        (meeting.manager, {"action": "save_note", "text": planted.manager_note}),
        (meeting.report, {"action": "save_note", "text": planted.report_note}),
    ]
    for token, body in steps:
        response = await client.post(f"/v1/meetings/{token}", json=body)
        assert response.status_code == 200, response.text
    return planted


async def test_each_sides_private_note_is_seen_by_its_writer_alone(
    client: httpx.AsyncClient, series: Series
) -> None:
    planted = await _write_everywhere(client, series)
    meeting = series.first
    own = {"manager": planted.manager_note, "report": planted.report_note}

    for role, token in (("manager", meeting.manager), ("report", meeting.report)):
        other = own["report" if role == "manager" else "manager"]
        page = await client.get(f"/m/{token}")
        twin = await client.get(f"/v1/meetings/{token}")
        calendar = await client.get(f"/m/{token}/invite.ics")

        assert parse_html(page.text).by_id("note-text").text == own[role]
        assert twin.json()["note"]["text"] == own[role]
        for response in (page, twin, calendar):
            assert other not in response.text, (role, response.request.url.path)
        # What is shared, both see.
        for shared in (planted.checkin, planted.talking_point, planted.action_item):
            assert shared in page.text
            assert shared in twin.text

    # A note belongs to its meeting: the next meeting's pages start blank for both.
    for token in (series.meetings[1].manager, series.meetings[1].report):
        twin = await client.get(f"/v1/meetings/{token}")
        assert twin.json()["note"] is None
        page = await client.get(f"/m/{token}")
        assert planted.manager_note not in page.text
        assert planted.report_note not in page.text


async def _org_ids(client: httpx.AsyncClient, org: Org, series: Series) -> dict[str, list[str]]:
    """Real ids of every kind an admin path takes, with something behind each: a survey
    with an open wave (its invitations queue deliveries), the series, its people."""
    survey = await client.post(
        "/v1/surveys",
        json={
            "name": "Monthly pulse",
            "status": "active",
            "questions": [
                {"key": "enps", "kind": "enps"},
                {"key": "comment", "kind": "text", "prompt": "Anything else?", "required": False},
            ],
        },
        headers=org.admin,
    )
    assert survey.status_code == 201, survey.text
    survey_id = survey.json()["id"]
    wave = await client.post(f"/v1/surveys/{survey_id}/waves", headers=org.admin)
    assert wave.status_code == 201, wave.text
    deliveries = await client.get("/v1/deliveries?limit=500", headers=org.admin)
    assert deliveries.status_code == 200, deliveries.text
    delivery_ids = [d["id"] for d in deliveries.json()["items"]]
    assert delivery_ids
    return {
        "employee_id": [series.manager_id, series.report_id],
        "survey_id": [survey_id],
        "wave_id": [wave.json()["id"]],
        "series_id": [series.id],
        "delivery_id": delivery_ids,
    }


# Free-form parameters worth a call of their own (enumerated ones are read from the schema).
EXTRA_VALUES = {
    "group_by": ["team", "department", "manager"],
    "team": ["Sales"],
    "department": ["Commercial"],
}


def _admin_gets(app: FastAPI, ids: dict[str, list[str]]) -> Iterator[tuple[str, dict[str, str]]]:
    """Every GET under /v1/ that takes a key, from the app's own OpenAPI document (so a
    new endpoint is scanned without touching this test): once as it is, once per id it
    can filter by, once per value of each enumerated parameter."""
    for path, operations in app.openapi()["paths"].items():
        operation = operations.get("get")
        if not path.startswith("/v1/") or operation is None or not operation.get("security"):
            continue
        names = re.findall(r"{(\w+)}", path)
        missing = [n for n in names if n not in ids]
        assert not missing, f"{path}: the scan has no real id for {missing}; add one"
        concrete = [path]
        for name in names:
            concrete = [p.replace(f"{{{name}}}", value) for p in concrete for value in ids[name]]
        queries: list[dict[str, str]] = [{}]
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            name = parameter["name"]
            if name in ids:
                queries += [{name: value} for value in ids[name]]
            elif name == "manager_id":
                queries += [{name: value} for value in ids["employee_id"]]
            queries += [{name: value} for value in EXTRA_VALUES.get(name, [])]
            schema = parameter.get("schema", {})
            for option in schema.get("anyOf", [schema]):
                queries += [{name: str(value)} for value in option.get("enum", [])]
        for url in concrete:
            for query in queries:
                yield url, query


async def test_no_admin_endpoint_returns_what_was_said(
    app: FastAPI, client: httpx.AsyncClient, org: Org, series: Series, db: Database
) -> None:
    planted = await _write_everywhere(client, series)
    await start_meeting(db, series.first.id)
    await client.post(
        f"/v1/meetings/{series.first.manager}", json={"action": "set_status", "status": "held"}
    )
    ids = await _org_ids(client, org, series)
    tokens = [t for m in series.meetings for t in (m.manager, m.report)]

    scanned: list[str] = []
    for url, query in _admin_gets(app, ids):
        accepts = ["application/json"]
        if url.startswith("/v1/reports/"):
            accepts.append("text/csv")
        for accept in accepts:
            response = await client.get(url, params=query, headers={**org.admin, "Accept": accept})
            label = f"GET {url}?{query} ({accept}) → {response.status_code}"
            assert response.status_code < 500, label
            if not query:  # the plain call must work, or the scan proves nothing
                assert response.status_code == 200, f"{label}: {response.text}"
            for where, secret in planted.all().items():
                assert secret not in response.text, f"{label} returned the {where}"
            for token in tokens:
                assert token not in response.text, f"{label} returned a meeting link"
            scanned.append(label)

    scanned_paths = {label.split("?")[0] for label in scanned}
    for expected in (
        "GET /v1/employees",
        f"GET /v1/checkins/{series.id}",
        f"GET /v1/checkins/{series.id}/meetings",
        "GET /v1/deliveries",
        "GET /v1/reports/enps",
        "GET /v1/reports/participation",
        "GET /v1/reports/questions",
        f"GET /v1/waves/{ids['wave_id'][0]}",
        f"GET /v1/surveys/{ids['survey_id'][0]}",
    ):
        assert expected in scanned_paths, expected
    assert any("text/csv" in label for label in scanned)
    # The meetings listing did answer (held, check-in done): only that.
    meetings = await client.get(f"/v1/checkins/{series.id}/meetings", headers=org.admin)
    first = next(m for m in meetings.json()["items"] if m["id"] == str(series.first.id))
    assert (first["status"], first["checkin_submitted"]) == ("held", True)
