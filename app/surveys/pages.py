"""HTTP for personal survey links: the employee's pages (``/r/{token}``: server-rendered,
no JavaScript) and their JSON twin (``/v1/respond/{token}``) for chat bots and apps.

Both routers use a route class that

- counts a failed lookup against the client's address and answers 429 past the limit
  (ratelimit.py); a valid link never counts;
- turns every error into its side's answer: a page in the reader's language, or
  problem+json like the rest of the API;
- puts the link headers on every answer, errors included: ``Referrer-Policy:
  no-referrer`` and ``Cache-Control: no-store`` so the token in the URL leaks to no one
  and stays in no cache, ``X-Robots-Tag: noindex``, and a Content-Security-Policy that
  allows nothing but the page's one inline style sheet, named by its SHA-256, and forms
  posting back to us. A hash rather than a nonce: the sheet never changes, so neither
  does the policy, and nothing per request has to be threaded into the template.

GET never writes (mail scanners open links); answers come by POST. The token is a path
parameter matching anything after the prefix (``{token:token}``), so a malformed token,
even one with a slash or a line break, gets the same 404 page and is counted the same."""

from __future__ import annotations

import base64
import hashlib
import inspect
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.config import Settings
from app.core.errors import PulseError, Unprocessable, error_responses
from app.organizations.dependencies import Session
from app.surveys import answering, messages
from app.surveys.answering import (
    AlreadyAnswered,
    AnswersInvalid,
    Link,
    LinkNotFound,
    RespondBody,
    RespondRead,
    RespondResult,
    WaveClosed,
)
from app.surveys.ratelimit import TooManyAttempts, client_key, limiter_for


class _AnyTokenConvertor(PathConvertor):
    """``path`` also across line breaks (``.`` does not match one): whatever follows the
    prefix reaches our handler, so every malformed token gets the same 404 page, with
    the link headers, and counts against the client."""

    regex = "(?s:.*)"


register_url_convertor("token", _AnyTokenConvertor())

# --- Rendering --------------------------------------------------------------------------


def _fill(template: str, **params: Any) -> Markup:
    """A message with its placeholders filled; values that are Markup (a <time>
    element) stay markup, everything else is escaped."""
    return Markup(escape(template)).format(**params)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("app.surveys", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fill"] = _fill
    return env


CSS = Markup(_environment().get_template("_style.html").render().strip())
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()

PAGE_CSP = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
LINK_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def _render(template: str, status: int, locale: str, **context: Any) -> HTMLResponse:
    page_language = messages.language(locale)

    def lang_attrs(tag: str | None) -> Markup:
        """lang/dir on a prompt written in another language than the page's, so screen
        readers pronounce it right and its direction is its own."""
        if not tag or messages.language(tag) == page_language:
            return Markup("")
        return Markup(' lang="{}" dir="{}"').format(tag, messages.direction(tag))

    html = (
        _environment()
        .get_template(template)
        .render(
            lang=locale,
            dir=messages.direction(locale),
            css=CSS,
            t=messages.strings(locale),
            lang_attrs=lang_attrs,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status)


def _when(moment: datetime, timezone: str) -> Markup:
    """A time for people: in their zone, ISO-like (readable in every language, no
    locale data needed), isolated so a right-to-left sentence does not reorder it."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, timezone = ZoneInfo("UTC"), "UTC"
    local = moment.astimezone(zone)
    return Markup('<bdi><time datetime="{}">{} ({})</time></bdi>').format(
        moment.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        local.strftime("%Y-%m-%d %H:%M"),
        timezone,
    )


def _survey_page(
    link: Link,
    *,
    values: dict[str, list[str]] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    page = answering.survey_view(link)
    return _render(
        "survey.html",
        status,
        page.locale,
        page=page,
        values=values or {},
        errors=errors or {},
        closes=_when(link.closes_at, link.timezone),
    )


def _thanks_page(link: Link, *, already: bool, status: int = 200) -> HTMLResponse:
    page = answering.survey_view(link)
    prefix = "already" if already else "thanks"
    return _render(
        "thanks.html",
        status,
        page.locale,
        page=page,
        title=messages.text(page.locale, f"{prefix}_title"),
        body=messages.text(page.locale, f"{prefix}_body"),
    )


def _error_page(request: Request, exc: Exception) -> HTMLResponse:
    """The page for an error: in the link's language when we know whose link it is,
    else in the browser's (Accept-Language)."""
    if isinstance(exc, WaveClosed):
        locale = messages.ui_locale(exc.link.wanted_locales)
        return _render(
            "error.html",
            410,
            locale,
            organization=exc.link.organization_name,
            title=messages.text(locale, "closed_title"),
            body=_fill(
                messages.text(locale, "closed_body"),
                when=_when(exc.closed_at, exc.link.timezone),
            ),
        )
    if isinstance(exc, AlreadyAnswered):
        return _thanks_page(exc.link, already=True, status=409)
    locale = messages.ui_locale(
        messages.from_accept_language(request.headers.get("accept-language"))
    )
    if isinstance(exc, TooManyAttempts):
        minutes = max(1, -(-exc.retry_after // 60))
        response = _render(
            "error.html",
            429,
            locale,
            organization=None,
            title=messages.text(locale, "too_many_title"),
            body=messages.text(locale, "too_many_body", minutes=minutes),
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, LinkNotFound):
        key = "not_found"
        status = 404
    else:
        key = "bad_request"
        status = _status_of(exc)
    return _render(
        "error.html",
        status,
        locale,
        organization=None,
        title=messages.text(locale, f"{key}_title"),
        body=messages.text(locale, f"{key}_body"),
    )


def _status_of(exc: Exception) -> int:
    if isinstance(exc, PulseError):
        return exc.status
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code
    return 422


# --- The route class --------------------------------------------------------------------


def is_bad_token(exc: Exception) -> bool:
    """A token the request-wide NUL check refused is a malformed token: 404 like any
    other, not a 422 that would tell it apart."""
    return isinstance(exc, Unprocessable) and any(
        e.get("loc", [])[:1] == ["path"] for e in exc.errors or []
    )


def _link_error(request: Request, exc: Exception) -> Exception | None:
    """The error to answer with (a failed lookup may become 429), or None to let an
    unexpected exception through to the last-resort 500 handler."""
    if isinstance(exc, LinkNotFound) or is_bad_token(exc):
        wait = limiter_for(request.app).record_failure(client_key(request))
        return TooManyAttempts(wait) if wait is not None else LinkNotFound()
    if isinstance(exc, PulseError | RequestValidationError | StarletteHTTPException):
        return exc
    return None


async def problem_from_handlers(request: Request, exc: Exception) -> Response:
    """problem+json from the app's own handlers, so the twin's errors read exactly like
    the rest of the API's."""
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            response = handlers[cls](request, exc)
            if inspect.isawaitable(response):
                response = await response
            assert isinstance(response, Response)
            return response
    raise exc


class LinkRoute(APIRoute):
    """Routes behind a personal link (survey and meeting pages, and their JSON twins):
    every answer, errors included, carries the link headers and the CSP; a failed
    lookup counts against the client and may become a 429. Subclasses say how an error
    reads (a page or problem+json) and may refine which errors are the link's."""

    csp: ClassVar[str]

    def link_error(self, request: Request, exc: Exception) -> Exception | None:
        return _link_error(request, exc)

    async def error_response(self, request: Request, exc: Exception) -> Response:
        raise NotImplementedError

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            # Errors are answered here, inside the route, so they get the headers too.
            # Swallowing them is safe: a refused answer has already rolled the request's
            # transaction back (answering._submit), and the session dependency rolls back
            # whatever else raised.
            try:
                response = await handler(request)
            except Exception as exc:
                error = self.link_error(request, exc)
                if error is None:
                    raise
                response = await self.error_response(request, error)
            response.headers.update(LINK_HEADERS)
            response.headers["Content-Security-Policy"] = self.csp
            return response

        return handle


class _PageRoute(LinkRoute):
    csp = PAGE_CSP

    async def error_response(self, request: Request, exc: Exception) -> Response:
        return _error_page(request, exc)


class _JSONRoute(LinkRoute):
    csp = JSON_CSP

    async def error_response(self, request: Request, exc: Exception) -> Response:
        return await problem_from_handlers(request, exc)


# --- The pages --------------------------------------------------------------------------


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _html("The form could not be read"),
    404: _html("Unknown or malformed link"),
    410: _html("The survey has closed; the page says when"),
    429: _html("Too many links that do not work from this address; see Retry-After"),
}

pages_router = APIRouter(tags=["answering"], route_class=_PageRoute)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@pages_router.get(
    "/r/{token:token}",
    response_class=HTMLResponse,
    responses={**PAGE_RESPONSES, 422: _html("The request could not be read")},
)
async def survey_page(token: str, request: Request, session: Session) -> HTMLResponse:
    """The survey page of a personal link, in the employee's language; opening it
    changes nothing. An answered link shows the thank-you page."""
    link = await answering.open_link(session, _settings(request), token)
    if link.answered:
        return _thanks_page(link, already=True)
    return _survey_page(link)


async def _form_items(request: Request) -> list[tuple[str, str]]:
    try:
        form = await request.form()
    except StarletteHTTPException:  # a body that does not parse as the form it claims
        raise PulseError("the form could not be read", code="bad_form") from None
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


@pages_router.post(
    "/r/{token:token}",
    response_class=HTMLResponse,
    responses={
        **PAGE_RESPONSES,
        409: _html("This link has already been used to answer"),
        422: _html("The form again, each error beside its question, the answers kept"),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": {
                            "anyOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"type": "string"}},
                            ]
                        },
                    },
                    "example": {"enps": "9", "workload": "4", "comment": "More focus time"},
                }
            },
        }
    },
)
async def submit_page(token: str, request: Request, session: Session) -> HTMLResponse:
    """The survey form's submission (field name = question key); answers the thank-you
    page, or the form again with each error beside its question."""
    items = await _form_items(request)
    try:
        link = await answering.submit_form(session, _settings(request), token, items)
    except AnswersInvalid as exc:
        locale = messages.ui_locale(exc.link.wanted_locales)
        values: dict[str, list[str]] = {}
        for name, value in items:
            values.setdefault(name, []).append(value)
        errors = {
            p.key: messages.text(locale, p.code, **p.params)
            for p in exc.problems
            if p.code != "err_unknown"
        }
        return _survey_page(exc.link, values=values, errors=errors, status=422)
    return _thanks_page(link, already=False)


# --- The JSON twin ----------------------------------------------------------------------

respond_router = APIRouter(
    tags=["answering"],
    route_class=_JSONRoute,
    responses={
        **error_responses(400, 404, 422),
        429: {
            **error_responses(429)[429],
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    },
)


@respond_router.get("/v1/respond/{token:token}", response_model=RespondRead)
async def read_survey(token: str, request: Request, session: Session) -> RespondRead:
    """A personal link's survey as JSON: the questions in the employee's language,
    `closes_at` and `already_answered`. No API key: the link is the credential."""
    link = await answering.open_link(session, _settings(request), token)
    return answering.survey_view(link)


@respond_router.post(
    "/v1/respond/{token:token}",
    response_model=RespondResult,
    status_code=201,
    responses=error_responses(409, 410),
)
async def respond(
    token: str, body: RespondBody, request: Request, session: Session
) -> RespondResult:
    """Answer a personal link's survey once: 409 when the link was used, 410 when the
    wave has closed, 422 naming the question key of each invalid answer."""
    link = await answering.submit(session, _settings(request), token, body.answers)
    return RespondResult(anonymous=link.anonymous)
