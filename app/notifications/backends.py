"""Delivery backends chosen by ``PULSE_EMAIL_URL``: SMTP (aiosmtplib), ``.eml`` files, console.

A backend opens one connection per batch; ``send`` answers an outcome rather than
raising, so the sender can record each message and go on with the next."""

from __future__ import annotations

import email.policy
import ipaddress
import logging
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

log = logging.getLogger("pulse.email")

# "cancelled": not sent on purpose (the reminder's recipient answered meanwhile, the
# meeting was cancelled); never a delivery problem, so never counted as failed.
Outcome = Literal["sent", "temporary", "permanent", "cancelled"]


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    reply: str


class Connection(Protocol):
    async def send(self, message: EmailMessage) -> SendResult: ...


class Backend(Protocol):
    def connect(self) -> AbstractAsyncContextManager[Connection]: ...


CLEARTEXT_REFUSED = (
    "server offers no STARTTLS; refusing to send the password in clear; "
    "use smtp+ssl:// or a server with STARTTLS"
)


def backend_from_url(
    url: str, *, timeout: float = 30.0
) -> SMTPBackend | FileBackend | ConsoleBackend:
    """``smtp+ssl://`` is TLS from the start and ``smtp+starttls://`` insists on STARTTLS;
    plain ``smtp://`` upgrades whenever the server offers STARTTLS."""
    parts = urlsplit(url)
    if parts.scheme.startswith("smtp"):
        start_tls = {"smtp+starttls": True, "smtp+ssl": False}.get(parts.scheme)
        return SMTPBackend(
            hostname=parts.hostname or "localhost",
            port=parts.port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=parts.scheme == "smtp+ssl",
            start_tls=start_tls,
            timeout=timeout,
        )
    if parts.scheme == "file":
        return FileBackend(Path(unquote(parts.path)))
    if parts.scheme == "console":
        return ConsoleBackend()
    raise ValueError(f"unsupported email URL scheme {parts.scheme!r}")


def _classify(code: int, text: str) -> SendResult:
    reply = f"{code} {text}".strip()
    if 200 <= code < 300:
        return SendResult("sent", reply)
    return SendResult("permanent" if 500 <= code < 600 else "temporary", reply)


def is_loopback(hostname: str) -> bool:
    """Whether traffic to this host stays on the machine (a local relay)."""
    name = hostname.rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class CleartextLoginRefused(aiosmtplib.SMTPException):
    """The URL has credentials and the session to a remote server is not encrypted."""


def _unreachable(exc: Exception) -> SendResult:
    """No session with the server (refused, timed out, bad greeting, login refused).

    Always temporary, whatever the code: a 535 for a wrong password or a 554 greeting
    says nothing about the messages, which must wait for the settings to be fixed rather
    than fail. The caller stops trying for the rest of the batch, so a server that never
    answers costs one timeout per batch, not one per message (which would hold the
    worker past its lease and stall its other steps)."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return SendResult("temporary", f"{exc.code} {exc.message}"[:500])
    if isinstance(exc, CleartextLoginRefused):
        return SendResult("temporary", str(exc))
    return SendResult("temporary", f"{exc.__class__.__name__}: {exc}"[:500])


class SMTPBackend:
    """SMTP with one connection reused for a whole batch; a dropped connection is
    reopened for the next message, a server that cannot be reached is not tried again
    until the next batch.

    ``start_tls=None`` (plain ``smtp://``) upgrades when the server offers STARTTLS. A
    password then goes only over TLS, except to a loopback relay, where it never leaves
    the machine; without TLS the batch waits with ``CLEARTEXT_REFUSED`` as its reply."""

    def __init__(
        self,
        *,
        hostname: str,
        port: int | None,
        username: str | None,
        password: str | None,
        use_tls: bool,
        start_tls: bool | None,
        timeout: float,
    ) -> None:
        self.hostname = hostname
        self.port = port or (465 if use_tls else 587 if start_tls else 25)
        self.username = username
        self.password = password
        self.use_tls = use_tls
        self.start_tls = start_tls
        self.timeout = timeout

    @property
    def validate_certs(self) -> bool:
        """Certificates are checked wherever checking protects something: whenever TLS
        was asked for by name, and when an upgrade carries a password to a remote host.
        An upgrade that carries no password is taken unchecked, as mail servers take
        each other's: an attacker able to present a forged certificate could as well
        strip the STARTTLS offer, so checking would not stop them, only the mail (to a
        relay with a self-signed certificate, say), and a passive eavesdropper is kept
        out either way."""
        if self.use_tls or self.start_tls:
            return True
        return self.username is not None and not is_loopback(self.hostname)

    def _client(self) -> aiosmtplib.SMTP:
        # No credentials here: aiosmtplib would log in right after connecting, before
        # we could see whether the session is encrypted (see log_in).
        return aiosmtplib.SMTP(
            hostname=self.hostname,
            port=self.port,
            use_tls=self.use_tls,
            start_tls=self.start_tls,
            validate_certs=self.validate_certs,
            timeout=self.timeout,
        )

    async def log_in(self, client: aiosmtplib.SMTP) -> None:
        """Log in if the URL has credentials, never sending them in clear off the machine.

        A server that offers no STARTTLS (or a man in the middle who removed the offer)
        gets no password; refusing is a temporary failure, so the messages wait for the
        settings to be fixed."""
        if self.username is None:
            return
        encrypted = client.get_transport_info("sslcontext") is not None
        if not encrypted and not is_loopback(self.hostname):
            raise CleartextLoginRefused(CLEARTEXT_REFUSED)
        await client.login(self.username, self.password or "")

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[_SMTPConnection]:
        conn = _SMTPConnection(self)
        try:
            yield conn
        finally:
            await conn.close()


class _SMTPConnection:
    def __init__(self, backend: SMTPBackend) -> None:
        self.backend = backend
        self.client: aiosmtplib.SMTP | None = None
        # Set when (re)connecting failed: the rest of the batch gets the same answer.
        self.unreachable: SendResult | None = None

    async def _ensure(self) -> aiosmtplib.SMTP:
        if self.client is None or not self.client.is_connected:
            client = self.backend._client()
            await client.connect()
            try:
                await self.backend.log_in(client)
            except BaseException:
                client.close()
                raise
            self.client = client
        return self.client

    async def send(self, message: EmailMessage) -> SendResult:
        if self.unreachable is not None:
            return self.unreachable
        try:
            client = await self._ensure()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            self.unreachable = _unreachable(exc)
            return self.unreachable
        try:
            errors, response = await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            return _classify(first.code, first.message)
        except aiosmtplib.SMTPNotSupported as exc:
            # An internationalised address and a server without SMTPUTF8: retrying for
            # hours changes nothing, so it fails now with the reason on the row.
            return SendResult("permanent", f"not sent: {exc}"[:500])
        except ValueError as exc:
            # aiosmtplib refuses an address it cannot put on a command line; raising
            # would abandon the whole batch to the lease instead of this one message.
            return SendResult("permanent", f"not sent: {exc}"[:500])
        except aiosmtplib.SMTPResponseException as exc:
            # 421 means the server is closing the channel; any other refusal leaves the
            # session usable after a RSET, so a 451 does not cost a new connection (and,
            # against a real server, a new TLS handshake and login).
            if exc.code == 421 or not await self._reset():
                await self._drop()
            return _classify(exc.code, exc.message)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            await self._drop()
            return SendResult("temporary", f"{exc.__class__.__name__}: {exc}"[:500])
        if errors:  # some recipients refused; we send one recipient per message
            code, text = next(iter(errors.values()))
            return _classify(code, text)
        # aiosmtplib hands back the text of the DATA reply only; its code is always 250
        # (any other raises), and the row keeps "code text" like every other reply.
        return _classify(250, response)

    async def _reset(self) -> bool:
        if self.client is None or not self.client.is_connected:
            return False
        try:
            await self.client.rset()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            return False
        return True

    async def _drop(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            finally:
                self.client = None

    async def close(self) -> None:
        if self.client is not None and self.client.is_connected:
            try:
                await self.client.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                self.client.close()
        self.client = None


def _flatten_policy(message: EmailMessage) -> email.policy.Policy:
    """RFC 6532 (raw UTF-8 headers) when an address is not ASCII, as an SMTPUTF8 server
    gets it: an RFC 2047 encoded word is not allowed inside an address, so the default
    policy would write a ``To:`` no mail reader can parse. ASCII messages keep the
    default, which every reader knows."""
    addresses = [
        a.addr_spec
        for field in ("From", "To", "Cc", "Reply-To")
        for header in message.get_all(field, [])
        for a in getattr(header, "addresses", ())
    ]
    policy = message.policy
    if all(a.isascii() for a in addresses) or not isinstance(policy, email.policy.EmailPolicy):
        return policy
    return policy.clone(utf8=True)


class FileBackend:
    """One ``.eml`` file per message (the embedded default): open it in any mail client."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[_FileConnection]:
        self.folder.mkdir(parents=True, exist_ok=True)
        yield _FileConnection(self.folder)


class _FileConnection:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: EmailMessage) -> SendResult:
        name = message["Message-ID"].strip("<>").split("@")[0] + ".eml"
        target = self.folder / name
        try:
            # Written whole, then renamed: a reader never sees half a message.
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(message.as_bytes(policy=_flatten_policy(message)))
            os.replace(tmp, target)
        except OSError as exc:
            # An OSError's text names the server's folders; admins read this reply.
            reason = exc.strerror or "not written"
            return SendResult("temporary", f"{exc.__class__.__name__}: {reason}")
        log.info("email written", extra={"file": str(target), "kind": message["X-Pulse-Kind"]})
        # The name alone: the reply is shown to admins through the API, and the server's
        # folders are none of their business (the log above has the full path).
        return SendResult("sent", f"written to {name}")


class ConsoleBackend:
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[_ConsoleConnection]:
        yield _ConsoleConnection()


class _ConsoleConnection:
    async def send(self, message: EmailMessage) -> SendResult:
        sys.stdout.write(message.as_string(policy=_flatten_policy(message)) + "\n")
        sys.stdout.flush()
        return SendResult("sent", "printed to stdout")
