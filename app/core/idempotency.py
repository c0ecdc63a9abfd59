"""``Idempotency-Key`` on POST (draft-ietf-httpapi-idempotency-key-header).

The first request with a key runs and its answer is stored for the TTL; a retry with the
same key and the same request gets that stored answer (``Idempotent-Replayed: true``);
the same key with a different request is 422, and while the first is still running 409.
Keys are scoped to the caller's credentials, so two clients never collide.

Not stored, so a retry runs again: a 5xx (the client may retry it for real); a 401
(nobody was identified, and anyone could otherwise fill this table with forged keys);
an answer marked ``Cache-Control: no-store``, such as a new API key's secret, which must
neither sit in this table for a day nor be handed out twice.

This layer runs before routing, so it cannot tell a good API key from a revoked one. An
answer first given to an authenticated caller is therefore replayed only once the app
has authenticated the retry (authentication calls ``caller_authenticated``): a revoked
or unknown key gets its 401, never the stored answer."""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import LargeBinary, String, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.db import Base, Database, new_id, utcnow
from app.core.errors import problem_response

log = logging.getLogger("pulse.idempotency")

# A request still "processing" after this long is taken to have died with its worker.
PROCESSING_LEASE = timedelta(seconds=60)

# Record states: DONE answers are replayed at once (the route asked for no credentials);
# DONE_AUTHENTICATED ones only after the retry passes authentication again.
PROCESSING, DONE, DONE_AUTHENTICATED = "processing", "done", "done_auth"

# Request state: the app authenticated this request; a stored answer awaits that.
_AUTHENTICATED = "idempotency_authenticated"
_REPLAY_AWAITS_AUTH = "idempotency_replay_awaits_auth"


class _AuthenticatedReplay(BaseException):
    """Stops a retried request right after authentication, before the endpoint runs
    again; the middleware answers with the stored response instead. A BaseException, so
    no ``except Exception`` on the way (an error handler, the session's rollback) can
    turn it into an error answer."""


def caller_authenticated(request: Request) -> None:
    """Authentication calls this once it has accepted the request's API key: the answer
    is then stored for replay only to callers who authenticate too, and a retry whose
    answer is already stored gets it now instead of running the endpoint twice."""
    state = request.scope.setdefault("state", {})
    state[_AUTHENTICATED] = True
    if state.get(_REPLAY_AWAITS_AUTH):
        raise _AuthenticatedReplay


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("scope_hash", "key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    scope_hash: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # PROCESSING, DONE, DONE_AUTHENTICATED
    response_status: Mapped[int | None]
    response_headers: Mapped[dict[str, Any] | None]
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


def _sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


_REPLAYED_HEADERS = {b"content-type", b"location", b"etag"}


def _caller_scope(authorization: bytes | None, path: str) -> str:
    """Whose keys these are: the API key's holder, or for a caller without one (an
    employee's personal link) the path, which carries the link's token. Otherwise every
    anonymous caller would share one key space and pick each other's keys up."""
    if authorization:
        return _sha256(b"authorization", authorization)
    return _sha256(b"anonymous", path.encode())


def _forbids_storing(headers: list[tuple[bytes, bytes]]) -> bool:
    """True when the answer says ``Cache-Control: no-store`` (RFC 9111 §5.2.2.5)."""
    for name, value in headers:
        if name.lower() == b"cache-control":
            directives = {d.strip().split(b"=")[0].lower() for d in value.split(b",")}
            if b"no-store" in directives:
                return True
    return False


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, get_db: Any, ttl: timedelta) -> None:
        self.app = app
        self.get_db = get_db
        self.ttl = ttl

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw_key = headers.get(b"idempotency-key")
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        rid = scope.get("state", {}).get("request_id")
        key = raw_key.decode("latin-1").strip().strip('"')
        if not key or len(key) > 255 or not key.isprintable():
            await problem_response(
                400,
                "Idempotency-Key: must be 1 to 255 printable characters",
                code="bad_idempotency_key",
                errors=[
                    {"loc": ["header", "Idempotency-Key"], "msg": "1 to 255 printable characters"}
                ],
                request_id=rid,
            )(scope, receive, send)
            return

        body: bytes = scope.get("state", {}).get("raw_body", b"")
        scope_hash = _caller_scope(headers.get(b"authorization"), scope["path"])
        fingerprint = _sha256(
            scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body
        )
        db: Database = self.get_db()
        claimed = await self._claim(db, scope_hash, key, fingerprint, rid)
        if isinstance(claimed, _Replay) and claimed.record.status == DONE_AUTHENTICATED:
            await self._replay_after_authentication(scope, receive, send, claimed)
            return
        if claimed is not True:
            await claimed(scope, receive, send)
            return

        status = 500
        resp_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, resp_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                resp_headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            await self._release(db, scope_hash, key)
            raise
        if status >= 500 or status == 401 or _forbids_storing(resp_headers):
            await self._release(db, scope_hash, key)
            return
        kept = {k.decode(): v.decode("latin-1") for k, v in resp_headers if k in _REPLAYED_HEADERS}
        authenticated = scope.get("state", {}).get(_AUTHENTICATED, False)
        async with db.sessionmaker() as session, session.begin():
            await session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.scope_hash == scope_hash, IdempotencyRecord.key == key)
                .values(
                    status=DONE_AUTHENTICATED if authenticated else DONE,
                    response_status=status,
                    response_headers=kept,
                    response_body=b"".join(chunks),
                )
            )

    async def _replay_after_authentication(
        self, scope: Scope, receive: Receive, send: Send, replay: _Replay
    ) -> None:
        """Run the retry through the app as far as authentication: a key the app refuses
        gets the app's own answer (401), an accepted one the stored answer. Nothing here
        is stored or released: the record keeps the first answer."""
        scope.setdefault("state", {})[_REPLAY_AWAITS_AUTH] = True
        try:
            await self.app(scope, receive, send)
        except _AuthenticatedReplay:
            await replay(scope, receive, send)

    async def _claim(
        self, db: Database, scope_hash: str, key: str, fingerprint: str, rid: str | None
    ) -> Any:
        """Insert a 'processing' row, or return the response that the existing row calls for."""
        now = utcnow()
        async with db.sessionmaker() as session:
            async with session.begin():
                # An expired record, or one whose request died mid-flight, frees its key.
                await session.execute(
                    delete(IdempotencyRecord).where(
                        IdempotencyRecord.scope_hash == scope_hash,
                        IdempotencyRecord.key == key,
                        (IdempotencyRecord.expires_at < now)
                        | (
                            (IdempotencyRecord.status == PROCESSING)
                            & (IdempotencyRecord.created_at < now - PROCESSING_LEASE)
                        ),
                    )
                )
            try:
                async with session.begin():
                    session.add(
                        IdempotencyRecord(
                            scope_hash=scope_hash,
                            key=key,
                            fingerprint=fingerprint,
                            status=PROCESSING,
                            created_at=now,
                            expires_at=now + self.ttl,
                        )
                    )
                return True
            except IntegrityError:
                pass
            async with session.begin():
                existing = (
                    await session.execute(
                        select(IdempotencyRecord).where(
                            IdempotencyRecord.scope_hash == scope_hash, IdempotencyRecord.key == key
                        )
                    )
                ).scalar_one_or_none()
        if existing is None:  # freed between our insert and our read: let the client retry
            return problem_response(
                409,
                "Idempotency-Key: a request with this key just finished; retry",
                code="idempotency_conflict",
                request_id=rid,
            )
        if existing.fingerprint != fingerprint:
            return problem_response(
                422,
                "Idempotency-Key: this key was already used for a different request",
                code="idempotency_key_reused",
                request_id=rid,
                errors=[
                    {
                        "loc": ["header", "Idempotency-Key"],
                        "msg": "already used for a different request",
                    }
                ],
            )
        if existing.status not in (DONE, DONE_AUTHENTICATED):
            return problem_response(
                409,
                "Idempotency-Key: a request with this key is still being processed",
                code="idempotency_in_progress",
                request_id=rid,
            )
        return _Replay(existing)

    async def _release(self, db: Database, scope_hash: str, key: str) -> None:
        try:
            async with db.sessionmaker() as session, session.begin():
                await session.execute(
                    delete(IdempotencyRecord).where(
                        IdempotencyRecord.scope_hash == scope_hash, IdempotencyRecord.key == key
                    )
                )
        except Exception:  # the record then expires by its lease instead
            log.exception("could not release idempotency key")


class _Replay:
    def __init__(self, record: IdempotencyRecord) -> None:
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (k.encode(), v.encode("latin-1"))
            for k, v in (self.record.response_headers or {}).items()
        ]
        body = self.record.response_body or b""
        headers += [
            (b"content-length", str(len(body)).encode()),
            (b"idempotent-replayed", b"true"),
        ]
        await send(
            {
                "type": "http.response.start",
                "status": self.record.response_status,
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": body})


async def purge_expired(db: Database) -> int:
    """Delete records past their TTL; the worker calls this every tick."""
    async with db.sessionmaker() as session, session.begin():
        result = await session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < utcnow())
        )
    return int(getattr(result, "rowcount", 0) or 0)
