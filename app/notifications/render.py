"""Rendering at send time: subject, text and HTML twins, attachments, and the MIME message.

Each message kind registers how to build its template context (and its attachments)
from the row it is about; templates live in ``templates/<kind>/<locale>.*`` with a
shared HTML layout (inline styles, no external images or scripts: mail clients block
them). A kind that has no template for the recipient's locale falls back to its
language, then to English."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import cache
from typing import Any

import idna
from jinja2 import Environment, PackageLoader, StrictUndefined, TemplateNotFound, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import utcnow
from app.notifications.outbox import Claimed
from app.organizations import service as organization_service

RTL_LANGUAGES = {"ar", "fa", "he", "ur"}


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    attachments: list[Attachment] = field(default_factory=list)
    # The personal link the message carries, if any: the sender logs it for the embedded
    # default (development, file backend) so a developer can click through from the log.
    link: str | None = None


class AboutGone(Exception):
    """The row a message is about no longer exists or no longer wants mail (answered,
    cancelled, closed): the message is cancelled, not retried and not a failure."""


class Unsendable(Exception):
    """A message that cannot be rendered and needs an admin (no renderer for its kind, the
    key that signed its link was retired): it fails at once, with this as its reply, and
    can be retried once the cause is fixed."""


ContextBuilder = Callable[[AsyncSession, Claimed, Settings], Awaitable[dict[str, Any]]]
AttachmentBuilder = Callable[
    [AsyncSession, Claimed, Settings, dict[str, Any]], Awaitable[list[Attachment]]
]


@dataclass(frozen=True)
class Kind:
    name: str
    context: ContextBuilder
    attachments: AttachmentBuilder | None = None


KINDS: dict[str, Kind] = {}


def register_kind(
    name: str, context: ContextBuilder, attachments: AttachmentBuilder | None = None
) -> None:
    """Make a message kind sendable; its templates go in ``templates/<name>/``."""
    KINDS[name] = Kind(name, context, attachments)


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("app.notifications", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def template_locale(kind: str, locale: str) -> str:
    """The best locale this kind has templates for: ``fr-CA`` → ``fr`` → ``en``."""
    env = environment()
    for candidate in (locale, locale.split("-")[0].lower(), "en"):
        try:
            env.get_template(f"{kind}/{candidate}.subject.txt")
        except TemplateNotFound:
            continue
        return candidate
    raise TemplateNotFound(f"{kind}/en.subject.txt")


async def render(session: AsyncSession, claimed: Claimed, settings: Settings) -> Rendered:
    """Render one claimed message; raises AboutGone when there is nothing left to send
    and Unsendable when it cannot be sent without an admin's help."""
    kind = KINDS.get(claimed.kind)
    if kind is None:
        raise Unsendable(f"no renderer for message kind {claimed.kind!r}")
    context = await kind.context(session, claimed, settings)
    locale = template_locale(claimed.kind, claimed.locale)
    language = locale.split("-")[0]
    context = {
        "lang": locale,
        "dir": "rtl" if language in RTL_LANGUAGES else "ltr",
        "recipient": claimed.recipient,
        "name": claimed.recipient_name,
        **context,
    }
    env = environment()
    subject = " ".join(
        env.get_template(f"{claimed.kind}/{locale}.subject.txt").render(context).split()
    )
    text = env.get_template(f"{claimed.kind}/{locale}.body.txt").render(context)
    html = env.get_template(f"{claimed.kind}/{locale}.body.html").render(
        {**context, "subject": subject}
    )
    attachments = (
        await kind.attachments(session, claimed, settings, context) if kind.attachments else []
    )
    link = context.get("link")
    return Rendered(subject, text, html, attachments, link if isinstance(link, str) else None)


def message_id(dedupe_key: str, email_from: str) -> str:
    """Derived from the dedupe key, so a resend after a crash carries the same
    Message-ID and receiving systems can drop the duplicate."""
    _, at, domain = parseaddr(email_from)[1].rpartition("@")
    domain = domain if at and domain else "pulse.invalid"
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


def ascii_domain(domain: str) -> str:
    """An internationalised domain as its IDNA A-labels (``bücher.example`` →
    ``xn--bcher-kva.example``), so an ASCII mailbox there needs no SMTPUTF8 server and
    its ``To:`` header is plain ASCII. IDNA 2008 with UTS 46 mapping, as the address
    was validated (email-validator), not Python's IDNA 2003 codec, which turns ``ß``
    into ``ss`` and so into someone else's domain. A name it refuses stays as it was."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return domain


def build_message(rendered: Rendered, claimed: Claimed, settings: Settings) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = settings.email_from
    local, _, domain = claimed.recipient.rpartition("@")
    if local.isascii():
        domain = ascii_domain(domain)
    # A name imported from a multi-line CSV cell may hold a line break, which a header
    # refuses; as a space it still reads right, and the message goes out.
    name = " ".join(claimed.recipient_name.split())
    msg["To"] = Address(display_name=name, username=local, domain=domain)
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = message_id(claimed.dedupe_key, settings.email_from)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    msg["X-Pulse-Kind"] = claimed.kind
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    for a in rendered.attachments:
        if (a.maintype, a.subtype) == ("text", "calendar"):
            # An invitation as Google Calendar sends one: the event is a third
            # alternative, which Outlook and Gmail show as a meeting request with
            # accept/decline (MS-OXCMAIL 2.1.3.3.8.2), and a plain invite.ics file for
            # clients that only import attachments.
            msg.add_alternative(a.content.decode(), subtype="calendar", params=a.params)
            msg.add_attachment(
                a.content, maintype="application", subtype="ics", filename=a.filename
            )
            continue
        msg.add_attachment(
            a.content, maintype=a.maintype, subtype=a.subtype, filename=a.filename, params=a.params
        )
    return msg


async def _test_context(
    session: AsyncSession, claimed: Claimed, settings: Settings
) -> dict[str, Any]:
    org = await organization_service.get_organization(session, claimed.organization_id)
    return {"organization": org.name}


register_kind("test", _test_context)
