"""The outbox sender, one worker step: claim a batch, render it, send it over one
connection, record each outcome, repeat until nothing is due.

Outcomes are written every few messages, so a worker killed mid-batch resends at most
the messages since the last write (their lease expires and another claim takes them);
the Message-ID derived from the dedupe key lets receivers drop those duplicates."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from datetime import timedelta
from email.message import EmailMessage

from sqlalchemy import select

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.notifications import outbox
from app.notifications.backends import Backend, FileBackend, SendResult, backend_from_url
from app.notifications.outbox import Claimed
from app.notifications.render import AboutGone, Unsendable, build_message, render
from app.organizations.models import Organization

log = logging.getLogger("pulse.email")

RECORD_EVERY = 20


def retry_delay(attempts: int, settings: Settings, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: base·2^(n−1), capped, then a uniform draw from its
    upper half, so messages that failed together do not retry together."""
    ceiling = min(
        settings.email_retry_max_seconds, settings.email_retry_base_seconds * 2 ** (attempts - 1)
    )
    return (rng or random).uniform(ceiling / 2, ceiling)


async def deliver_outbox(
    db: Database,
    settings: Settings,
    *,
    backend: Backend | None = None,
    max_batches: int | None = None,
) -> int:
    """Send everything due; returns how many messages were attempted."""
    backend = backend or backend_from_url(
        settings.email_url, timeout=settings.email_timeout_seconds
    )
    lease = timedelta(seconds=settings.email_lease_seconds)
    attempted = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        async with db.sessionmaker() as session, session.begin():
            claimed = await outbox.claim_batch(
                session, limit=settings.email_batch_size, lease=lease
            )
        if not claimed:
            break
        batches += 1
        attempted += await _deliver_batch(db, settings, backend, claimed)
    return attempted


async def _render_batch(
    db: Database, settings: Settings, claimed: list[Claimed]
) -> list[tuple[Claimed, EmailMessage | SendResult, str | None]]:
    out: list[tuple[Claimed, EmailMessage | SendResult, str | None]] = []
    async with db.sessionmaker() as session:
        # Every message names its organization; load the batch's organizations once and
        # keep them referenced, so renderers' lookups hit the identity map instead of
        # the database (one query per message was most of the sender's overhead).
        organizations = (
            await session.scalars(
                select(Organization).where(
                    Organization.id.in_({c.organization_id for c in claimed})
                )
            )
        ).all()
        for c in claimed:
            if c.attempts > settings.email_max_attempts:
                gave_up = SendResult("permanent", f"gave up after {c.attempts - 1} attempts")
                out.append((c, gave_up, None))
                continue
            try:
                rendered = await render(session, c, settings)
                out.append((c, build_message(rendered, c, settings), rendered.link))
            except AboutGone as exc:
                out.append((c, SendResult("cancelled", f"not sent: {exc}"), None))
            except Unsendable as exc:
                out.append((c, SendResult("permanent", str(exc)), None))
            except Exception as exc:  # a template bug must not stop the other messages
                log.exception(
                    "could not render email", extra={"outbox_id": str(c.id), "kind": c.kind}
                )
                failed = SendResult("temporary", f"render error: {exc.__class__.__name__}")
                out.append((c, failed, None))
    del organizations
    return out


async def _deliver_batch(
    db: Database, settings: Settings, backend: Backend, claimed: list[Claimed]
) -> int:
    prepared = await _render_batch(db, settings, claimed)
    outcomes: list[tuple[Claimed, SendResult]] = []
    tried: set[object] = set()
    # The embedded default logs each mailed link, so a developer running `make run` can
    # click through from the log (architecture.md). Tokens stay out of logs otherwise.
    log_links = settings.env == "development" and isinstance(backend, FileBackend)
    # Outcomes are written every RECORD_EVERY messages, and at least every third of the
    # lease, when the untried rows' lease is renewed too: a slow server must not let the
    # lease run out under a batch still being sent.
    checkpoint_every = settings.email_lease_seconds / 3
    last_checkpoint = time.monotonic()
    try:
        async with backend.connect() as conn:
            for c, item, link in prepared:
                result = item if isinstance(item, SendResult) else await conn.send(item)
                tried.add(c.id)
                outcomes.append((c, result))
                if log_links and link and result.outcome == "sent":
                    log.info("email link", extra={"kind": c.kind, "to": c.recipient, "link": link})
                due = time.monotonic() - last_checkpoint >= checkpoint_every
                if len(outcomes) >= RECORD_EVERY or due:
                    untried = [p[0] for p in prepared if p[0].id not in tried]
                    await _record(db, settings, outcomes, renew=untried)
                    outcomes = []
                    last_checkpoint = time.monotonic()
    except asyncio.CancelledError:
        # Shutting down: keep what was sent, hand back what was not tried.
        await _record(db, settings, outcomes)
        async with db.sessionmaker() as session, session.begin():
            await outbox.release(session, [c for c, _, _ in prepared if c.id not in tried])
        raise
    await _record(db, settings, outcomes)
    return len(prepared)


async def _record(
    db: Database,
    settings: Settings,
    outcomes: list[tuple[Claimed, SendResult]],
    *,
    renew: Sequence[Claimed] = (),
) -> None:
    if not outcomes and not renew:
        return
    now = utcnow()
    async with db.sessionmaker() as session, session.begin():
        await outbox.extend_lease(
            session, renew, now + timedelta(seconds=settings.email_lease_seconds)
        )
        await outbox.mark_sent(session, [(c, r.reply) for c, r in outcomes if r.outcome == "sent"])
        for c, r in outcomes:
            if r.outcome == "sent":
                continue
            if r.outcome == "cancelled":
                await outbox.mark_cancelled(session, c, r.reply[:2000])
                continue
            if r.outcome == "permanent" or c.attempts >= settings.email_max_attempts:
                reply = (
                    r.reply
                    if r.outcome == "permanent"
                    else f"gave up after {c.attempts} attempts: {r.reply}"
                )
                await outbox.mark_failed(session, c, reply[:2000])
                log.warning(
                    "email failed",
                    extra={"outbox_id": str(c.id), "kind": c.kind, "reply": reply[:200]},
                )
            else:
                delay = retry_delay(c.attempts, settings)
                await outbox.mark_retry(session, c, r.reply[:2000], now + timedelta(seconds=delay))
