"""The answer pages as HTML: what they show in each language, labels and the eNPS scale,
the headers on every answer, the form again with errors beside their questions, the
thank-you, 404 and 410 pages."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from app.core.config import Settings
from app.core.db import Database
from app.surveys import messages
from app.surveys.models import Invitation
from app.surveys.ratelimit import FailedLookupLimiter
from tests.conftest import Org
from tests.surveys.answering_support import (
    ARABIC_WORKLOAD,
    VALID_ANSWERS,
    Element,
    Opened,
    form,
    open_survey,
    parse_html,
)

UNKNOWN_TOKEN = "B" * 43


@pytest_asyncio.fixture
async def opened(client: httpx.AsyncClient, org: Org, db: Database, settings: Settings) -> Opened:
    return await open_survey(
        client,
        org,
        db,
        settings,
        people=[
            ("ana@example.com", "en"),
            ("amira@example.com", "ar"),
            ("claire@example.com", "fr-CA"),
        ],
    )


async def _page(client: httpx.AsyncClient, path: str, status: int = 200) -> Element:
    response = await client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return parse_html(response.text)


def _html(doc: Element) -> Element:
    (html,) = doc.find_all("html")
    return html


# --- What the page shows ----------------------------------------------------------------


async def test_page_shows_each_question_with_labelled_controls(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    doc = await _page(client, f"/r/{opened.token('ana@example.com')}")

    assert (_html(doc).attrs["lang"], _html(doc).attrs["dir"]) == ("en", "ltr")
    assert doc.find_all("h1")[0].text == "Monthly pulse"
    # The eNPS scale: eleven labelled choices 0..10 with their anchors.
    enps = doc.by_id("q-enps")
    radios = enps.find_all("input", type="radio", name="enps")
    assert [r.attrs["value"] for r in radios] == [str(n) for n in range(11)]
    labels = {lab.attrs["for"]: lab.text for lab in enps.find_all("label")}
    assert all(r.attrs["id"] in labels for r in radios)
    assert labels["a-enps-0"] == "0 – not at all likely"
    assert labels["a-enps-10"] == "10 – extremely likely"
    assert labels["a-enps-5"] == "5"
    assert "How likely are you to recommend Acme as a place to work?" in enps.text
    assert "0 = not at all likely" in enps.text
    assert "10 = extremely likely" in enps.text
    assert enps.find_all("legend"), "a radio group is a fieldset with a legend"
    # Every control of every question has a label.
    for control in doc.find_all("input") + doc.find_all("textarea"):
        assert doc.find_all("label", for_=control.attrs["id"]), control.attrs
    assert [r.attrs["value"] for r in doc.by_id("q-workload").find_all("input")] == [
        "1",
        "2",
        "3",
        "4",
        "5",
    ]
    assert doc.by_id("q-perks").find_all("input", type="checkbox")
    assert doc.by_id("a-comment").attrs["maxlength"] == "2000"
    assert "(optional)" in doc.by_id("q-comment").text
    assert "(required)" in doc.by_id("q-enps").text


async def test_page_says_the_survey_is_anonymous_and_until_when_it_is_open(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    doc = await _page(client, f"/r/{opened.token('ana@example.com')}")

    assert "This survey is anonymous" in doc.by_id("notice").text
    (closes,) = doc.find_all("time")
    assert closes.attrs["datetime"].endswith("Z")
    assert "(Europe/Paris)" in closes.text


async def test_page_needs_no_javascript_and_loads_nothing_from_elsewhere(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    response = await client.get(f"/r/{opened.token('ana@example.com')}")
    doc = parse_html(response.text)

    assert not doc.find_all("script")
    assert not [
        e for e in doc.iter() if "style" in e.attrs or any(a.startswith("on") for a in e.attrs)
    ]
    assert not re.search(r"(src|href)=\"(https?:)?//", response.text)
    (form_element,) = doc.find_all("form")
    assert form_element.attrs["method"] == "post"
    assert "action" not in form_element.attrs
    assert doc.find_all("meta", name="viewport")


async def test_arabic_page_is_right_to_left_and_in_arabic(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    doc = await _page(client, f"/r/{opened.token('amira@example.com')}")

    assert (_html(doc).attrs["lang"], _html(doc).attrs["dir"]) == ("ar", "rtl")
    assert ARABIC_WORKLOAD in doc.by_id("q-workload").text
    assert "ما مدى احتمال أن توصي" in doc.by_id("q-enps").text
    assert "غير محتمل على الإطلاق" in doc.by_id("q-enps").text
    assert "هذا الاستبيان مجهول الهوية" in doc.by_id("notice").text
    assert "إرسال إجاباتي" in doc.find_all("button")[0].text
    # A prompt the survey gave in English only is marked as English, left-to-right.
    remote_prompt = doc.by_id("q-remote").find_all("legend")[0].find_all("span")[0]
    assert (remote_prompt.attrs["lang"], remote_prompt.attrs["dir"]) == ("en", "ltr")


async def test_regional_locale_falls_back_to_its_language(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    doc = await _page(client, f"/r/{opened.token('claire@example.com')}")  # fr-CA

    assert _html(doc).attrs["lang"] == "fr"
    assert "Ma charge de travail est raisonnable" in doc.by_id("q-workload").text
    assert "pas du tout probable" in doc.by_id("q-enps").text
    assert "Ce questionnaire est anonyme" in doc.by_id("notice").text
    assert "Le Caire" in doc.by_id("q-office").text


async def test_unknown_language_falls_back_to_the_organization_default(
    client: httpx.AsyncClient, org: Org, db: Database, settings: Settings
) -> None:
    patched = await client.patch(
        "/v1/organization", json={"default_locale": "fr"}, headers=org.admin
    )
    assert patched.status_code == 200, patched.text
    opened = await open_survey(client, org, db, settings, people=[("jan@example.com", "nl")])

    doc = await _page(client, f"/r/{opened.token('jan@example.com')}")

    assert _html(doc).attrs["lang"] == "fr"
    assert "Ma charge de travail est raisonnable" in doc.by_id("q-workload").text


@pytest.mark.parametrize(
    ("locale", "default", "page"),
    [
        ("fr-CA", "en", "fr"),
        ("ar-EG", "en", "ar"),
        ("de", "ar", "ar"),
        ("de", "de", "en"),
        ("EN-gb", "fr", "en"),
    ],
)
def test_page_language_negotiation(locale: str, default: str, page: str) -> None:
    assert messages.ui_locale(messages.preference_chain(locale, default)) == page


def test_accept_language_orders_by_quality() -> None:
    chain = messages.from_accept_language("de;q=0.9, ar-EG;q=0.95, fr;q=0.1, *;q=0.5")

    assert chain[:3] == ["ar-EG", "ar", "de"]
    assert messages.ui_locale(chain) == "ar"
    assert messages.from_accept_language(None) == ["en"]
    assert messages.from_accept_language("fr;q=zero") == ["en"]


# --- Headers ----------------------------------------------------------------------------


def _assert_link_headers(response: httpx.Response) -> None:
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "noindex" in response.headers["x-robots-tag"]
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "script-src" not in csp


async def test_every_answer_carries_the_link_headers(
    app: FastAPI, client: httpx.AsyncClient, org: Org, opened: Opened
) -> None:
    answered = opened.token("ana@example.com")
    fresh = opened.token("amira@example.com")
    responses = {
        "page": await client.get(f"/r/{answered}"),
        "json": await client.get(f"/v1/respond/{answered}"),
        "invalid form": await client.post(f"/r/{answered}", data={"enps": "12"}),
        "invalid json": await client.post(f"/v1/respond/{answered}", json={"answers": {}}),
        "unreadable json": await client.post(f"/v1/respond/{answered}", content=b"{"),
        "thanks": await client.post(f"/r/{answered}", data=form(VALID_ANSWERS)),
        "already (page)": await client.post(f"/r/{answered}", data={"enps": "1"}),
        "already (json)": await client.post(
            f"/v1/respond/{answered}", json={"answers": VALID_ANSWERS}
        ),
        "answered page": await client.get(f"/r/{answered}"),
        "unknown (page)": await client.get(f"/r/{UNKNOWN_TOKEN}"),
        "unknown (json)": await client.get(f"/v1/respond/{UNKNOWN_TOKEN}"),
    }
    await client.post(f"/v1/waves/{opened.wave_id}/close", headers=org.admin)
    responses["closed (page)"] = await client.get(f"/r/{fresh}")
    responses["closed (json)"] = await client.post(
        f"/v1/respond/{fresh}", json={"answers": VALID_ANSWERS}
    )
    app.state.link_limiter = FailedLookupLimiter(failures=1, per_seconds=600)
    await client.get(f"/r/{UNKNOWN_TOKEN}")
    responses["429 (page)"] = await client.get(f"/r/{UNKNOWN_TOKEN}")
    responses["429 (json)"] = await client.get(f"/v1/respond/{UNKNOWN_TOKEN}")

    statuses = {name: r.status_code for name, r in responses.items()}
    assert statuses == {
        "page": 200,
        "json": 200,
        "invalid form": 422,
        "invalid json": 422,
        "unreadable json": 422,
        "thanks": 200,
        "already (page)": 409,
        "already (json)": 409,
        "answered page": 200,
        "unknown (page)": 404,
        "unknown (json)": 404,
        "closed (page)": 410,
        "closed (json)": 410,
        "429 (page)": 429,
        "429 (json)": 429,
    }
    for name, response in responses.items():
        try:
            _assert_link_headers(response)
        except (AssertionError, KeyError) as exc:
            raise AssertionError(f"{name}: {exc!r} in {dict(response.headers)}") from exc


async def test_head_answers_like_get_without_a_body_and_changes_nothing(
    client: httpx.AsyncClient, db: Database, opened: Opened
) -> None:
    """Mail gateways check links with HEAD; a 405 could get the link flagged as broken."""
    person = opened.people["ana@example.com"]

    head = await client.head(f"/r/{person.token}")
    again = await client.head(f"/r/{person.token}")
    unknown = await client.head(f"/r/{UNKNOWN_TOKEN}")
    get = await client.get(f"/r/{person.token}")

    assert (head.status_code, again.status_code, unknown.status_code) == (200, 200, 404)
    for response in (head, unknown):
        _assert_link_headers(response)
        assert response.headers["content-type"].startswith("text/html")
        assert response.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    # Still unanswered: the page a GET shows afterwards is the survey, not the thanks.
    assert parse_html(get.text).find_all("form")
    async with db.sessionmaker() as session:
        invitation = await session.get(Invitation, person.invitation_id)
        assert invitation is not None
        assert invitation.answered is False


async def test_the_style_sheet_is_the_one_the_policy_allows(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    for path, status in ((f"/r/{opened.token('ana@example.com')}", 200), ("/r/nope", 404)):
        response = await client.get(path)
        assert response.status_code == status
        (sheet,) = re.findall(r"<style>(.*?)</style>", response.text, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(sheet.encode()).digest()).decode()
        policy = response.headers["content-security-policy"]
        assert f"style-src 'sha256-{digest}'" in policy
        assert "form-action 'self'" in policy


# --- Errors, thanks ---------------------------------------------------------------------


async def test_invalid_form_comes_back_with_errors_beside_questions_and_answers_kept(
    client: httpx.AsyncClient, db: Database, opened: Opened
) -> None:
    answers = {**VALID_ANSWERS, "workload": "9"}
    answers.pop("enps")

    response = await client.post(f"/r/{opened.token('ana@example.com')}", data=form(answers))

    assert response.status_code == 422
    doc = parse_html(response.text)
    assert doc.find_all("title")[0].text.startswith("Error:")
    # Each error sits in its question's box, tied to the control for screen readers.
    enps_error = doc.by_id("err-enps")
    assert doc.by_id("q-enps").contains(enps_error)
    assert enps_error.text == "Error: Please answer this question."
    assert doc.by_id("q-enps").find_all("fieldset")[0].attrs["aria-describedby"] == "err-enps"
    assert doc.by_id("q-workload").contains(doc.by_id("err-workload"))
    assert "Choose a number from 1 to 5." in doc.by_id("err-workload").text
    assert not doc.find_all(id="err-comment")
    # A summary on top links to each question.
    summary_links = [a.attrs["href"] for a in doc.by_id("summary").find_all("a")]
    assert summary_links == ["#q-enps", "#q-workload"]
    # The other answers are still there.
    checked = {
        (e.attrs["name"], e.attrs["value"]) for e in doc.find_all("input") if "checked" in e.attrs
    }
    assert checked == {("remote", "yes"), ("office", "paris"), ("perks", "gym"), ("perks", "train")}
    assert doc.by_id("a-comment").text == VALID_ANSWERS["comment"]


async def test_invalid_arabic_form_says_so_in_arabic(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    response = await client.post(f"/r/{opened.token('amira@example.com')}", data={"workload": "3"})

    doc = parse_html(response.text)
    assert response.status_code == 422
    assert _html(doc).attrs["dir"] == "rtl"
    assert "يرجى الإجابة عن هذا السؤال." in doc.by_id("err-enps").text
    assert "checked" in doc.by_id("a-workload-3").attrs


async def test_submitting_shows_thanks_and_the_link_then_shows_it_was_used(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    token = opened.token("ana@example.com")

    thanks = await client.post(f"/r/{token}", data=form(VALID_ANSWERS))
    again = await client.post(f"/r/{token}", data=form(VALID_ANSWERS))
    later = await client.get(f"/r/{token}")

    assert thanks.status_code == 200
    assert parse_html(thanks.text).find_all("h1")[0].text == "Thank you"
    assert "Your answers have been recorded." in thanks.text
    assert "This survey is anonymous" in thanks.text
    assert again.status_code == 409
    assert parse_html(again.text).find_all("h1")[0].text == "Already answered"
    assert later.status_code == 200
    assert "You have already answered this survey" in later.text
    assert not parse_html(later.text).find_all("form")


async def test_arabic_thanks_page(client: httpx.AsyncClient, opened: Opened) -> None:
    thanks = await client.post(
        f"/r/{opened.token('amira@example.com')}", data={"enps": "7", "workload": "2"}
    )

    doc = parse_html(thanks.text)
    assert thanks.status_code == 200
    assert (_html(doc).attrs["dir"], doc.find_all("h1")[0].text) == ("rtl", "شكرًا لك")


@pytest.mark.parametrize(
    "token", ["", "short", "with/slash", "%00", "line%0Abreak", "x%0A/y", "x" * 300, UNKNOWN_TOKEN]
)
async def test_unknown_and_malformed_links_get_the_same_404_page(
    client: httpx.AsyncClient, opened: Opened, token: str
) -> None:
    reference = await client.get(f"/r/{UNKNOWN_TOKEN}")

    got = await client.get(f"/r/{token}")
    posted = await client.post(f"/r/{token}", data={"enps": "9"})

    assert (got.status_code, posted.status_code) == (404, 404)
    assert got.text == posted.text == reference.text
    assert parse_html(got.text).find_all("h1")[0].text == "This link does not work"


async def test_404_page_speaks_the_browser_language(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/r/{UNKNOWN_TOKEN}", headers={"Accept-Language": "ar,en;q=0.5"})

    doc = parse_html(response.text)
    assert response.status_code == 404
    assert (_html(doc).attrs["dir"], doc.find_all("h1")[0].text) == ("rtl", "هذا الرابط لا يعمل")


async def test_closed_wave_page_is_410_and_says_when_it_closed(
    client: httpx.AsyncClient, org: Org, opened: Opened
) -> None:
    closed = await client.post(f"/v1/waves/{opened.wave_id}/close", headers=org.admin)
    closed_at = closed.json()["closed_at"]

    english = await client.get(f"/r/{opened.token('ana@example.com')}")
    arabic = await client.post(f"/r/{opened.token('amira@example.com')}", data={"enps": "9"})

    assert (english.status_code, arabic.status_code) == (410, 410)
    doc = parse_html(english.text)
    assert doc.find_all("h1")[0].text == "This survey has closed"
    (when,) = doc.find_all("time")
    assert when.attrs["datetime"][:19] == closed_at[:19]
    assert "(Europe/Paris)" in when.text  # in the employee's own time zone
    assert "It closed on" in doc.text
    assert "تم إغلاق هذا الاستبيان" in arabic.text
    assert not doc.find_all("form")


async def test_a_form_that_does_not_parse_gets_a_page_not_a_crash(
    client: httpx.AsyncClient, opened: Opened
) -> None:
    response = await client.post(
        f"/r/{opened.token('ana@example.com')}",
        content=b"--x\r\nbroken",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )

    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"


async def test_element_ids_are_unique(client: httpx.AsyncClient, opened: Opened) -> None:
    doc = await _page(client, f"/r/{opened.token('ana@example.com')}")

    ids = [e.attrs["id"] for e in doc.iter() if "id" in e.attrs]
    assert len(ids) == len(set(ids))


async def test_what_was_typed_comes_back_escaped(client: httpx.AsyncClient, opened: Opened) -> None:
    typed = '</textarea><script>alert("x")</script>'

    response = await client.post(
        f"/r/{opened.token('ana@example.com')}", data={"workload": "3", "comment": typed}
    )

    assert response.status_code == 422
    assert "<script>" not in response.text
    assert parse_html(response.text).by_id("a-comment").text == typed
