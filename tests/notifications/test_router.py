"""/v1/deliveries: what was sent and what failed (with the server's reply), retrying a
failed email, queueing a test email; admin keys only, one organization's mail only."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.core.db import Database
from app.notifications.sender import deliver_outbox
from tests.conftest import Org
from tests.core.problems import assert_problem
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
