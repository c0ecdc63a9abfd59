"""Backends chosen by PULSE_EMAIL_URL: parsing the URL, .eml files, the console, and the
SMTP outcomes that depend on what the server supports (SMTPUTF8, STARTTLS, AUTH)."""

from __future__ import annotations

import email
import email.policy
import uuid
from pathlib import Path

import pytest

from app.core.db import Database
from app.notifications import outbox
from app.notifications.backends import (
    CLEARTEXT_REFUSED,
    ConsoleBackend,
    FileBackend,
    SMTPBackend,
    backend_from_url,
    is_loopback,
)
from app.notifications.sender import deliver_outbox
from tests.conftest import Org, make_settings
from tests.notifications import support
from tests.notifications.conftest import smtp_settings_for
from tests.notifications.smtp import Certificate, running_smtp_server, silent_server


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "starttls", "user", "password"),
    [
        # plain smtp:// upgrades when the server offers STARTTLS (None: "if offered")
        ("smtp://mail.example.com", "mail.example.com", 25, False, None, None, None),
        ("smtp://127.0.0.1:2525", "127.0.0.1", 2525, False, None, None, None),
        ("smtp://u:p@mail.example.com:587", "mail.example.com", 587, False, None, "u", "p"),
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
    starttls: bool | None,
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
    # Admins read this reply through the API: the name, never the server's folders.
    assert written.last_reply == f"written to {eml.name}"


async def queue_to(db: Database, org_id: uuid.UUID, key: str, to: str, name: str = "") -> None:
    async with db.sessionmaker() as session, session.begin():
        await outbox.enqueue(
            session,
            organization_id=org_id,
            dedupe_key=key,
            kind="test",
            recipient=to,
            recipient_name=name,
            locale="en",
        )


def only_file(folder: Path) -> bytes:
    (eml,) = folder.iterdir()
    return eml.read_bytes()


def to_line(eml: bytes) -> str:
    """The To header as written (one line: the addresses here are short)."""
    (line,) = [raw for raw in eml.decode("utf-8").splitlines() if raw.startswith("To: ")]
    return line


NAME = "ليلى"


@pytest.mark.parametrize(
    ("to", "written", "header"),
    [
        # RFC 6532: a non-ASCII mailbox is written as UTF-8, as an SMTPUTF8 server gets it
        ("نور@example.com", "نور@example.com", f"To: {NAME} <نور@example.com>"),
        ("نور@bücher.example", "نور@bücher.example", f"To: {NAME} <نور@bücher.example>"),
        # an ASCII mailbox at an internationalised domain: IDNA A-labels, an ASCII header
        (
            "lena@bücher.example",
            "lena@xn--bcher-kva.example",
            "To: =?utf-8?b?2YTZitmE2Yk=?= <lena@xn--bcher-kva.example>",
        ),
        (  # IDNA 2008, as the address was validated: ß stays (IDNA 2003 made it "ss")
            "lena@straße.example",
            "lena@xn--strae-oqa.example",
            "To: =?utf-8?b?2YTZitmE2Yk=?= <lena@xn--strae-oqa.example>",
        ),
    ],
)
async def test_file_backend_writes_a_valid_to_header_for_an_internationalised_address(
    db: Database, org: Org, tmp_path: Path, to: str, written: str, header: str
) -> None:
    settings = make_settings("sqlite:///unused.db", email_url=tmp_path.as_uri())
    await queue_to(db, org.id, "idn", to, name=NAME)

    await deliver_outbox(db, settings)

    data = only_file(tmp_path)
    assert to_line(data) == header
    # A reader of RFC 6532 messages gets the address back whole.
    msg = email.message_from_string(data.decode("utf-8"), policy=email.policy.default)
    (address,) = msg["To"].addresses
    assert (address.display_name, address.addr_spec) == (NAME, written)
    assert (await support.row(db, "idn")).status == "sent"


async def test_console_backend_prints_an_internationalised_address_whole(
    db: Database, org: Org, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings("sqlite:///unused.db", email_url="console://")
    await queue_to(db, org.id, "idn-console", "نور@example.com")

    await deliver_outbox(db, settings)

    assert "\nTo: نور@example.com\n" in capsys.readouterr().out


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


async def test_ascii_mailbox_at_an_internationalised_domain_needs_no_smtputf8(
    db: Database, org: Org, database_url: str
) -> None:
    with running_smtp_server(smtputf8=False) as server:
        settings = smtp_settings_for(database_url, server)
        await queue_to(db, org.id, "idn-domain", "lena@bücher.example")

        await deliver_outbox(db, settings)

        (got,) = server.received
    assert got.rcpt_tos == ["lena@xn--bcher-kva.example"]
    assert got.message["To"].addresses[0].addr_spec == "lena@xn--bcher-kva.example"
    assert (await support.row(db, "idn-domain")).status == "sent"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LocalHost.", True),
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("mail.example.com", False),
        ("localhost.example.com", False),
        ("10.0.0.25", False),
        ("0.0.0.0", False),
    ],
)
def test_only_loopback_hosts_may_take_a_password_in_clear(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("remote", [False, True], ids=["loopback", "remote"])
async def test_plain_smtp_url_upgrades_to_starttls_when_the_server_offers_it(
    db: Database,
    org: Org,
    database_url: str,
    certificate: Certificate,
    request: pytest.FixtureRequest,
    remote: bool,
) -> None:
    """No password goes with these messages, so the self-signed certificate is taken
    as it is: checking it would stop the mail, not an attacker (who could as well strip
    the STARTTLS offer), and a passive listener is kept out either way."""
    host = request.getfixturevalue("remote_host") if remote else "127.0.0.1"
    with running_smtp_server(certificate=certificate) as server:
        settings = make_settings(database_url, email_url=f"smtp://{host}:{server.port}")
        await support.queue(db, org.id, ["upgraded"])

        await deliver_outbox(db, settings)

        (got,) = server.received
    assert got.tls, "sent in clear although the server offered STARTTLS"
    assert got.rcpt_tos == [support.recipient("upgraded")]
    assert (await support.row(db, "upgraded")).status == "sent"


async def test_password_goes_to_a_remote_server_only_after_starttls(
    db: Database,
    org: Org,
    database_url: str,
    remote_host: str,
    trusted_certificate: Certificate,
) -> None:
    with running_smtp_server(login=("pulse", "s3cret"), certificate=trusted_certificate) as server:
        url = f"smtp://pulse:s3cret@{remote_host}:{server.port}"
        settings = make_settings(database_url, email_url=url)
        await support.queue(db, org.id, ["over-tls"])

        await deliver_outbox(db, settings)

        assert server.handler.logins == [("pulse", "s3cret")]
        assert server.handler.logins_over_tls == [True]
        (got,) = server.received
    assert got.tls
    assert (await support.row(db, "over-tls")).status == "sent"


async def test_password_is_not_sent_in_clear_to_a_remote_server_without_starttls(
    db: Database, org: Org, database_url: str, remote_host: str
) -> None:
    keys = support.keys("cleartext", 3)
    # This server would take the password in clear; a man in the middle who removed the
    # STARTTLS offer looks just like it.
    with running_smtp_server(login=("pulse", "s3cret")) as server:
        url = f"smtp://pulse:s3cret@{remote_host}:{server.port}"
        settings = make_settings(database_url, email_url=url)
        await support.queue(db, org.id, keys)

        assert await deliver_outbox(db, settings) == 3

        assert server.handler.logins == [], "the password went out in clear"
        assert server.received == []
    for m in (await support.rows(db)).values():
        assert (m.status, m.attempts) == ("pending", 1), "the settings need fixing, not the mail"
        assert m.last_reply == CLEARTEXT_REFUSED


async def test_password_is_not_given_to_a_remote_server_with_an_untrusted_certificate(
    db: Database, org: Org, database_url: str, remote_host: str, certificate: Certificate
) -> None:
    with running_smtp_server(login=("pulse", "s3cret"), certificate=certificate) as server:
        url = f"smtp://pulse:s3cret@{remote_host}:{server.port}"
        settings = make_settings(database_url, email_url=url)
        await support.queue(db, org.id, ["impostor"])

        await deliver_outbox(db, settings)

        assert server.handler.logins == []
        assert server.received == []
    refused = await support.row(db, "impostor")
    assert (refused.status, refused.attempts) == ("pending", 1)
    assert refused.last_reply is not None
    assert "certificate verify failed" in refused.last_reply


async def test_credentials_in_the_url_log_in_to_the_server(
    db: Database, org: Org, database_url: str
) -> None:
    """A loopback relay may take the password without TLS: it never leaves the machine."""
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
