"""The meeting page (``/m/{token}``), its calendar file and its JSON twin
(``/v1/meetings/{token}``): who may do what, carry-over of action items, GETs that change
nothing, 404/410 pages, the link headers, the calendar file, the guessing brake and
tokens kept out of logs."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import icalendar
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select, update

from app.checkins.models import Meeting
from app.core.config import Settings
from app.core.db import Base, Database
from app.surveys.ratelimit import FailedLookupLimiter
from tests.checkins.meeting_support import (
    UNKNOWN_TOKEN,
    Series,
    create_series,
    meeting_links,
    person,
    start_meeting,
)
from tests.conftest import Org
from tests.surveys.answering_support import Element, parse_html

LINK_HEADERS = {
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-robots-tag": "noindex, nofollow",
}


@pytest_asyncio.fixture
async def series(client: httpx.AsyncClient, org: Org, db: Database, settings: Settings) -> Series:
    """Maya manages Bo; weekly one-on-ones from tomorrow, the default check-in."""
    created = await create_series(
        client,
        org.admin,
        manager=person("maya@example.com", "en"),
        report=person("bo@example.com", "en"),
    )
    created.meetings = await meeting_links(db, settings, created.id)
    assert len(created.meetings) >= 4
    return created


async def _page(client: httpx.AsyncClient, token: str, status: int = 200) -> Element:
    response = await client.get(f"/m/{token}")
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return parse_html(response.text)


async def _doc(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get(f"/v1/meetings/{token}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _act(client: httpx.AsyncClient, token: str, **body: Any) -> httpx.Response:
    return await client.post(f"/v1/meetings/{token}", json=body)


async def _form(client: httpx.AsyncClient, token: str, **fields: str) -> httpx.Response:
    return await client.post(f"/m/{token}", data=fields)


async def _hr_meetings(client: httpx.AsyncClient, org: Org, series: Series) -> dict[str, Any]:
    response = await client.get(f"/v1/checkins/{series.id}/meetings", headers=org.admin)
    assert response.status_code == 200, response.text
    return {m["id"]: m for m in response.json()["items"]}


def _errors(response: httpx.Response) -> list[list[Any]]:
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["loc"] for e in response.json()["errors"]]


# --- Reading --------------------------------------------------------------------------


async def test_report_gets_the_checkin_form_and_the_manager_waits_for_it(
    client: httpx.AsyncClient, series: Series
) -> None:
    report = await _page(client, series.first.report)
    manager = await _page(client, series.first.manager)

    html = report.find_all("html")[0]
    assert (html.attrs["lang"], html.attrs["dir"]) == ("en", "ltr")
    assert "One-on-one with Maya" in report.find_all("h1")[0].text
    form = report.by_id("checkin-form")
    assert {i.attrs["name"] for i in form.find_all("input") + form.find_all("textarea")} >= {
        "action",
        "feeling",
        "on_mind",
        "discuss",
    }
    assert report.find_all(id="meeting-status") == []  # only the manager marks held/skipped

    assert manager.find_all(id="checkin-form") == []
    assert "Bo has not sent the check-in yet." in manager.by_id("checkin-pending").text
    # Ahead of the meeting the manager may only say it will be skipped.
    assert manager.by_id("status-title").text == "Will the meeting take place?"
    assert manager.by_id("status-skipped").tag == "button"
    assert manager.find_all(id="status-held") == []


async def test_the_page_speaks_arabic_right_to_left(
    client: httpx.AsyncClient, org: Org, db: Database, settings: Settings
) -> None:
    created = await create_series(
        client,
        org.admin,
        manager=person("maya@example.com", "en"),
        report=person("amira@example.com", "ar"),
    )
    meetings = await meeting_links(db, settings, created.id)

    page = await _page(client, meetings[0].report)
    doc = await _doc(client, meetings[0].report)

    html = page.find_all("html")[0]
    assert (html.attrs["lang"], html.attrs["dir"]) == ("ar", "rtl")
    assert "كيف تشعر هذا الأسبوع؟" in page.by_id("q-feeling").text
    assert (doc["locale"], doc["dir"]) == ("ar", "rtl")
    assert doc["questions"][0]["prompt"] == "كيف تشعر هذا الأسبوع؟"
    # The manager's page stays in English.
    manager = (await _page(client, meetings[0].manager)).find_all("html")[0]
    assert (manager.attrs["lang"], manager.attrs["dir"]) == ("en", "ltr")


async def test_the_json_twin_describes_the_meeting_for_each_side(
    client: httpx.AsyncClient, series: Series
) -> None:
    report = await _doc(client, series.first.report)
    manager = await _doc(client, series.first.manager)

    assert report["meeting"]["role"] == "report"
    assert report["meeting"]["other_person"] == "Maya"
    assert report["meeting"]["status"] == "scheduled"
    assert report["meeting"]["duration_minutes"] == 30
    assert report["meeting"]["scheduled_at"] == manager["meeting"]["scheduled_at"]
    assert [q["key"] for q in report["questions"]] == ["feeling", "on_mind", "discuss"]
    assert report["checkin"] == {"submitted": False, "answers": None, "can_submit": True}
    assert (report["talking_points"], report["action_items"], report["note"]) == ([], [], None)
    assert "submit_checkin" in report["allowed_actions"]
    assert "set_status" not in report["allowed_actions"]

    assert manager["meeting"]["role"] == "manager"
    assert manager["meeting"]["other_person"] == "Bo"
    assert manager["checkin"]["can_submit"] is False
    assert "set_status" in manager["allowed_actions"]
    assert "submit_checkin" not in manager["allowed_actions"]


async def _snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    async with db.sessionmaker() as session:
        return {
            table.name: sorted(
                (tuple(row) for row in (await session.execute(select(table))).all()), key=repr
            )
            for table in Base.metadata.sorted_tables
        }


async def test_opening_the_links_changes_nothing(
    client: httpx.AsyncClient, series: Series, db: Database
) -> None:
    await _form(client, series.first.manager, action="add_talking_point", text="Budget")
    before = await _snapshot(db)

    for token in (series.first.manager, series.first.report, series.meetings[1].report):
        await _page(client, token)
        await _doc(client, token)
        assert (await client.get(f"/m/{token}/invite.ics")).status_code == 200

    assert await _snapshot(db) == before


# --- Links that do not open ------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [UNKNOWN_TOKEN, "short", "x" * 200, "has/a/slash", "nul%00byte", "line%0Abreak", "%E2%9C%93"],
)
async def test_unknown_or_malformed_links_answer_a_clear_404(
    client: httpx.AsyncClient, token: str
) -> None:
    page = await client.get(f"/m/{token}", headers={"Accept-Language": "fr"})
    twin = await client.get(f"/v1/meetings/{token}")
    posted = await client.post(f"/v1/meetings/{token}", json={"action": "save_note", "text": "x"})
    calendar = await client.get(f"/m/{token}/invite.ics")

    assert page.status_code == 404
    assert "Ce lien ne fonctionne pas" in parse_html(page.text).by_id("error-title").text
    for response in (twin, posted):
        assert response.status_code == 404
        assert response.json()["code"] == "link_not_found"
    assert calendar.status_code == 404


async def test_a_cancelled_meeting_answers_410_saying_it_was_cancelled(
    client: httpx.AsyncClient, org: Org, series: Series
) -> None:
    ended = await client.delete(f"/v1/checkins/{series.id}", headers=org.admin)
    assert ended.status_code == 204
    token = series.first.report

    page = await client.get(f"/m/{token}")
    twin = await client.get(f"/v1/meetings/{token}")
    posted_form = await _form(client, token, action="add_talking_point", text="Hello")
    posted_json = await _act(client, token, action="add_talking_point", text="Hello")

    assert page.status_code == 410
    body = parse_html(page.text)
    assert body.by_id("error-title").text == "This meeting was cancelled"
    assert (
        body.find_all("time")[0]
        .attrs["datetime"]
        .startswith(series.first.scheduled_at.date().isoformat())
    )
    assert posted_form.status_code == 410
    for response in (twin, posted_json):
        assert response.status_code == 410
        assert response.json()["code"] == "meeting_cancelled"


async def test_a_cancelled_meetings_calendar_file_is_its_cancel(
    client: httpx.AsyncClient, org: Org, series: Series
) -> None:
    await client.delete(f"/v1/checkins/{series.id}", headers=org.admin)

    response = await client.get(f"/m/{series.first.manager}/invite.ics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    calendar = icalendar.Calendar.from_ical(response.content)
    event = calendar.walk("VEVENT")[0]
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
    assert int(str(event["SEQUENCE"])) == 1


async def test_a_deactivated_persons_link_stops_working(
    client: httpx.AsyncClient, org: Org, series: Series
) -> None:
    gone = await client.delete(f"/v1/employees/{series.report_id}", headers=org.admin)
    assert gone.status_code in (200, 204), gone.text

    assert (await client.get(f"/m/{series.first.report}")).status_code == 404
    assert (await client.get(f"/v1/meetings/{series.first.report}")).status_code == 404


# --- Headers ------------------------------------------------------------------------------


async def test_every_answer_carries_the_link_headers(
    client: httpx.AsyncClient, org: Org, series: Series
) -> None:
    token = series.first.report
    responses = [
        await client.get(f"/m/{token}"),
        await client.get(f"/v1/meetings/{token}"),
        await client.get(f"/m/{token}/invite.ics"),
        await _form(client, token, action="add_talking_point", text="Budget"),  # 303
        await _form(client, token, action="add_talking_point", text=" "),  # 422 page
        await _form(client, token, action="set_status", status="held"),  # 403 page
        await _act(client, token, action="set_status", status="held"),  # 403 problem
        await client.get(f"/m/{UNKNOWN_TOKEN}"),
        await client.get(f"/v1/meetings/{UNKNOWN_TOKEN}"),
    ]
    await client.delete(f"/v1/checkins/{series.id}", headers=org.admin)
    responses.append(await client.get(f"/m/{token}"))  # 410

    assert [r.status_code for r in responses] == [200, 200, 200, 303, 422, 403, 403, 404, 404, 410]
    for response in responses:
        for name, value in LINK_HEADERS.items():
            assert response.headers[name] == value, (response.request.url, name)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
    page_csp = responses[0].headers["content-security-policy"]
    assert "form-action 'self'" in page_csp
    assert "script-src" not in page_csp  # nothing to run: the page needs no JavaScript


# --- Roles ------------------------------------------------------------------------------


async def test_only_the_manager_marks_the_meeting_held_or_skipped(
    client: httpx.AsyncClient, org: Org, series: Series, db: Database
) -> None:
    meeting = series.first
    await start_meeting(db, meeting.id)

    by_report_page = await _form(client, meeting.report, action="set_status", status="held")
    by_report_json = await _act(client, meeting.report, action="set_status", status="skipped")

    assert by_report_page.status_code == 403
    assert "Only the manager" in parse_html(by_report_page.text).text
    assert by_report_json.status_code == 403
    assert by_report_json.json()["code"] == "wrong_role"
    assert (await _hr_meetings(client, org, series))[str(meeting.id)]["status"] == "scheduled"

    held = await _form(client, meeting.manager, action="set_status", status="held")
    assert held.status_code == 303
    assert (await _hr_meetings(client, org, series))[str(meeting.id)]["status"] == "held"
    page = await _page(client, meeting.manager)
    assert page.by_id("status").text == "Held"
    assert page.by_id("status-held").attrs.get("aria-pressed") == "true"

    skipped = await _act(client, meeting.manager, action="set_status", status="skipped")
    assert skipped.status_code == 200, skipped.text
    assert skipped.json()["meeting"]["status"] == "skipped"
    bad = await _act(client, meeting.manager, action="set_status", status="cancelled")
    assert bad.status_code == 422
    assert _errors(bad) == [["body", "status"]]


async def test_only_the_report_sends_the_checkin(
    client: httpx.AsyncClient, org: Org, series: Series
) -> None:
    token = series.first.manager

    by_page = await _form(client, token, action="submit_checkin", feeling="4")
    by_json = await _act(client, token, action="submit_checkin", answers={"feeling": 4})

    assert by_page.status_code == 403
    assert by_json.status_code == 403
    assert by_json.json()["code"] == "wrong_role"
    assert (await _hr_meetings(client, org, series))[str(series.first.id)][
        "checkin_submitted"
    ] is False


async def test_the_checkin_is_taken_only_while_the_meeting_is_scheduled(
    client: httpx.AsyncClient, series: Series
) -> None:
    meeting = series.first
    skipped = await _act(client, meeting.manager, action="set_status", status="skipped")
    assert skipped.status_code == 200, skipped.text

    by_page = await _form(client, meeting.report, action="submit_checkin", feeling="4")
    by_json = await _act(client, meeting.report, action="submit_checkin", answers={"feeling": 4})

    assert by_page.status_code == 409
    assert "The check-in is closed" in parse_html(by_page.text).by_id("error-title").text
    assert by_json.status_code == 409
    assert by_json.json()["code"] == "checkin_closed"
    doc = await _doc(client, meeting.report)
    assert doc["checkin"] == {"submitted": False, "answers": None, "can_submit": False}
    assert "submit_checkin" not in doc["allowed_actions"]
    assert (await _page(client, meeting.report)).find_all(id="checkin-form") == []


async def test_a_meeting_is_marked_held_only_once_it_has_started(
    client: httpx.AsyncClient, org: Org, series: Series, db: Database
) -> None:
    meeting = series.first

    by_page = await _form(client, meeting.manager, action="set_status", status="held")
    by_json = await _act(client, meeting.manager, action="set_status", status="held")

    assert by_page.status_code == 409
    refused = parse_html(by_page.text)
    assert refused.by_id("error-title").text == "The meeting has not started yet"
    assert "you can mark it skipped now" in refused.text
    assert by_json.status_code == 409
    assert by_json.json()["code"] == "meeting_not_started"
    assert "marked held once it has started" in by_json.json()["detail"]
    # Nothing changed: still scheduled for HR, the report's check-in still open.
    assert (await _hr_meetings(client, org, series))[str(meeting.id)]["status"] == "scheduled"
    assert (await _doc(client, meeting.report))["checkin"]["can_submit"] is True
    assert (await _doc(client, meeting.manager))["settable_statuses"] == ["skipped", "scheduled"]
    ahead = await _page(client, meeting.manager)
    assert ahead.find_all(id="status-held") == []
    assert ahead.by_id("status-hint").text == "It can be marked held once it has started."

    await start_meeting(db, meeting.id)
    started = await _page(client, meeting.manager)
    assert started.by_id("status-title").text == "Did the meeting take place?"
    assert started.by_id("status-held").tag == "button"
    assert started.find_all(id="status-hint") == []
    held = await _form(client, meeting.manager, action="set_status", status="held")
    assert held.status_code == 303
    assert (await _hr_meetings(client, org, series))[str(meeting.id)]["status"] == "held"


async def test_a_meeting_skipped_ahead_closes_the_checkin_until_the_manager_undoes_it(
    client: httpx.AsyncClient, org: Org, series: Series
) -> None:
    meeting = series.first

    skipped = await _form(client, meeting.manager, action="set_status", status="skipped")

    assert skipped.status_code == 303
    assert (await _hr_meetings(client, org, series))[str(meeting.id)]["status"] == "skipped"
    assert (await _page(client, meeting.report)).find_all(id="checkin-form") == []
    assert (await _doc(client, meeting.report))["checkin"]["can_submit"] is False
    manager = await _page(client, meeting.manager)
    assert manager.by_id("status").text == "Skipped"
    assert manager.by_id("status-skipped").attrs.get("aria-pressed") == "true"
    assert manager.by_id("status-scheduled").text == "Undo: back to scheduled"
    by_report = await _act(client, meeting.report, action="set_status", status="scheduled")
    assert by_report.status_code == 403

    undone = await _form(client, meeting.manager, action="set_status", status="scheduled")

    assert undone.status_code == 303
    assert undone.headers["location"] == f"/m/{meeting.manager}#meeting-status"
    assert (await _hr_meetings(client, org, series))[str(meeting.id)]["status"] == "scheduled"
    assert (await _page(client, meeting.manager)).find_all(id="status-scheduled") == []
    assert (await _page(client, meeting.report)).by_id("checkin-form").tag == "form"
    sent = await _act(client, meeting.report, action="submit_checkin", answers={"feeling": 4})
    assert sent.status_code == 200, sent.text
    assert sent.json()["checkin"]["answers"] == {"feeling": 4}


async def test_a_meeting_marked_held_by_mistake_is_set_back_to_scheduled(
    client: httpx.AsyncClient, org: Org, series: Series, db: Database
) -> None:
    meeting = series.first
    await start_meeting(db, meeting.id)
    held = await _act(client, meeting.manager, action="set_status", status="held")
    assert held.json()["settable_statuses"] == ["held", "skipped", "scheduled"]
    assert (await _doc(client, meeting.report))["checkin"]["can_submit"] is False

    undone = await _act(client, meeting.manager, action="set_status", status="scheduled")

    assert undone.status_code == 200, undone.text
    assert undone.json()["meeting"]["status"] == "scheduled"
    assert (await _hr_meetings(client, org, series))[str(meeting.id)]["status"] == "scheduled"
    assert (await _doc(client, meeting.report))["checkin"]["can_submit"] is True


async def test_a_series_without_questions_shows_no_checkin_form(
    client: httpx.AsyncClient, org: Org, db: Database, settings: Settings
) -> None:
    created = await create_series(
        client,
        org.admin,
        manager=person("maya@example.com", "en"),
        report=person("bo@example.com", "en"),
        questions=[],
    )
    meeting = (await meeting_links(db, settings, created.id))[0]

    report_page = await _page(client, meeting.report)
    report_doc = await _doc(client, meeting.report)
    sent = await _act(client, meeting.report, action="submit_checkin", answers={})
    by_form = await _form(client, meeting.report, action="submit_checkin")

    assert report_page.find_all(id="checkin-form") == []
    assert report_page.by_id("checkin-none").text == "There is no check-in for this meeting."
    assert report_doc["questions"] == []
    assert report_doc["checkin"] == {"submitted": False, "answers": None, "can_submit": False}
    assert "submit_checkin" not in report_doc["allowed_actions"]
    assert sent.status_code == 409
    assert sent.json()["code"] == "no_checkin"
    assert by_form.status_code == 409
    assert "no check-in for this meeting" in parse_html(by_form.text).text
    manager_page = await _page(client, meeting.manager)
    assert manager_page.find_all(id="checkin-pending") == []  # not "Bo has not sent it"
    assert manager_page.by_id("checkin-none").text == "There is no check-in for this meeting."


async def test_checkin_answers_are_seen_by_both_once_sent(
    client: httpx.AsyncClient, org: Org, series: Series
) -> None:
    meeting = series.first

    sent = await _form(
        client, meeting.report, action="submit_checkin", feeling="4", on_mind="  Moving house  "
    )

    assert sent.status_code == 303
    assert sent.headers["location"] == f"/m/{meeting.report}#checkin"
    expected = {"feeling": 4, "on_mind": "Moving house"}
    for token in (meeting.report, meeting.manager):
        doc = await _doc(client, token)
        assert doc["checkin"]["submitted"] is True
        assert doc["checkin"]["answers"] == expected
    answers = (await _page(client, meeting.manager)).by_id("checkin-answers").text
    assert "Answers from Bo" in answers
    assert "4 / 5" in answers
    assert "Moving house" in answers
    assert "No answer" in answers  # the skipped optional question
    assert (await _hr_meetings(client, org, series))[str(meeting.id)]["checkin_submitted"] is True


async def test_the_report_may_change_the_answers_before_the_meeting(
    client: httpx.AsyncClient, series: Series
) -> None:
    token = series.first.report
    await _act(client, token, action="submit_checkin", answers={"feeling": 2})

    page = await _page(client, token)
    assert page.by_id("a-feeling-2").attrs.get("checked") == ""  # the form starts from them
    changed = await _act(client, token, action="submit_checkin", answers={"feeling": 5})

    assert changed.status_code == 200, changed.text
    assert changed.json()["checkin"]["answers"] == {"feeling": 5}


async def test_checkin_answers_are_checked_and_each_error_names_its_question(
    client: httpx.AsyncClient, series: Series
) -> None:
    token = series.first.report

    too_high = await _act(client, token, action="submit_checkin", answers={"feeling": 9})
    missing = await _act(client, token, action="submit_checkin", answers={"on_mind": "hi"})
    unknown = await _act(
        client, token, action="submit_checkin", answers={"feeling": 3, "salary": "more"}
    )
    page = await _form(client, token, action="submit_checkin", feeling="", on_mind="Keep me")

    assert too_high.status_code == 422
    assert _errors(too_high) == [["body", "answers", "feeling"]]
    assert _errors(missing) == [["body", "answers", "feeling"]]
    assert _errors(unknown) == [["body", "answers", "salary"]]
    assert "salary" in unknown.json()["detail"]
    assert page.status_code == 422
    html = parse_html(page.text)
    assert html.by_id("err-feeling").text.endswith("Please answer this question.")
    assert html.by_id("a-on_mind").text == "Keep me"
    assert (await _doc(client, token))["checkin"]["submitted"] is False


# --- Talking points and action items ---------------------------------------------------------


async def test_talking_points_are_shared_and_ticked_off_by_either_side(
    client: httpx.AsyncClient, series: Series
) -> None:
    meeting = series.first

    added = await _form(client, meeting.report, action="add_talking_point", text="Conference")
    assert added.status_code == 303
    assert added.headers["location"] == f"/m/{meeting.report}#talking-points"
    manager_view = await _page(client, meeting.manager)
    [item] = manager_view.by_id("talking-point-list").find_all("li")
    assert "Conference" in item.text
    assert "added by Bo" in item.text
    point_id = item.attrs["id"].removeprefix("tp-")

    ticked = await _form(
        client, meeting.manager, action="toggle_talking_point", id=point_id, done="true"
    )
    assert ticked.status_code == 303
    [point] = (await _doc(client, meeting.report))["talking_points"]
    assert (point["text"], point["author"], point["done"]) == ("Conference", "report", True)
    report_view = await _page(client, meeting.report)
    assert "done" in report_view.by_id(f"tp-{point_id}").attrs["class"].split()

    # An explicit state is idempotent (a double-submitted form does not undo itself);
    # without one the state flips.
    again = await _act(
        client, meeting.report, action="toggle_talking_point", id=point_id, done=True
    )
    assert again.json()["talking_points"][0]["done"] is True
    flipped = await _act(client, meeting.report, action="toggle_talking_point", id=point_id)
    assert flipped.json()["talking_points"][0]["done"] is False

    # Talking points belong to their meeting.
    assert (await _doc(client, series.meetings[1].report))["talking_points"] == []
    other = await _act(
        client, series.meetings[1].report, action="toggle_talking_point", id=point_id
    )
    assert other.status_code == 422
    assert _errors(other) == [["body", "id"]]


async def test_open_action_items_carry_over_and_done_ones_do_not(
    client: httpx.AsyncClient, series: Series
) -> None:
    first, second, third = series.meetings[:3]
    open_item = await _act(
        client, first.manager, action="add_action_item", text="Book the course", owner="report"
    )
    done_item = await _act(
        client, first.report, action="add_action_item", text="Send slides", owner="manager"
    )
    assert open_item.status_code == 200, open_item.text
    items = {i["text"]: i for i in done_item.json()["action_items"]}
    await _act(client, first.manager, action="toggle_action_item", id=items["Send slides"]["id"])

    on_first = {i["text"]: i for i in (await _doc(client, first.report))["action_items"]}
    on_second = {i["text"]: i for i in (await _doc(client, second.manager))["action_items"]}

    assert set(on_first) == {"Book the course", "Send slides"}
    assert on_first["Send slides"]["done"] is True
    assert not any(i["carried_over"] for i in on_first.values())
    assert set(on_second) == {"Book the course"}  # the done one is not carried
    carried = on_second["Book the course"]
    assert (carried["carried_over"], carried["owner"], carried["done"]) == (True, "report", False)
    assert carried["meeting_scheduled_at"] == on_first["Book the course"]["meeting_scheduled_at"]
    page = await _page(client, second.report)
    [row] = page.by_id("action-item-list").find_all("li")
    assert "Book the course" in row.text
    assert "for you" in row.text
    assert "open since the meeting of" in row.text

    # A later meeting's items never reach an earlier meeting.
    await _act(client, third.manager, action="add_action_item", text="Later", owner="manager")
    assert "Later" not in {i["text"] for i in (await _doc(client, second.report))["action_items"]}


async def test_an_item_ticked_off_on_the_upcoming_meeting_stays_there_done(
    client: httpx.AsyncClient, series: Series, db: Database
) -> None:
    first, second, third = series.meetings[:3]
    await _act(client, first.manager, action="add_action_item", text="Book it", owner="report")
    # The first meeting took place yesterday; the second is the upcoming one.
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Meeting)
            .where(Meeting.id == first.id)
            .values(scheduled_at=datetime.now(UTC) - timedelta(days=1), status="held")
        )
    [carried] = (await _doc(client, second.report))["action_items"]

    ticked = await _form(
        client, second.report, action="toggle_action_item", id=carried["id"], done="true"
    )

    assert ticked.status_code == 303
    assert ticked.headers["location"] == f"/m/{second.report}#action-items"
    [still] = (await _doc(client, second.report))["action_items"]
    assert (still["text"], still["done"], still["carried_over"]) == ("Book it", True, True)
    page = await _page(client, second.report)
    assert "done" in page.by_id(f"ai-{carried['id']}").attrs["class"].split()
    assert (await _doc(client, third.report))["action_items"] == []  # carried no further


async def test_an_item_not_on_the_page_cannot_be_ticked_from_it(
    client: httpx.AsyncClient, series: Series
) -> None:
    later = await _act(
        client, series.meetings[2].manager, action="add_action_item", text="Q3", owner="manager"
    )
    item_id = later.json()["action_items"][-1]["id"]

    for item in (item_id, str(uuid.uuid4())):
        response = await _act(client, series.first.manager, action="toggle_action_item", id=item)
        assert response.status_code == 422
        assert _errors(response) == [["body", "id"]]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"action": "add_talking_point", "text": "   "}, ["body", "text"]),
        ({"action": "add_talking_point"}, ["body", "text"]),
        ({"action": "add_talking_point", "text": "x" * 501}, ["body", "text"]),
        ({"action": "add_action_item", "text": "Do it", "owner": "hr"}, ["body", "owner"]),
        ({"action": "toggle_action_item", "id": "not-a-uuid"}, ["body", "id"]),
        ({"action": "save_note", "text": "x" * 10_001}, ["body", "text"]),
        ({"action": "save_note", "text": "ok", "extra": 1}, ["body", "extra"]),
        ({"action": "dance"}, ["body", "action"]),
        ({"text": "no action"}, ["body", "action"]),
    ],
)
async def test_a_bad_action_is_422_naming_the_field(
    client: httpx.AsyncClient, series: Series, body: dict[str, Any], loc: list[str]
) -> None:
    response = await client.post(f"/v1/meetings/{series.first.manager}", json=body)

    assert response.status_code == 422, response.text
    assert _errors(response) == [loc]


async def test_a_bad_form_shows_the_page_again_with_the_error_beside_it(
    client: httpx.AsyncClient, series: Series
) -> None:
    token = series.first.report
    long_text = "y" * 501

    response = await _form(client, token, action="add_action_item", text=long_text, owner="me")

    assert response.status_code == 422
    page = parse_html(response.text)
    assert (
        "Please keep it to 500 characters (this has 501)."
        in page.by_id("err-action_item-text").text
    )
    assert page.by_id("action-item-text").attrs["value"] == long_text
    assert page.by_id("action-item-text").attrs["aria-invalid"] == "true"
    assert (await _doc(client, token))["action_items"] == []


async def test_private_notes_are_saved_replaced_and_cleared(
    client: httpx.AsyncClient, series: Series
) -> None:
    token = series.first.manager

    first = await _form(client, token, action="save_note", text="Ask about\r\nthe move")
    second = await _act(client, token, action="save_note", text="Ask about the team")

    assert first.status_code == 303
    assert first.headers["location"].endswith("#note")
    assert second.json()["note"]["text"] == "Ask about the team"
    assert (await _page(client, token)).by_id("note-text").text == "Ask about the team"
    cleared = await _act(client, token, action="save_note", text="  ")
    assert cleared.json()["note"] is None


# --- The calendar file --------------------------------------------------------------------


@pytest.mark.parametrize("role", ["manager", "report"])
async def test_the_calendar_file_parses_back_with_the_participants_link(
    client: httpx.AsyncClient, series: Series, settings: Settings, role: str
) -> None:
    meeting = series.first
    token = meeting.token(role)

    response = await client.get(f"/m/{token}/invite.ics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    calendar = icalendar.Calendar.from_ical(response.content)
    assert str(calendar["METHOD"]) == "REQUEST"
    [event] = calendar.walk("VEVENT")
    assert str(event["UID"]) == f"meeting-{meeting.id}@pulse"
    assert int(str(event["SEQUENCE"])) == 0
    start: Any = event["DTSTART"]  # icalendar types properties as a wide union
    assert start.params["TZID"] == "Europe/Berlin"
    assert start.dt == meeting.scheduled_at
    assert str(event["ORGANIZER"]) == "mailto:maya@example.com"
    attendees: Any = event["ATTENDEE"]
    assert sorted(str(a) for a in attendees) == [
        "mailto:bo@example.com",
        "mailto:maya@example.com",
    ]
    link = f"{settings.public_base_url}/m/{token}"
    assert link in str(event["DESCRIPTION"])
    other = meeting.token("report" if role == "manager" else "manager")
    assert other not in response.text  # each person's file carries their own link only
    assert [c.name for c in calendar.subcomponents if c.name == "VTIMEZONE"] == ["VTIMEZONE"]


# --- Guessing and logs ------------------------------------------------------------------


async def test_failed_lookups_are_braked_and_valid_links_never_count(
    app: FastAPI, client: httpx.AsyncClient, series: Series
) -> None:
    app.state.link_limiter = FailedLookupLimiter(failures=3, per_seconds=600)

    for _ in range(10):
        assert (await client.get(f"/m/{series.first.report}")).status_code == 200
    misses = [(await client.get(f"/m/{UNKNOWN_TOKEN}")).status_code for _ in range(3)]
    braked = await client.get(f"/v1/meetings/{UNKNOWN_TOKEN}")

    assert misses == [404, 404, 404]
    assert braked.status_code == 429
    assert int(braked.headers["retry-after"]) > 0
    # A valid link still opens from the braked address: the brake is on guessing only.
    assert (await client.get(f"/m/{series.first.manager}")).status_code == 200


async def test_tokens_never_reach_the_logs(
    client: httpx.AsyncClient, series: Series, caplog: pytest.LogCaptureFixture
) -> None:
    token = series.first.report
    caplog.set_level(logging.DEBUG)

    await client.get(f"/m/{token}")
    await _form(client, token, action="add_talking_point", text="Hello")
    await client.get(f"/v1/meetings/{token}")
    await client.get(f"/m/{token}/invite.ics")
    await client.get(f"/m/{UNKNOWN_TOKEN}")

    access = [r.getMessage() for r in caplog.records if r.name == "pulse.access"]
    assert "GET /m/*** 200" in access
    assert "POST /m/*** 303" in access
    assert "GET /v1/meetings/*** 200" in access
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert server
    for record in server:
        line = f"{record.getMessage()} {vars(record)}"
        assert token not in line, record.name
        assert UNKNOWN_TOKEN not in line, record.name


async def test_status_changes_are_visible_to_hr_and_nothing_else(
    client: httpx.AsyncClient, org: Org, series: Series, db: Database
) -> None:
    """HR sees held/skipped and whether the check-in was sent, nothing more (the meeting
    row is all the admin listing reads)."""
    await _act(client, series.first.report, action="submit_checkin", answers={"feeling": 3})
    await start_meeting(db, series.first.id)
    await _act(client, series.first.manager, action="set_status", status="held")

    listed = (await _hr_meetings(client, org, series))[str(series.first.id)]

    assert set(listed) == {"id", "scheduled_at", "status", "checkin_submitted"}
    assert (listed["status"], listed["checkin_submitted"]) == ("held", True)
    async with db.sessionmaker() as session:
        row = await session.get(Meeting, series.first.id)
        assert row is not None
        assert row.checkin_answers == {"feeling": 3}
