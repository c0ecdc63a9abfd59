"""Domain errors and the RFC 9457 problem+json responses every error becomes."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from app.core.logging import mask_path

log = logging.getLogger("pulse.errors")

PROBLEM_JSON = "application/problem+json"

TOO_DEEP = "JSON is nested too deeply"


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """The body of every error answer (RFC 9457)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str | None = None
    errors: list[FieldError] | None = None
    request_id: str | None = None


class PulseError(Exception):
    """A domain error that knows its HTTP status; raised by services, rendered once."""

    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = headers
        if code is not None:
            self.code = code


class BadRequest(PulseError):
    status, code = 400, "bad_request"


class Unauthorized(PulseError):
    status, code = 401, "unauthorized"


class Forbidden(PulseError):
    status, code = 403, "forbidden"


class NotFound(PulseError):
    status, code = 404, "not_found"


class Conflict(PulseError):
    status, code = 409, "conflict"


class Unprocessable(PulseError):
    status, code = 422, "validation_failed"

    @classmethod
    def field(cls, loc: Sequence[str | int], msg: str) -> Unprocessable:
        """A 422 for one field: the detail names it, ``errors`` locates it."""
        name = ".".join(str(p) for p in loc if p not in ("body", "query", "path")) or "body"
        return cls(f"{name}: {msg}", errors=[{"loc": list(loc), "msg": msg}])


class ProblemJSONResponse(JSONResponse):
    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            # Text decoded from a client's lone surrogate escape (``\ud800``) has no UTF-8
            # form; escaped as ``\uXXXX`` it is still valid JSON, and the client still
            # gets its error instead of a 500.
            return json.dumps(
                content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
            ).encode("ascii")


def problem_response(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    errors: Sequence[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if code:
        body["code"] = code
    if errors is not None:
        body["errors"] = list(errors)
    if request_id:
        body["request_id"] = request_id
    return ProblemJSONResponse(body, status_code=status, headers=headers)


def _request_id(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else None


def _clean_loc(loc: Sequence[Any]) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in loc]


# A model-level validator names the field it is about at the start of its message
# ("options: needs at least 2 options"); move that name into loc so clients can point
# at the field.
_FIELD_PREFIX = re.compile(r"^([a-z][a-z0-9_]*): (.+)$", re.DOTALL)


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        loc = _clean_loc(err.get("loc", ()))
        match = _FIELD_PREFIX.match(msg)
        if match and err.get("type") == "value_error":
            loc, msg = [*loc, match.group(1)], match.group(2)
        out.append({"loc": loc, "msg": msg})
    return out


def _summary(errors: list[dict[str, Any]]) -> str:
    def name(loc: list[str | int]) -> str:
        parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
        return ".".join(parts) or "body"

    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{name(first['loc'])}: {first['msg']}{more}"


_PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def route_answers(scope: Scope, method: str) -> bool:
    """Whether some route (included routers too) takes this path with ``method``, probed
    the way the router itself would match it."""
    router = getattr(scope.get("app"), "router", None)
    if router is None:
        return False
    probe = {**scope, "method": method}
    return any(route.matches(probe)[0] == Match.FULL for route in router.routes)


def _allowed_methods(request: Request) -> str | None:
    """Every method the path answers to, for a 405's ``Allow`` header.

    The router stops at the first route whose path matches, so on its own it lists only
    that route's methods (``GET`` for ``/v1/organization``, hiding ``PATCH``); RFC 9110
    §15.5.6 asks for the resource's full set. HEAD goes wherever GET does: the request
    context middleware answers it from the GET route."""
    allowed = [method for method in _PROBED_METHODS if route_answers(request.scope, method)]
    if "GET" in allowed and "HEAD" not in allowed:
        allowed.insert(allowed.index("GET") + 1, "HEAD")
    return ", ".join(allowed) if allowed else None


def install_error_handlers(app: FastAPI) -> None:
    """Turn every error a route can raise into problem+json."""

    @app.exception_handler(PulseError)
    async def _pulse_error(request: Request, exc: PulseError) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.detail,
            code=exc.code,
            errors=exc.errors,
            headers=exc.headers,
            request_id=_request_id(request),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc)
        return problem_response(
            422,
            _summary(errors),
            code="validation_failed",
            errors=errors,
            request_id=_request_id(request),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, RecursionError):
            # FastAPI's JSON parsing gave up on the nesting: the same answer as the NUL and
            # surrogate check gives when its own parse does.
            return await _pulse_error(request, Unprocessable.field(["body"], TOO_DEEP))
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}"
        elif exc.status_code == 405:
            allowed = _allowed_methods(request)
            if allowed:
                headers["Allow"] = allowed
            if detail == "Method Not Allowed":
                detail = f"{request.method} is not allowed on {mask_path(request.url.path)}"
        return problem_response(
            exc.status_code,
            detail,
            headers=headers or None,
            request_id=_request_id(request),
        )


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` for a route, so OpenAPI lists the problems it can answer."""
    return {
        s: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": HTTPStatus(s).phrase}
        for s in statuses
    }
