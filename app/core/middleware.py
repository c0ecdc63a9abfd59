"""Pure ASGI middleware: request ids, access log, metrics, body limits, last-resort 500s."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import problem_response, route_answers
from app.core.logging import mask_path, request_id_var

access_log = logging.getLogger("pulse.access")
error_log = logging.getLogger("pulse.errors")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")

# Any token is a valid HTTP method, so a client could mint a new series per request;
# methods outside RFC 9110's set (plus PATCH) share one label.
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


def _method_label(method: str) -> str:
    return method if method in _KNOWN_METHODS else "OTHER"


class Metrics:
    """Prometheus series for one app; a registry per app keeps test apps apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pulse_http_requests",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pulse_http_request_duration_seconds",
            "HTTP request latency by route template and method",
            ["method", "route"],
            registry=self.registry,
        )


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    # Unmatched paths are one series, or a scanner could grow the registry without bound.
    return str(path) if path else "unmatched"


class RequestContextMiddleware:
    """Outermost layer: gives each request an id, logs it, counts it, and turns any
    exception that escaped everything else into a problem+json 500 without internals.

    It also answers HEAD wherever GET is routed (RFC 9110 §9.3.2: the same status and
    headers, no body); FastAPI's routes list GET alone, and uptime checkers send HEAD."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500
        response_started = False
        # The server keeps its own scope (it must still know this was a HEAD); the app
        # gets a copy that says GET.
        head_as_get = _serve_head_as_get(scope)
        app_scope: Scope = {**scope, "method": "GET"} if head_as_get else scope

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", rid.encode()),
                ]
            elif head_as_get and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(app_scope, receive, send_wrapper)
        except Exception:
            # The id rides on the record itself: a handler that formats it later (a queue,
            # pytest's caplog) no longer sees the request's context variable.
            error_log.exception(
                "unhandled error", extra={"request_id": rid, "path": mask_path(scope["path"])}
            )
            if not response_started:
                response = problem_response(
                    500,
                    "An unexpected error occurred; quote the request id when reporting it.",
                    code="internal_error",
                    request_id=rid,
                )
                await response(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(app_scope)
            method = _method_label(scope["method"])
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            access_log.info(
                "%s %s %s",
                method,
                mask_path(scope["path"]),
                status,
                extra={
                    "request_id": rid,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "route": route,
                },
            )
            request_id_var.reset(token)


def _serve_head_as_get(scope: Scope) -> bool:
    """A HEAD that no route takes itself but a GET route would."""
    return (
        scope["method"] == "HEAD"
        and not route_answers(scope, "HEAD")
        and route_answers(scope, "GET")
    )


class BodyLimitMiddleware:
    """Answer 413 before reading more than the limit; imports get a larger one.

    The body is read here in full (it is at most the limit) and replayed to the app, so
    the idempotency layer can fingerprint it too."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(scope, receive, send, limit)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        scope.setdefault("state", {})["raw_body"] = body
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            413,
            f"request body exceeds the limit of {limit} bytes for {mask_path(scope['path'])}",
            code="payload_too_large",
            request_id=scope.get("state", {}).get("request_id"),
        )
        await response(scope, receive, send)
