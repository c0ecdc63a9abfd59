"""A real SMTP server for the delivery tests: aiosmtpd on a free port, in its own thread.

The test steers it between sends: answer RCPT or DATA with a 4xx or 5xx, drop the
connection, fail every n-th message, or stop listening and come back on the same port.
What it accepted is kept as raw bytes and parsed the way a mail client would, so the
tests check the message the recipient gets, not the object we built."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from functools import cached_property
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.live import free_port

# A reply that is not a reply: the server closes the connection without answering.
DROP = "DROP"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

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


class Handler:
    """aiosmtpd hooks; they run on the server's thread, so shared state sits behind a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.policy = Policy()
        self.received: list[Received] = []
        self.data_commands = 0
        self.logins: list[tuple[str, str]] = []
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
                Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(content))
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

    def __init__(self, *, smtputf8: bool = False, login: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        self.handler = Handler()
        self.smtputf8 = smtputf8
        self.login = login
        self._controller: Controller | None = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        given = (data.login.decode(), data.password.decode())
        with self.handler.lock:
            self.handler.logins.append(given)
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
        auth: dict[str, Any] = {}
        if self.login is not None:
            # Plain-text AUTH is fine on loopback; a real server would insist on TLS.
            auth = {"authenticator": self._authenticate, "auth_require_tls": False}
        controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            enable_SMTPUTF8=self.smtputf8,
            ready_timeout=10,
            **auth,
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
    *, smtputf8: bool = False, login: tuple[str, str] | None = None
) -> Iterator[SmtpServer]:
    server = SmtpServer(smtputf8=smtputf8, login=login)
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
