"""Answering a survey through a personal link (api.md, "Answering"; architecture.md,
"Anonymity by default" and "Personal links").

Finding a link is one indexed query on the SHA-256 of the token, whether or not the
token exists (malformed tokens included), so a link that exists answers no sooner than
one that does not, and the database never sees a token.

Submitting claims first: the first statement is the conditional
``UPDATE invitation SET answered = true WHERE token_hash = :h AND answered = false``, and
the response is inserted in the same transaction only if that update changed one row.
Concurrent submissions with one token queue on that row and all but one change nothing
(409), so the database itself keeps one answer per invitation. Claiming before reading
also keeps SQLite from failing with ``SQLITE_BUSY_SNAPSHOT`` under load: a transaction
whose first statement writes waits for the write lock, one that read first cannot. The
claim, the checks and the inserts run in a SAVEPOINT, so a rejected submission (closed
wave, invalid answers) leaves nothing behind whatever the caller does with the error.

What is stored follows the anonymity rules: for an anonymous survey the response has a
random uuid4 id, no employee or invitation id and only the day it came in, plus the
reporting segments the invitation copied from the directory when the wave opened; the
invitation keeps only its ``answered`` flag. An attributed survey (``anonymous: false``)
also keeps the employee id. Nothing here logs: a line per answer would carry its time."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import CursorResult, Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, PulseError, Unprocessable
from app.employees.models import Employee
from app.organizations.models import Organization
from app.surveys import links, messages
from app.surveys.models import Answer, Invitation, Response, Survey, Wave
from app.surveys.schemas import DEFAULT_ENPS_PROMPT, TEXT_MAX, QuestionKind

# --- What a link opens ------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """Everything a link's pages need, as plain values: it is read before a SAVEPOINT
    may roll back, and ORM objects would expire (and lazy-load) after that."""

    invitation_id: uuid.UUID
    wave_id: uuid.UUID
    survey_id: uuid.UUID
    organization_id: uuid.UUID
    employee_id: uuid.UUID
    team: str | None
    department: str | None
    manager_id: uuid.UUID | None
    attributes: dict[str, Any]
    locale: str
    answered: bool
    wave_status: str
    closes_at: datetime
    closed_at: datetime | None
    questions: list[dict[str, Any]]
    anonymous: bool
    min_group_size: int
    survey_name: str
    organization_name: str
    default_locale: str
    timezone: str

    def closed_since(self, now: datetime) -> datetime | None:
        """When the wave closed, or None while it is open. A wave past its window counts
        as closed even before the worker's next tick marks it."""
        if self.wave_status == "closed":
            return self.closed_at or self.closes_at
        return self.closes_at if self.closes_at <= now else None

    @property
    def wanted_locales(self) -> list[str]:
        return messages.preference_chain(self.locale, self.default_locale)


class LinkNotFound(NotFound):
    """Unknown, malformed or retired token; one answer for all three, so the answer
    tells a guesser nothing."""

    code = "link_not_found"

    def __init__(self) -> None:
        super().__init__("no survey at this link: check that the whole link was copied")


class WaveClosed(PulseError):
    status, code = 410, "wave_closed"

    def __init__(self, link: Link, closed_at: datetime) -> None:
        super().__init__(
            f"this survey closed at {closed_at.isoformat()}; answers are no longer taken"
        )
        self.link = link
        self.closed_at = closed_at


class AlreadyAnswered(Conflict):
    code = "already_answered"

    def __init__(self, link: Link) -> None:
        super().__init__("this link has already been used to answer the survey")
        self.link = link


@dataclass(frozen=True)
class AnswerProblem:
    """One invalid answer: ``detail`` is the API's English message, ``code`` and
    ``params`` let a page say it in the reader's language (see messages.py)."""

    key: str
    code: str
    detail: str
    params: dict[str, Any] = field(default_factory=dict)


class AnswersInvalid(Unprocessable):
    def __init__(self, link: Link, problems: Sequence[AnswerProblem]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(
            f"answers.{first.key}: {first.detail}{more}",
            errors=[{"loc": ["body", "answers", p.key], "msg": p.detail} for p in problems],
        )
        self.link = link
        self.problems = list(problems)


def _link_query(token_hash: Any) -> Any:
    return (
        select(
            Invitation.id.label("invitation_id"),
            Invitation.wave_id,
            Invitation.employee_id,
            Invitation.key_id,
            Invitation.team,
            Invitation.department,
            Invitation.manager_id,
            Invitation.attributes,
            Invitation.locale,
            Invitation.answered,
            Wave.survey_id,
            Wave.organization_id,
            Wave.status.label("wave_status"),
            Wave.closes_at,
            Wave.closed_at,
            Wave.questions,
            Wave.anonymous,
            Wave.min_group_size,
            Survey.name.label("survey_name"),
            Organization.name.label("organization_name"),
            Organization.default_locale,
            Organization.default_timezone,
            Employee.timezone.label("employee_timezone"),
        )
        .join(Wave, Wave.id == Invitation.wave_id)
        .join(Survey, Survey.id == Wave.survey_id)
        .join(Organization, Organization.id == Wave.organization_id)
        .outerjoin(Employee, Employee.id == Invitation.employee_id)
        .where(Invitation.token_hash == token_hash)
    )


# Statements built once: compiling them per answer (a 23-column, 4-join select, the
# ORM's update and bulk-insert paths) was a large share of each submission's CPU.
_LINK_BY_HASH = _link_query(bindparam("token_hash"))


async def _find(session: AsyncSession, settings: Settings, token_hash: str) -> Link:
    row = (await session.execute(_LINK_BY_HASH, {"token_hash": token_hash})).one_or_none()
    # A link signed by a key that is no longer listed is dead: dropping a key from
    # PULSE_OLD_SECRET_KEYS is how an operator retires (or revokes) the links it made.
    if row is None or row.key_id not in links.signing_keys(settings):
        raise LinkNotFound()
    return Link(
        invitation_id=row.invitation_id,
        wave_id=row.wave_id,
        survey_id=row.survey_id,
        organization_id=row.organization_id,
        employee_id=row.employee_id,
        team=row.team,
        department=row.department,
        manager_id=row.manager_id,
        attributes=dict(row.attributes or {}),
        locale=row.locale,
        answered=row.answered,
        wave_status=row.wave_status,
        closes_at=row.closes_at,
        closed_at=row.closed_at,
        questions=list(row.questions),
        anonymous=row.anonymous,
        min_group_size=row.min_group_size,
        survey_name=row.survey_name,
        organization_name=row.organization_name,
        default_locale=row.default_locale,
        timezone=row.employee_timezone or row.default_timezone,
    )


def _check_open(link: Link, now: datetime) -> None:
    closed_at = link.closed_since(now)
    if closed_at is not None:
        raise WaveClosed(link, closed_at)


async def open_link(session: AsyncSession, settings: Settings, token: str) -> Link:
    """The link's survey, for reading: LinkNotFound or WaveClosed when it cannot be
    answered. Reads only; a GET (or a mail scanner) changes nothing."""
    link = await _find(session, settings, links.hash_token(token))
    _check_open(link, utcnow())
    return link


# --- The survey as the employee sees it ------------------------------------------------


class OptionRead(BaseModel):
    key: str
    label: str
    locale: str | None = Field(description="The locale the label is written in, if known.")


class Anchors(BaseModel):
    low: str = Field(description="What the lowest value means, e.g. 'not at all likely'.")
    high: str = Field(description="What the highest value means, e.g. 'extremely likely'.")


class QuestionRead(BaseModel):
    key: str
    kind: QuestionKind
    prompt: str
    prompt_locale: str | None = Field(
        description="The locale the prompt is written in, when the survey gave it per locale."
    )
    required: bool
    min: int | None = Field(default=None, description="enps and rating: the lowest value.")
    max: int | None = Field(default=None, description="enps and rating: the highest value.")
    anchors: Anchors | None = None
    options: list[OptionRead] | None = None
    max_length: int | None = Field(default=None, description="text: the most characters.")


class RespondRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "survey": "Monthly pulse",
                    "organization": "Acme",
                    "locale": "en",
                    "dir": "ltr",
                    "anonymous": True,
                    "notice": "This survey is anonymous. …",
                    "closes_at": "2027-03-20T08:00:00Z",
                    "timezone": "Europe/Berlin",
                    "already_answered": False,
                    "questions": [
                        {
                            "key": "enps",
                            "kind": "enps",
                            "prompt": "How likely are you to recommend Acme as a place to work?",
                            "prompt_locale": "en",
                            "required": True,
                            "min": 0,
                            "max": 10,
                            "anchors": {"low": "not at all likely", "high": "extremely likely"},
                        }
                    ],
                }
            ]
        }
    )

    survey: str
    organization: str
    locale: str = Field(description="The language of the page's own words (en, fr or ar).")
    dir: Literal["ltr", "rtl"]
    anonymous: bool
    notice: str = Field(description="Whether and how the answers are anonymous, to show.")
    closes_at: datetime
    timezone: str = Field(description="The employee's time zone, to show closes_at in.")
    already_answered: bool
    questions: list[QuestionRead]


class RespondBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"answers": {"enps": 9, "workload": 4, "comment": "More focus time"}}]
        },
    )

    answers: dict[str, Any] = Field(
        description=(
            "Question key → answer: enps and rating a whole number (9 or 9.0), yes_no a "
            "boolean, single_choice an option key, multi_choice a list of option keys, "
            "text a string. Leave out (or null) a question to skip it."
        )
    )


class RespondResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "recorded", "anonymous": True}]}
    )

    status: Literal["recorded"] = "recorded"
    anonymous: bool


def _localized(value: str | Mapping[str, str], wanted: Sequence[str]) -> tuple[str, str | None]:
    if isinstance(value, str):
        return value, None
    tag = messages.negotiate(wanted, value.keys()) or next(iter(value))
    return value[tag], tag


def _question_read(question: Mapping[str, Any], link: Link, ui: str) -> QuestionRead:
    kind = question["kind"]
    prompt_value = question.get("prompt")
    if prompt_value is None:  # only eNPS may leave it out: the built-in prompt
        prompt, prompt_locale = _localized(DEFAULT_ENPS_PROMPT, link.wanted_locales)
        prompt = prompt.replace("{org}", link.organization_name)
    else:
        prompt, prompt_locale = _localized(prompt_value, link.wanted_locales)
    out = QuestionRead(
        key=question["key"],
        kind=kind,
        prompt=prompt,
        prompt_locale=prompt_locale,
        required=bool(question.get("required", True)),
    )
    if kind in ("enps", "rating"):
        out.min, out.max = _bounds(question)
    if kind == "enps":
        out.anchors = Anchors(
            low=messages.text(ui, "enps_low"), high=messages.text(ui, "enps_high")
        )
    if kind in ("single_choice", "multi_choice"):
        out.options = []
        for option in question.get("options") or []:
            label, locale = _localized(option["label"], link.wanted_locales)
            out.options.append(OptionRead(key=option["key"], label=label, locale=locale))
    if kind == "text":
        out.max_length = TEXT_MAX
    return out


def survey_view(link: Link) -> RespondRead:
    """The link's questions in the employee's language (their locale, then the
    organization's default, then English), with the page's own words to match."""
    ui = messages.ui_locale(link.wanted_locales)
    notice = (
        messages.text(ui, "anonymous", min=link.min_group_size)
        if link.anonymous
        else messages.text(ui, "attributed")
    )
    return RespondRead(
        survey=link.survey_name,
        organization=link.organization_name,
        locale=ui,
        dir="rtl" if messages.direction(ui) == "rtl" else "ltr",
        anonymous=link.anonymous,
        notice=notice,
        closes_at=link.closes_at,
        timezone=link.timezone,
        already_answered=link.answered,
        questions=[_question_read(q, link, ui) for q in link.questions],
    )


# --- Checking answers -------------------------------------------------------------------


@dataclass(frozen=True)
class _Stored:
    score: int | None = None
    choices: list[str] | None = None
    text: str | None = None


class _Invalid(Exception):
    def __init__(self, code: str, detail: str, **params: Any) -> None:
        super().__init__(detail)
        self.code, self.detail, self.params = code, detail, params


def _bounds(question: Mapping[str, Any]) -> tuple[int, int]:
    if question["kind"] == "enps":
        return 0, 10
    return 1, int(question.get("scale") or 5)


def _whole_number(value: Any) -> int | None:
    """``value`` as a score, or None. JSON has one number type, and chat bots and
    JavaScript clients often send 9 as 9.0; True is refused although Python counts it
    as 1."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _option_keys(question: Mapping[str, Any]) -> list[str]:
    return [str(o["key"]) for o in question.get("options") or []]


def _is_skipped(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, list) and not value)
    )


def _clean(question: Mapping[str, Any], value: Any) -> _Stored:
    """The stored form of one given answer, or _Invalid saying what is wrong."""
    kind = question["kind"]
    if kind in ("enps", "rating"):
        low, high = _bounds(question)
        score = _whole_number(value)
        if score is None or not low <= score <= high:
            raise _Invalid(
                "err_scale", f"must be a whole number from {low} to {high}", min=low, max=high
            )
        return _Stored(score=score)
    if kind == "yes_no":
        if not isinstance(value, bool):
            raise _Invalid("err_yes_no", "must be true or false")
        return _Stored(score=int(value))
    options = _option_keys(question)
    if kind == "single_choice":
        if not isinstance(value, str) or value not in options:
            raise _Invalid("err_choice", "must be one of: " + ", ".join(options))
        return _Stored(choices=[value])
    if kind == "multi_choice":
        if not isinstance(value, list) or any(
            not isinstance(v, str) or v not in options for v in value
        ):
            raise _Invalid(
                "err_choices", "must be a list of option keys from: " + ", ".join(options)
            )
        return _Stored(choices=[o for o in options if o in value])  # survey order, no repeats
    if not isinstance(value, str):
        raise _Invalid("err_text", "must be a string")
    # A form field may carry %00, which the request-wide NUL check (on raw bytes) cannot
    # see and PostgreSQL text cannot store.
    if "\x00" in value:
        raise _Invalid("err_text", "must not contain NUL characters")
    # Browsers send line breaks as CRLF but count them as one character against
    # maxlength; normalise first so the page and the server agree on the length.
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > TEXT_MAX:
        raise _Invalid(
            "err_too_long",
            f"at most {TEXT_MAX} characters (this has {len(text)})",
            max=TEXT_MAX,
            length=len(text),
        )
    return _Stored(text=text)


def check_answers(
    questions: Sequence[Mapping[str, Any]], answers: Mapping[str, Any]
) -> tuple[dict[str, tuple[str, _Stored]], list[AnswerProblem]]:
    """Check answers against a wave's frozen questions: the stored form of each given
    answer (by key, with its kind) and every problem, in question order. A skipped
    question (absent, null, blank text, empty list) stores nothing."""
    known = {str(q["key"]) for q in questions}
    problems = [
        AnswerProblem(key, "err_unknown", f"this survey has no question {key!r}")
        for key in answers
        if key not in known
    ]
    stored: dict[str, tuple[str, _Stored]] = {}
    for question in questions:
        key = str(question["key"])
        value = answers.get(key)
        if _is_skipped(value):
            if question.get("required", True):
                problems.append(AnswerProblem(key, "err_required", "required: give an answer"))
            continue
        try:
            stored[key] = (question["kind"], _clean(question, value))
        except _Invalid as exc:
            problems.append(AnswerProblem(key, exc.code, exc.detail, exc.params))
    return stored, problems


def answers_from_form(
    questions: Sequence[Mapping[str, Any]], items: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """A submitted form (field name = question key) as the same typed answers the JSON
    twin takes, so both are checked by one set of rules. Fields that are no question's
    (a browser extension's, say) are ignored; a value that does not convert is passed
    on as it is and reported by the check."""
    kinds = {str(q["key"]): q["kind"] for q in questions}
    values: dict[str, list[str]] = {}
    for name, value in items:
        if name in kinds:
            values.setdefault(name, []).append(value)
    out: dict[str, Any] = {}
    for key, given in values.items():
        kind = kinds[key]
        if kind == "multi_choice":
            out[key] = [v for v in given if v]
            continue
        value = given[0]
        if not value.strip():
            out[key] = None
        elif kind in ("enps", "rating") and value.isascii() and value.isdigit() and len(value) < 4:
            out[key] = int(value)
        elif kind == "yes_no" and value in ("yes", "no"):
            out[key] = value == "yes"
        else:
            out[key] = value
    return out


# --- Storing ----------------------------------------------------------------------------


_INVITATION = cast(Table, Invitation.__table__)
_CLAIM = (
    update(_INVITATION)
    .where(_INVITATION.c.token_hash == bindparam("claim_hash"), _INVITATION.c.answered.is_(False))
    .values(answered=True)
)
_INSERT_RESPONSE = insert(cast(Table, Response.__table__))
_INSERT_ANSWER = insert(cast(Table, Answer.__table__))


async def _claim(session: AsyncSession, token_hash: str) -> bool:
    result = await session.execute(_CLAIM, {"claim_hash": token_hash})
    return isinstance(result, CursorResult) and result.rowcount == 1


async def _store(
    session: AsyncSession, link: Link, stored: Mapping[str, tuple[str, _Stored]], now: datetime
) -> None:
    response_id = uuid.uuid4()  # random: no order, no time (unlike the UUIDv7 ids elsewhere)
    await session.execute(
        _INSERT_RESPONSE,
        {
            "id": response_id,
            "wave_id": link.wave_id,
            "survey_id": link.survey_id,
            "organization_id": link.organization_id,
            "employee_id": None if link.anonymous else link.employee_id,
            "team": link.team,
            "department": link.department,
            "manager_id": link.manager_id,
            "attributes": link.attributes,
            "answered_on": now.date(),
        },
    )
    if stored:
        await session.execute(
            _INSERT_ANSWER,
            [
                {
                    "response_id": response_id,
                    "question_key": key,
                    "wave_id": link.wave_id,
                    "kind": kind,
                    "score": value.score,
                    "choices": value.choices,
                    "text": value.text,
                }
                for key, (kind, value) in stored.items()
            ],
        )


async def _submit(
    session: AsyncSession,
    settings: Settings,
    token: str,
    decode: Callable[[Link], Mapping[str, Any]],
) -> Link:
    token_hash = links.hash_token(token)
    now = utcnow()
    try:
        claimed = await _claim(session, token_hash)
        link = await _find(session, settings, token_hash)
        _check_open(link, now)
        if not claimed:
            raise AlreadyAnswered(link)
        stored, problems = check_answers(link.questions, decode(link))
        if problems:
            raise AnswersInvalid(link, problems)
        await _store(session, link, stored, now)
    except BaseException:
        # Nothing of a refused answer may stay, the claim included, even though the page
        # handler goes on to answer normally (and its session then commits). A rollback
        # here costs nothing on success, where a SAVEPOINT cost two statements per answer.
        await session.rollback()
        raise
    return link


async def submit(
    session: AsyncSession, settings: Settings, token: str, answers: Mapping[str, Any]
) -> Link:
    """Record one answer to a link's survey: LinkNotFound, WaveClosed, AlreadyAnswered
    or AnswersInvalid otherwise, with nothing written."""
    return await _submit(session, settings, token, lambda _link: answers)


async def submit_form(
    session: AsyncSession, settings: Settings, token: str, items: Sequence[tuple[str, str]]
) -> Link:
    """``submit`` for the HTML form's fields."""
    return await _submit(
        session, settings, token, lambda link: answers_from_form(link.questions, items)
    )
