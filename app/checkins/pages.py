"""HTTP for personal meeting links: the participant's page (``/m/{token}``, server-rendered,
no JavaScript), its calendar file (``/m/{token}/invite.ics``) and its JSON twin
(``/v1/meetings/{token}``) for apps. Thin: every rule is in page_service.py.

The link rules are the survey links' (app/surveys/pages.py), and so are the pieces that
enforce them, reused rather than copied: the failed-lookup limiter (a guessed token
counts against the client, a valid one never does), the link headers (no referrer, no
store, no index) and the language helpers. Each router's route class answers every
error itself, inside the route, so errors carry the headers too: a page in the reader's
language, or problem+json like the rest of the API. The token is a ``{token:token}`` path
parameter (the survey pages register that convertor: anything after the prefix, line
breaks and slashes included), so every malformed token gets the same 404 and counts
the same.

The page's style is the survey pages' sheet plus this page's own, two inline sheets both
named by SHA-256 in the Content-Security-Policy, which allows nothing else but forms
posting back here. Every change is a POST of one small form (its ``action`` in a hidden
field) answered 303 back to the page (Post/Redirect/Get), so a reload never repeats it;
a form that does not validate gets the page again, 422, the error beside that form and
what was typed kept."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Body, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.checkins import messages, page_service
from app.checkins.page_service import (
    ACTION_EXAMPLES,
    ActionInvalid,
    CheckinClosed,
    MeetingAction,
    MeetingCancelled,
    MeetingDocument,
    MeetingLinkNotFound,
    MeetingNotStarted,
    NotYourRole,
)
from app.core.config import Settings
from app.core.errors import PulseError, error_responses
from app.organizations.dependencies import Session
from app.surveys import messages as survey_messages
from app.surveys.pages import CSS as SHARED_CSS
from app.surveys.pages import (
    JSON_CSP,
    STYLE_HASH,
    LinkRoute,
    is_bad_token,
    problem_from_handlers,
)
from app.surveys.ratelimit import TooManyAttempts, client_key, limiter_for

# --- Rendering --------------------------------------------------------------------------


def _fill(template: str, **params: Any) -> Markup:
    """A message with its placeholders filled; Markup values (a <time>) stay markup,
    everything else is escaped."""
    return Markup(escape(template)).format(**params)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("app.checkins", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fill"] = _fill
    return env


# Our own file, rendered once: safe to mark as markup.
CSS = Markup(_environment().get_template("_style.html").render().strip())
OWN_STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
PAGE_CSP = (
    f"default-src 'none'; style-src '{STYLE_HASH}' '{OWN_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

# Where each form sends the reader back to after it is done.
ANCHORS = {
    "submit_checkin": "checkin",
    "add_talking_point": "talking-points",
    "toggle_talking_point": "talking-points",
    "add_action_item": "action-items",
    "toggle_action_item": "action-items",
    "save_note": "note",
    "set_status": "meeting-status",
}


def _zone(timezone: str) -> tuple[ZoneInfo, str]:
    try:
        return ZoneInfo(timezone), timezone
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC"), "UTC"


def _when(moment: datetime, timezone: str) -> Markup:
    """A time for people: in their zone, ISO-like (readable in every language, no
    locale data needed), isolated so a right-to-left sentence does not reorder it."""
    zone, name = _zone(timezone)
    moment = moment.replace(microsecond=0)  # a cancelled meeting may sit a µs off its time
    return Markup('<bdi><time datetime="{}">{} ({})</time></bdi>').format(
        moment.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        moment.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        name,
    )


def _day(moment: datetime, timezone: str) -> Markup:
    zone, _ = _zone(timezone)
    local = moment.astimezone(zone)
    return Markup('<bdi><time datetime="{}">{}</time></bdi>').format(
        local.date().isoformat(), local.strftime("%Y-%m-%d")
    )


def _render(template: str, status: int, locale: str, **context: Any) -> HTMLResponse:
    page_language = survey_messages.language(locale)

    def lang_attrs(tag: str | None) -> Markup:
        """lang/dir on a prompt written in another language than the page's."""
        if not tag or survey_messages.language(tag) == page_language:
            return Markup("")
        return Markup(' lang="{}" dir="{}"').format(tag, survey_messages.direction(tag))

    html = (
        _environment()
        .get_template(template)
        .render(
            lang=locale,
            dir=survey_messages.direction(locale),
            shared_css=SHARED_CSS,
            css=CSS,
            t=messages.strings(locale),
            lang_attrs=lang_attrs,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status)


def _answer_text(question: Any, value: Any, locale: str) -> str | None:
    """One check-in answer as words for the page (an option's label, yes/no, n / max)."""
    if value is None:
        return None
    if question is None:
        return str(value)
    if question.kind in ("enps", "rating"):
        return f"{value} / {question.max}"
    if question.kind == "yes_no":
        return messages.text(locale, "yes" if value else "no")
    if question.kind in ("single_choice", "multi_choice"):
        labels = {o.key: o.label for o in question.options or []}
        chosen = value if isinstance(value, list) else [value]
        return ", ".join(labels.get(str(v), str(v)) for v in chosen)
    return str(value)


def _form_values(doc: MeetingDocument) -> dict[str, list[str]]:
    """Sent answers as the form's fields, so changing them starts from what was sent."""
    values: dict[str, list[str]] = {}
    for key, value in (doc.checkin.answers or {}).items():
        if isinstance(value, bool):
            values[key] = ["yes" if value else "no"]
        elif isinstance(value, list):
            values[key] = [str(v) for v in value]
        elif value is not None:
            values[key] = [str(value)]
    return values


async def _meeting_page(
    session: AsyncSession,
    request: Request,
    token: str,
    access: page_service.Access,
    *,
    failed: ActionInvalid | None = None,
    items: Sequence[tuple[str, str]] = (),
    status: int = 200,
) -> HTMLResponse:
    doc = await page_service.meeting_document(session, access)
    locale = doc.locale
    questions = {q.key: q for q in doc.questions}
    answers = [
        {
            "prompt": q.prompt,
            "prompt_locale": q.prompt_locale,
            "text": _answer_text(q, (doc.checkin.answers or {}).get(q.key), locale),
            # Free text takes its own direction; a score reads left to right ("4 / 5",
            # not "5 / 4") on an Arabic page too; the rest follows the page.
            "auto": q.kind == "text",
            "ltr": q.kind in ("enps", "rating"),
        }
        for q in doc.questions
    ]
    # Answers to questions the series no longer asks are still shown, under their key.
    answers += [
        {
            "prompt": key,
            "prompt_locale": None,
            "text": _answer_text(None, value, locale),
            "auto": True,
            "ltr": False,
        }
        for key, value in (doc.checkin.answers or {}).items()
        if key not in questions
    ]
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    checkin_values = _form_values(doc)
    if failed is not None:
        for problem in failed.problems:
            if problem.code == "err_unknown":
                continue
            errors.setdefault(
                problem.field_name, messages.text(locale, problem.code, **problem.params)
            )
        for name, value in items:
            values.setdefault(name, value)
        if failed.form == "checkin":
            checkin_values = {}
            for name, value in items:
                if name in questions:
                    checkin_values.setdefault(name, []).append(value)
    root = request.scope.get("root_path", "")
    return _render(
        "meeting.html",
        status,
        locale,
        doc=doc,
        title=messages.text(locale, "title", name=doc.meeting.other_person),
        when=_when(doc.meeting.scheduled_at, doc.meeting.timezone),
        day=lambda moment: _day(moment, doc.meeting.timezone),
        stamp=lambda moment: _when(moment, doc.meeting.timezone),
        answers=answers,
        checkin_values=checkin_values,
        failed=failed.form if failed is not None else None,
        errors=errors,
        values=values,
        ics_href=f"{root}/m/{token}/invite.ics",
        item_max=page_service.ITEM_MAX,
        note_max=page_service.NOTE_MAX,
    )


def _error_page(request: Request, exc: Exception) -> HTMLResponse:
    """The page for an error: in the link holder's language when we know whose link it
    is, else in the browser's (Accept-Language)."""
    token = request.path_params.get("token", "")
    back = f"{request.scope.get('root_path', '')}/m/{token}"
    if isinstance(
        exc, MeetingCancelled | NotYourRole | CheckinClosed | MeetingNotStarted | ActionInvalid
    ):
        access = exc.access
        locale = access.ui_locale
        context: dict[str, Any] = {"organization": access.organization_name, "back": back}
        if isinstance(exc, MeetingCancelled):
            return _render(
                "error.html",
                410,
                locale,
                organization=access.organization_name,
                back=None,
                title=messages.text(locale, "cancelled_title"),
                body=_fill(
                    messages.text(locale, "cancelled_body"),
                    when=_when(access.scheduled_at, access.timezone),
                ),
            )
        if isinstance(exc, NotYourRole):
            title = messages.text(locale, "forbidden_title")
            body = messages.text(locale, exc.message)
        elif isinstance(exc, CheckinClosed):
            title = messages.text(locale, "checkin_closed_title")
            body = messages.text(
                locale, exc.message, status=messages.text(locale, f"status_{access.status}")
            )
        elif isinstance(exc, MeetingNotStarted):
            title = messages.text(locale, "not_started_title")
            body = _fill(
                messages.text(locale, "not_started_body"),
                when=_when(access.scheduled_at, access.timezone),
            )
        else:
            title, body = messages.text(locale, "error"), messages.text(locale, "err_form")
        return _render("error.html", exc.status, locale, title=title, body=body, **context)
    locale = survey_messages.ui_locale(
        survey_messages.from_accept_language(request.headers.get("accept-language"))
    )
    if isinstance(exc, TooManyAttempts):
        minutes = max(1, -(-exc.retry_after // 60))
        response = _render(
            "error.html",
            429,
            locale,
            organization=None,
            back=None,
            title=messages.text(locale, "too_many_title"),
            body=messages.text(locale, "too_many_body", minutes=minutes),
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, MeetingLinkNotFound):
        key, status = "not_found", 404
    else:
        key, status = "bad_request", _status_of(exc)
    return _render(
        "error.html",
        status,
        locale,
        organization=None,
        back=None,
        title=messages.text(locale, f"{key}_title"),
        body=messages.text(locale, f"{key}_body"),
    )


def _status_of(exc: Exception) -> int:
    if isinstance(exc, PulseError):
        return exc.status
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code
    return 422


# --- The route classes ------------------------------------------------------------------


def _link_error(request: Request, exc: Exception) -> Exception | None:
    """The error to answer with (a failed lookup may become 429), or None to let an
    unexpected exception through to the last-resort 500 handler."""
    if isinstance(exc, MeetingLinkNotFound) or is_bad_token(exc):
        wait = limiter_for(request.app).record_failure(client_key(request))
        return TooManyAttempts(wait) if wait is not None else MeetingLinkNotFound()
    if isinstance(exc, RequestValidationError):
        return _tidy_validation(exc)
    if isinstance(exc, PulseError | StarletteHTTPException):
        return exc
    return None


def _tidy_validation(exc: RequestValidationError) -> RequestValidationError:
    """The action body's errors named by field (``text``, ``action``), not by the
    union's tag, so a 422 reads the same whichever action it was."""
    errors = []
    for error in exc.errors():
        loc, msg = page_service.tidy_error_loc(error)
        errors.append({**error, "loc": loc, "msg": msg})
    return RequestValidationError(errors, body=exc.body)


class _PageRoute(LinkRoute):
    csp = PAGE_CSP

    def link_error(self, request: Request, exc: Exception) -> Exception | None:
        return _link_error(request, exc)

    async def error_response(self, request: Request, exc: Exception) -> Response:
        return _error_page(request, exc)


class _JSONRoute(LinkRoute):
    csp = JSON_CSP

    def link_error(self, request: Request, exc: Exception) -> Exception | None:
        return _link_error(request, exc)

    async def error_response(self, request: Request, exc: Exception) -> Response:
        return await problem_from_handlers(request, exc)


# --- The pages --------------------------------------------------------------------------


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _html("The form could not be read"),
    404: _html("Unknown or malformed link"),
    410: _html("The meeting was cancelled; the page says so"),
    422: _html("A malformed link or request"),
    429: _html("Too many links that do not work from this address; see Retry-After"),
}

pages_router = APIRouter(tags=["one-on-ones"], route_class=_PageRoute)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@pages_router.get(
    "/m/{token:token}/invite.ics",
    response_class=Response,
    responses={
        200: {
            "description": "The meeting as iCalendar: METHOD:REQUEST, or CANCEL once cancelled",
            "content": {"text/calendar": {"schema": {"type": "string"}}},
        },
        **{s: r for s, r in PAGE_RESPONSES.items() if s != 410},
    },
)
async def meeting_invite(token: str, request: Request, session: Session) -> Response:
    """The meeting as an iCalendar file with this person's link in it; a cancelled
    meeting answers its CANCEL, so a calendar that fetches it drops the event."""
    body, _method = await page_service.invite(session, _settings(request), token)
    return Response(
        body,
        media_type="text/calendar",
        headers={"Content-Disposition": 'inline; filename="invite.ics"'},
    )


@pages_router.get("/m/{token:token}", response_class=HTMLResponse, responses=PAGE_RESPONSES)
async def meeting_page(token: str, request: Request, session: Session) -> HTMLResponse:
    """A participant's meeting page, in their language: the check-in (the form for the
    report before the meeting, the answers for both once sent), talking points, action
    items with the open ones carried over, and their own private notes. Opening it
    changes nothing."""
    access = await page_service.open_meeting(session, _settings(request), token)
    return await _meeting_page(session, request, token, access)


async def _form_items(request: Request) -> list[tuple[str, str]]:
    try:
        form = await request.form()
    except StarletteHTTPException:  # a body that does not parse as the form it claims
        raise PulseError("the form could not be read", code="bad_form") from None
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


@pages_router.post(
    "/m/{token:token}",
    status_code=303,
    response_class=Response,
    responses={
        303: {
            "description": "Done: back to the page (Post/Redirect/Get)",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **PAGE_RESPONSES,
        403: _html("An action for the other participant (marking held/skipped, the check-in)"),
        409: _html(
            "The check-in is closed (the meeting is no longer scheduled, or the series asks "
            "no questions), or the meeting is marked held before it has started"
        ),
        422: _html("The page again, the error beside its form, what was typed kept"),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {"action": {"type": "string", "enum": list(ANCHORS)}},
                        "required": ["action"],
                        "additionalProperties": {"type": "string"},
                    },
                    "example": {"action": "add_talking_point", "text": "Conference budget"},
                }
            },
        }
    },
)
async def meeting_form(token: str, request: Request, session: Session) -> Response:
    """One form of the page (its ``action`` field says which: submit_checkin,
    add_talking_point, toggle_talking_point, add_action_item, toggle_action_item,
    save_note, set_status); answers 303 back to the page."""
    items = await _form_items(request)
    try:
        await page_service.act_on_form(session, _settings(request), token, items)
    except ActionInvalid as exc:
        if exc.form == "form":  # not one of the page's forms: nothing to show it beside
            raise
        return await _meeting_page(
            session, request, token, exc.access, failed=exc, items=items, status=422
        )
    action = next((value for name, value in items if name == "action"), "")
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/m/{token}#{ANCHORS.get(action, 'checkin')}", status_code=303)


# --- The JSON twin ----------------------------------------------------------------------

api_router = APIRouter(
    tags=["one-on-ones"],
    route_class=_JSONRoute,
    responses={
        **error_responses(400, 404, 410, 422),
        429: {
            **error_responses(429)[429],
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    },
)


@api_router.get("/v1/meetings/{token:token}", response_model=MeetingDocument)
async def read_meeting(token: str, request: Request, session: Session) -> MeetingDocument:
    """A participant's meeting as JSON: the meeting, the check-in questions in their
    language, the answers once sent, talking points, action items (with those carried
    over) and their own private note. No API key: the link is the credential."""
    access = await page_service.open_meeting(session, _settings(request), token)
    return await page_service.meeting_document(session, access)


def _examples(examples: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: {"summary": name, "value": value} for name, value in examples.items()}


@api_router.post(
    "/v1/meetings/{token:token}",
    response_model=MeetingDocument,
    responses=error_responses(403, 409),
)
async def meeting_action(
    token: str,
    action: Annotated[MeetingAction, Body(openapi_examples=_examples(ACTION_EXAMPLES))],
    request: Request,
    session: Session,
) -> MeetingDocument:
    """Change the meeting through a link, one action per request; answers the meeting
    as it now is. 403 for the other side's actions (set_status is the manager's,
    submit_checkin the report's), 409 for a check-in once the meeting is no longer
    scheduled or when the series asks no questions, and for marking a meeting held
    before it has started (skipped may be set ahead, scheduled undoes either), 422
    naming each bad field."""
    access = await page_service.act(session, _settings(request), token, action)
    return await page_service.meeting_document(session, access)
