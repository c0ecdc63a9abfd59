"""A real SMTP server for the delivery tests: aiosmtpd on a free port, in its own thread.

The test steers it between sends: answer RCPT or DATA with a 4xx or 5xx, drop the
connection, fail every n-th message, or stop listening and come back on the same port.
What it accepted is kept as raw bytes and parsed the way a mail client would, so the
tests check the message the recipient gets, not the object we built. Given a
certificate it offers STARTTLS, and then, like a real server, takes a password only
over TLS."""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.live import free_port

# A reply that is not a reply: the server closes the connection without answering.
DROP = "DROP"


@dataclass(frozen=True)
class Certificate:
    """A self-signed server certificate and its key, as PEM files."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def self_signed_certificate(folder: Path, hostname: str) -> Certificate:
    """A certificate for ``hostname`` and 127.0.0.1 (openssl, as no Python package of
    ours makes certificates); skips the test where openssl is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={hostname}",
            "-addext",
            f"subjectAltName=DNS:{hostname},IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    # whether the message came over a session upgraded by STARTTLS
    tls: bool = False

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @cached_property
    def message_id(self) -> str:
        """From the headers alone: counting a thousand messages must not parse bodies."""
        headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(self.data)
        return str(headers["Message-ID"])


@dataclass
class Policy:
    """How the server answers; the test changes it while the server runs."""

    # recipient address (lower case) -> reply to its RCPT command, or DROP
    rcpt: dict[str, str] = field(default_factory=dict)
    # replies to the next DATA commands, one each, then 250 again
    data: deque[str] = field(default_factory=deque)
    # answer every n-th DATA with ``flaky_reply`` (0: never)
    flaky_every: int = 0
    flaky_reply: str = "451 4.3.0 flaky test server, try again later"
    # seconds the server takes over each DATA before answering (a slow relay)
    data_delay: float = 0.0


class Handler:
    """aiosmtpd hooks; they run on the server's thread, so shared state sits behind a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.policy = Policy()
        self.received: list[Received] = []
        self.data_commands = 0
        self.logins: list[tuple[str, str]] = []
        # per login attempt: whether the session was encrypted when the password came
        self.logins_over_tls: list[bool] = []
        # one client address per connection that tried to log in
        self.login_peers: set[object] = set()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        with self.lock:
            reply = self.policy.rcpt.get(address.lower())
        if reply == DROP:
            return _drop(server)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            delay = self.policy.data_delay
        if delay:
            await asyncio.sleep(delay)
        with self.lock:
            self.data_commands += 1
            reply = self.policy.data.popleft() if self.policy.data else None
            every = self.policy.flaky_every
            if reply is None and every and self.data_commands % every == 0:
                reply = self.policy.flaky_reply
            if reply == DROP:
                return _drop(server)
            if reply is not None:
                return reply
            content = envelope.original_content or b""
            self.received.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    bytes(content),
                    tls=session.ssl is not None,
                )
            )
        return "250 2.0.0 queued"


def _drop(server: SMTP) -> str:
    """Abort the TCP connection; the reply that aiosmtpd then tries to write goes nowhere."""
    transport = server.transport
    assert isinstance(transport, asyncio.Transport)
    transport.abort()
    return "421 4.4.2 connection dropped by test server"


class SmtpServer:
    """One port for the whole test, so a stopped server comes back where the sender looks."""

    def __init__(
        self,
        *,
        smtputf8: bool = False,
        login: tuple[str, str] | None = None,
        certificate: Certificate | None = None,
    ) -> None:
        self.port = free_port()
        self.handler = Handler()
        self.smtputf8 = smtputf8
        self.login = login
        self.certificate = certificate
        self._controller: Controller | None = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        given = (data.login.decode(), data.password.decode())
        with self.handler.lock:
            self.handler.logins.append(given)
            self.handler.logins_over_tls.append(session.ssl is not None)
            self.handler.login_peers.add(session.peer)
        # handled=False: aiosmtpd writes the 235 or 535 itself
        return AuthResult(success=given == self.login, handled=False)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def policy(self) -> Policy:
        return self.handler.policy

    def start(self) -> None:
        assert self._controller is None, "already running"
        options: dict[str, Any] = {}
        if self.certificate is not None:
            options["tls_context"] = self.certificate.server_context()
        if self.login is not None:
            # Without a certificate, plain-text AUTH stands in for a loopback relay; with
            # one, AUTH is offered only after STARTTLS, as a real server does.
            options["authenticator"] = self._authenticate
            options["auth_require_tls"] = self.certificate is not None
        controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            enable_SMTPUTF8=self.smtputf8,
            ready_timeout=10,
            **options,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def counts(self) -> Counter[str]:
        """How many times each Message-ID arrived."""
        return Counter(r.message_id for r in self.received)

    def by_recipient(self) -> dict[str, Received]:
        return {r.rcpt_tos[0]: r for r in self.received}


@contextmanager
def running_smtp_server(
    *,
    smtputf8: bool = False,
    login: tuple[str, str] | None = None,
    certificate: Certificate | None = None,
) -> Iterator[SmtpServer]:
    server = SmtpServer(smtputf8=smtputf8, login=login, certificate=certificate)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class SilentServer:
    """Accepts TCP connections and never says a word, like a mail host behind a broken
    proxy: every client waits for a greeting until its timeout."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed: the test is over
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


@contextmanager
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    server._thread.start()
    try:
        yield server
    finally:
        server.close()
