"""/v1/deliveries: what was sent and what failed (with the server's reply), retrying a
failed email, queueing a test email; admin keys only, one organization's mail only; and
an anonymous survey's reminders, which must not tell HR who has not answered."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.core.db import Database
from app.notifications.sender import deliver_outbox
from app.surveys import waves
from app.surveys.models import Wave
from tests.conftest import Org
from tests.core.problems import assert_problem
from tests.notifications.conftest import smtp_settings_for
from tests.notifications.smtp import SmtpServer

REFUSAL = "550 5.1.1 <bounce@example.com>: mailbox unavailable"


async def queue_test_email(client: httpx.AsyncClient, org: Org, to: str, **extra: Any) -> Any:
    response = await client.post("/v1/deliveries/test", json={"to": to, **extra}, headers=org.admin)
    assert response.status_code == 201, response.text
    return response.json()


async def failed_delivery(
    client: httpx.AsyncClient, db: Database, org: Org, smtp: SmtpServer, settings: Settings
) -> Any:
    """Queue a test email to an address the server refuses, and send it."""
    smtp.policy.rcpt["bounce@example.com"] = REFUSAL
    queued = await queue_test_email(client, org, "bounce@example.com")
    await deliver_outbox(db, settings)
    return queued


async def test_test_email_is_queued_then_delivered(
    client: httpx.AsyncClient, db: Database, org: Org, smtp: SmtpServer, smtp_settings: Settings
) -> None:
    queued = await queue_test_email(client, org, "hr@example.com", name="ليلى حداد", locale="ar")

    assert queued["status"] == "pending"
    assert (queued["kind"], queued["recipient"], queued["attempts"]) == (
        "test",
        "hr@example.com",
        0,
    )
    assert not {"subject", "body", "text", "html"} & queued.keys()
    assert smtp.received == [], "nothing is sent inside the request"

    await deliver_outbox(db, smtp_settings)

    (got,) = smtp.received
    assert got.rcpt_tos == ["hr@example.com"]
    assert got.message["Subject"] == "رسالة تجريبية من Pulse إلى Acme"
    read = await client.get(f"/v1/deliveries/{queued['id']}", headers=org.admin)
    assert read.status_code == 200
    assert read.json()["status"] == "sent"
    assert read.json()["sent_at"] is not None
    assert read.json()["last_reply"].startswith("250")


async def test_test_email_to_an_invalid_address_is_unprocessable(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.post(
        "/v1/deliveries/test", json={"to": "not an address"}, headers=org.admin
    )
    assert_problem(response, 422)


async def test_failed_deliveries_are_listed_with_recipient_and_server_reply(
    client: httpx.AsyncClient, db: Database, org: Org, smtp: SmtpServer, smtp_settings: Settings
) -> None:
    failed = await failed_delivery(client, db, org, smtp, smtp_settings)
    sent = await queue_test_email(client, org, "fine@example.com")
    await deliver_outbox(db, smtp_settings)

    response = await client.get("/v1/deliveries?status=failed", headers=org.admin)

    assert response.status_code == 200
    (item,) = response.json()["items"]
    assert item["id"] == failed["id"]
    assert item["recipient"] == "bounce@example.com"
    assert item["status"] == "failed"
    assert item["last_reply"] == REFUSAL
    assert item["attempts"] == 1
    everything = await client.get("/v1/deliveries", headers=org.admin)
    assert [i["id"] for i in everything.json()["items"]] == [failed["id"], sent["id"]]
    only_sent = await client.get("/v1/deliveries?status=sent", headers=org.admin)
    assert [i["id"] for i in only_sent.json()["items"]] == [sent["id"]]


async def test_deliveries_list_pages_with_a_cursor(client: httpx.AsyncClient, org: Org) -> None:
    ids = [(await queue_test_email(client, org, f"p{i}@example.com"))["id"] for i in range(3)]

    first = (await client.get("/v1/deliveries?limit=2", headers=org.admin)).json()
    second = (
        await client.get(f"/v1/deliveries?limit=2&cursor={first['next_cursor']}", headers=org.admin)
    ).json()

    assert [i["id"] for i in first["items"] + second["items"]] == ids
    assert second["next_cursor"] is None


async def test_unknown_status_filter_is_unprocessable(client: httpx.AsyncClient, org: Org) -> None:
    assert_problem(await client.get("/v1/deliveries?status=lost", headers=org.admin), 422)


async def test_another_organizations_deliveries_are_invisible(
    client: httpx.AsyncClient,
    db: Database,
    org: Org,
    other_org: Org,
    smtp: SmtpServer,
    smtp_settings: Settings,
) -> None:
    failed = await failed_delivery(client, db, org, smtp, smtp_settings)

    listed = await client.get("/v1/deliveries?status=failed", headers=other_org.admin)
    assert listed.status_code == 200
    assert listed.json()["items"] == []
    assert (await client.get("/v1/deliveries", headers=other_org.admin)).json()["items"] == []
    assert_problem(await client.get(f"/v1/deliveries/{failed['id']}", headers=other_org.admin), 404)
    assert_problem(
        await client.post(f"/v1/deliveries/{failed['id']}/retry", headers=other_org.admin), 404
    )
    still = await client.get(f"/v1/deliveries/{failed['id']}", headers=org.admin)
    assert still.json()["status"] == "failed", "the other organization's retry did nothing"


async def test_unknown_delivery_is_not_found(client: httpx.AsyncClient, org: Org) -> None:
    missing = uuid.uuid4()
    assert_problem(await client.get(f"/v1/deliveries/{missing}", headers=org.admin), 404)
    assert_problem(await client.post(f"/v1/deliveries/{missing}/retry", headers=org.admin), 404)


async def test_retried_failed_delivery_is_pending_then_delivered(
    client: httpx.AsyncClient, db: Database, org: Org, smtp: SmtpServer, smtp_settings: Settings
) -> None:
    failed = await failed_delivery(client, db, org, smtp, smtp_settings)
    smtp.policy.rcpt.clear()  # the mailbox exists again

    response = await client.post(f"/v1/deliveries/{failed['id']}/retry", headers=org.admin)

    assert response.status_code == 200, response.text
    retried = response.json()
    assert (retried["status"], retried["attempts"]) == ("pending", 0)
    assert retried["last_reply"] == REFUSAL, "the reason stays until the next outcome"
    await deliver_outbox(db, smtp_settings)
    delivered = (await client.get(f"/v1/deliveries/{failed['id']}", headers=org.admin)).json()
    assert (delivered["status"], delivered["attempts"]) == ("sent", 1)
    assert [r.rcpt_tos for r in smtp.received] == [["bounce@example.com"]]


async def test_retrying_a_delivery_that_has_not_failed_is_a_conflict(
    client: httpx.AsyncClient, db: Database, org: Org, smtp: SmtpServer, smtp_settings: Settings
) -> None:
    queued = await queue_test_email(client, org, "hr@example.com")
    pending = await client.post(f"/v1/deliveries/{queued['id']}/retry", headers=org.admin)
    assert assert_problem(pending, 409)["code"] == "not_failed"

    await deliver_outbox(db, smtp_settings)
    sent = await client.post(f"/v1/deliveries/{queued['id']}/retry", headers=org.admin)
    assert_problem(sent, 409)
    assert len(smtp.received) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/deliveries"),
        ("GET", "/v1/deliveries?status=failed"),
        ("GET", "/v1/deliveries/{id}"),
        ("POST", "/v1/deliveries/{id}/retry"),
        ("POST", "/v1/deliveries/test"),
    ],
)
async def test_reports_key_is_forbidden_on_delivery_endpoints(
    client: httpx.AsyncClient, org: Org, method: str, path: str
) -> None:
    queued = await queue_test_email(client, org, "hr@example.com")
    response = await client.request(
        method,
        path.format(id=queued["id"]),
        json={"to": "hr@example.com"} if method == "POST" else None,
        headers=org.reports,
    )
    assert assert_problem(response, 403)["code"] == "insufficient_scope"


# --- an anonymous survey's reminders ---------------------------------------------------

BASE_URL = "https://pulse.example.com"
LINK = re.compile(re.escape(BASE_URL) + r"/r/([A-Za-z0-9_-]{43})")
# amira answers before the reminders are queued, bruno after his is queued, chen never
# (his reminder is sent), and dora's server refuses her reminder.
PEOPLE = ("amira.haddad", "bruno.keller", "chen.wei", "dora.lind")
DORA = "dora.lind@example.com"
DORA_REFUSAL = "550 5.1.1 <dora.lind@example.com>: Recipient address rejected: dora.lind unknown"


async def open_wave(client: httpx.AsyncClient, org: Org, *, anonymous: bool) -> str:
    """Four people, a survey with a reminder a day after opening, and a wave open now."""
    for local in PEOPLE:
        created = await client.post(
            "/v1/employees",
            json={"email": f"{local}@example.com", "name": local.replace(".", " ").title()},
            headers=org.admin,
        )
        assert created.status_code == 201, created.text
    survey = await client.post(
        "/v1/surveys",
        json={
            "name": "Monthly pulse",
            "status": "active",
            "anonymous": anonymous,
            "questions": [{"key": "enps", "kind": "enps"}],
            "window_hours": 48,
            "reminders_hours": [24],
        },
        headers=org.admin,
    )
    assert survey.status_code == 201, survey.text
    wave = await client.post(f"/v1/surveys/{survey.json()['id']}/waves", headers=org.admin)
    assert wave.status_code == 201, wave.text
    return str(wave.json()["id"])


async def answer(client: httpx.AsyncClient, token: str) -> None:
    response = await client.post(f"/v1/respond/{token}", json={"answers": {"enps": 9}})
    assert response.status_code == 201, response.text


async def a_day_later(db: Database, wave_id: str) -> None:
    """Move the wave a day into the past, so its reminder is due."""
    by = timedelta(hours=25)
    async with db.sessionmaker() as session, session.begin():
        wave = await session.get(Wave, uuid.UUID(wave_id))
        assert wave is not None
        wave.occurrence_at -= by
        wave.opens_at -= by
        wave.closes_at -= by


async def reminder_life(
    client: httpx.AsyncClient, db: Database, org: Org, smtp: SmtpServer, settings: Settings
) -> list[dict[str, Any]]:
    """Open a wave, mail its invitations, have amira answer, queue the reminders, have
    bruno answer, refuse dora's reminder, and send them; returns every JSON document the
    deliveries API gave an admin along the way (lists, single reads, a retry)."""
    wave_id = await open_wave(client, org, anonymous=True)
    assert await deliver_outbox(db, settings) == 4
    links = {}
    for got in smtp.received:
        body = got.message.get_body(("plain",))
        assert body is not None
        (links[got.rcpt_tos[0].split("@")[0]],) = LINK.findall(body.get_content())
    await answer(client, links["amira.haddad"])
    await a_day_later(db, wave_id)
    assert await waves.send_reminders(db, settings) == 3  # not to amira, who answered

    seen: list[dict[str, Any]] = []

    async def look(path: str, **params: str) -> list[dict[str, Any]]:
        response = await client.get(path, params=params, headers=org.admin)
        assert response.status_code == 200, response.text
        seen.append(response.json())
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    pending = await look("/v1/deliveries", kind="survey_reminder")
    assert [i["status"] for i in pending] == ["pending"] * 3
    await answer(client, links["bruno.keller"])
    smtp.policy.rcpt[DORA] = DORA_REFUSAL
    await deliver_outbox(db, settings)

    reminders = await look("/v1/deliveries", kind="survey_reminder")
    assert sorted(i["status"] for i in reminders) == ["cancelled", "failed", "sent"]
    await look("/v1/deliveries")
    await look("/v1/deliveries", limit="2")
    for status in ("pending", "sent", "failed", "cancelled"):
        await look("/v1/deliveries", status=status)
    for item in reminders:
        one = await client.get(f"/v1/deliveries/{item['id']}", headers=org.admin)
        seen.append(one.json())
    (failed,) = [i for i in reminders if i["status"] == "failed"]
    smtp.policy.rcpt.clear()
    retried = await client.post(f"/v1/deliveries/{failed['id']}/retry", headers=org.admin)
    assert retried.status_code == 200, retried.text
    seen.append(retried.json())
    await deliver_outbox(db, settings)
    delivered = await client.get(f"/v1/deliveries/{failed['id']}", headers=org.admin)
    assert delivered.json()["status"] == "sent"
    seen.append(delivered.json())
    return seen


def items_of(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for d in documents for item in d.get("items", [d])]


async def test_deliveries_never_name_who_an_anonymous_surveys_reminders_went_to(
    client: httpx.AsyncClient, db: Database, org: Org, smtp: SmtpServer, database_url: str
) -> None:
    """Reminders go only to those who have not answered, and one is cancelled when its
    invitee answers: an address on any of them, the invitation it is about, a server
    reply quoting it or a telling reason would list who did not answer."""
    settings = smtp_settings_for(database_url, smtp, public_base_url=BASE_URL)

    seen = await reminder_life(client, db, org, smtp, settings)

    reminders = [i for i in items_of(seen) if i["kind"] == "survey_reminder"]
    assert len(reminders) > 10
    for item in reminders:
        assert (item["recipient"], item["recipient_hidden"], item["about_id"]) == (None, True, None)
        shown = json.dumps(item, ensure_ascii=False).lower()
        for local in PEOPLE:
            assert local not in shown, f"{local} in {shown}"
    replies = {i["status"]: i["last_reply"] for i in reminders if i["status"] != "pending"}
    assert replies["cancelled"] == "not sent: no longer needed"
    assert replies["failed"] == "550 5.1.1 <[hidden]>: Recipient address rejected: [hidden] unknown"
    assert replies["sent"].startswith("250")
    # The retried reminder went out, to dora, though the admin never saw her address.
    assert [r.rcpt_tos for r in smtp.received].count([DORA]) == 2  # invitation, reminder


async def test_anonymous_surveys_invitations_stay_fully_visible(
    client: httpx.AsyncClient, db: Database, org: Org, smtp: SmtpServer, database_url: str
) -> None:
    """Everyone in the audience gets an invitation, so its address tells nothing, and a
    failed one must be found and retried."""
    settings = smtp_settings_for(database_url, smtp, public_base_url=BASE_URL)
    await open_wave(client, org, anonymous=True)
    smtp.policy.rcpt[DORA] = DORA_REFUSAL
    await deliver_outbox(db, settings)

    listed = await client.get("/v1/deliveries", params={"status": "failed"}, headers=org.admin)

    (failed,) = listed.json()["items"]
    assert failed["kind"] == "survey_invitation"
    assert (failed["recipient"], failed["recipient_hidden"]) == (DORA, False)
    assert failed["about_id"] is not None
    assert failed["last_reply"] == DORA_REFUSAL
    invitations = await client.get(
        "/v1/deliveries", params={"kind": "survey_invitation"}, headers=org.admin
    )
    assert sorted(i["recipient"] for i in invitations.json()["items"]) == [
        f"{local}@example.com" for local in PEOPLE
    ]
    smtp.policy.rcpt.clear()
    retried = await client.post(f"/v1/deliveries/{failed['id']}/retry", headers=org.admin)
    assert (retried.json()["status"], retried.json()["recipient"]) == ("pending", DORA)


async def test_an_attributed_surveys_reminders_keep_their_recipient(
    client: httpx.AsyncClient, db: Database, org: Org, smtp: SmtpServer, database_url: str
) -> None:
    """HR sees who answered an attributed survey anyway; hiding would only hinder."""
    settings = smtp_settings_for(database_url, smtp, public_base_url=BASE_URL)
    wave_id = await open_wave(client, org, anonymous=False)
    await deliver_outbox(db, settings)
    await a_day_later(db, wave_id)
    assert await waves.send_reminders(db, settings) == 4

    listed = await client.get(
        "/v1/deliveries", params={"kind": "survey_reminder"}, headers=org.admin
    )

    items = listed.json()["items"]
    assert sorted(i["recipient"] for i in items) == [f"{local}@example.com" for local in PEOPLE]
    assert {i["recipient_hidden"] for i in items} == {False}
    assert all(i["about_id"] is not None for i in items)
