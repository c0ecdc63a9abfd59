"""Backends chosen by PULSE_EMAIL_URL: parsing the URL, .eml files, the console, and the
SMTP outcomes that depend on what the server supports."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from app.core.db import Database
from app.notifications.backends import (
    ConsoleBackend,
    FileBackend,
    SMTPBackend,
    backend_from_url,
)
from app.notifications.sender import deliver_outbox
from tests.conftest import Org, make_settings
from tests.notifications import support
from tests.notifications.conftest import smtp_settings_for
from tests.notifications.smtp import running_smtp_server, silent_server


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "starttls", "user", "password"),
    [
        ("smtp://mail.example.com", "mail.example.com", 25, False, False, None, None),
        ("smtp://127.0.0.1:2525", "127.0.0.1", 2525, False, False, None, None),
        ("smtp+ssl://u:p@smtp.example.com", "smtp.example.com", 465, True, False, "u", "p"),
        ("smtp+ssl://smtp.example.com:2465", "smtp.example.com", 2465, True, False, None, None),
        (
            "smtp+starttls://apikey:s%40cr%2Ft%3A1@smtp.example.com",
            "smtp.example.com",
            587,
            False,
            True,
            "apikey",
            "s@cr/t:1",
        ),
        (
            "smtp+starttls://lena%40example.com:pw@mx.example.com:2587",
            "mx.example.com",
            2587,
            False,
            True,
            "lena@example.com",
            "pw",
        ),
    ],
)
def test_smtp_url_gives_host_port_security_and_credentials(
    url: str,
    host: str,
    port: int,
    tls: bool,
    starttls: bool,
    user: str | None,
    password: str | None,
) -> None:
    backend = backend_from_url(url, timeout=7)
    assert isinstance(backend, SMTPBackend)
    assert (backend.hostname, backend.port) == (host, port)
    assert (backend.use_tls, backend.start_tls) == (tls, starttls)
    assert (backend.username, backend.password) == (user, password)
    assert backend.timeout == 7


def test_file_url_names_the_folder_and_console_url_prints() -> None:
    backend = backend_from_url("file:///var/spool/pulse%20mail")
    assert isinstance(backend, FileBackend)
    assert backend.folder == Path("/var/spool/pulse mail")
    assert isinstance(backend_from_url("console://"), ConsoleBackend)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="gopher"):
        backend_from_url("gopher://mail.example.com")


async def test_file_backend_writes_an_eml_any_mail_reader_can_parse(
    db: Database, org: Org, tmp_path: Path
) -> None:
    folder = tmp_path / "pulse mail"
    settings = make_settings("sqlite:///unused.db", email_url=folder.as_uri())
    await support.queue(db, org.id, ["to-file"], locale="ar", name="ليلى")

    assert await deliver_outbox(db, settings) == 1

    (eml,) = folder.iterdir()
    assert eml.suffix == ".eml"
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert msg["Message-ID"] == support.expected_id("to-file", settings)
    assert msg["Subject"] == "رسالة تجريبية من Pulse إلى Acme"
    assert msg["To"].addresses[0].addr_spec == support.recipient("to-file")
    body = msg.get_body(("plain",))
    assert body is not None
    assert "ليلى" in body.get_content()
    written = await support.row(db, "to-file")
    assert written.status == "sent"
    assert written.last_reply == f"written to {eml}"


async def test_console_backend_prints_the_message(
    db: Database, org: Org, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings("sqlite:///unused.db", email_url="console://")
    await support.queue(db, org.id, ["to-console"])

    await deliver_outbox(db, settings)

    out = capsys.readouterr().out
    assert "Subject: Pulse test message for Acme" in out
    assert f"Message-ID: {support.expected_id('to-console', settings)}" in out
    assert (await support.row(db, "to-console")).status == "sent"


async def test_internationalised_address_fails_at_once_on_a_server_without_smtputf8(
    db: Database, org: Org, database_url: str
) -> None:
    with running_smtp_server(smtputf8=False) as server:
        settings = smtp_settings_for(database_url, server)
        await support.queue(db, org.id, ["نور"])

        await deliver_outbox(db, settings)

    refused = await support.row(db, "نور")
    assert (refused.status, refused.attempts) == ("failed", 1)
    assert refused.last_reply is not None
    assert "SMTPUTF8" in refused.last_reply


async def test_internationalised_address_is_delivered_by_a_server_with_smtputf8(
    db: Database, org: Org, database_url: str
) -> None:
    with running_smtp_server(smtputf8=True) as server:
        settings = smtp_settings_for(database_url, server)
        await support.queue(db, org.id, ["نور"])

        await deliver_outbox(db, settings)

        (got,) = server.received
    assert got.rcpt_tos == ["نور@example.com"]
    # RFC 6532: the header carries the address as raw UTF-8 (the stdlib parser would
    # hand it back as surrogate escapes, so look at the bytes).
    assert "\r\nTo: نور@example.com\r\n".encode() in got.data
    assert (await support.row(db, "نور")).status == "sent"


async def test_credentials_in_the_url_log_in_to_the_server(
    db: Database, org: Org, database_url: str
) -> None:
    with running_smtp_server(login=("pulse@example.com", "s3cr:t/")) as server:
        url = f"smtp://pulse%40example.com:s3cr%3At%2F@127.0.0.1:{server.port}"
        settings = make_settings(database_url, email_url=url)
        await support.queue(db, org.id, ["authenticated"])

        await deliver_outbox(db, settings)

        assert set(server.handler.logins) == {("pulse@example.com", "s3cr:t/")}
        assert [r.rcpt_tos for r in server.received] == [[support.recipient("authenticated")]]
    assert (await support.row(db, "authenticated")).status == "sent"


async def test_refused_login_defers_the_batch_instead_of_failing_it(
    db: Database, org: Org, database_url: str
) -> None:
    keys = support.keys("bad-password", 4)
    with running_smtp_server(login=("pulse", "right")) as server:
        url = f"smtp://pulse:wrong@127.0.0.1:{server.port}"
        settings = make_settings(database_url, email_url=url)
        await support.queue(db, org.id, keys)

        assert await deliver_outbox(db, settings) == 4

        assert len(server.handler.login_peers) == 1, "one refused login is enough per batch"
        assert server.received == []
    for m in (await support.rows(db)).values():
        assert (m.status, m.attempts) == ("pending", 1)
        assert m.last_reply is not None
        assert m.last_reply.startswith("535")


async def test_server_that_never_greets_costs_one_timeout_per_batch(
    db: Database, org: Org, database_url: str
) -> None:
    keys = support.keys("silent", 5)
    with silent_server() as server:
        settings = make_settings(database_url, email_url=server.url, email_timeout_seconds=0.3)
        await support.queue(db, org.id, keys)

        assert await deliver_outbox(db, settings) == 5

        assert len(server.connections) == 1
    for m in (await support.rows(db)).values():
        assert (m.status, m.attempts) == ("pending", 1)
        assert m.last_reply is not None
        assert "Timeout" in m.last_reply
