"""A one-on-one as its two participants see it, through their personal meeting links
(architecture.md, "One-on-ones" and "Personal links"; api.md, "One-on-one check-ins").

A link is found by the SHA-256 of its token in one indexed query, whether or not it
exists, exactly like a survey link; the database never sees a token. Reading changes
nothing (mail scanners and calendar apps open links). Every change is an *action*, the
same typed model whether it comes as JSON from an app or as a form from the page:

- ``submit_checkin``: the report only, while the meeting is scheduled and the series
  asks questions, checked against them by the survey answer rules; replaces earlier
  answers.
- ``add_talking_point`` / ``toggle_talking_point``: shared, either side.
- ``add_action_item`` (text, owner) / ``toggle_action_item``: shared, either side.
- ``save_note``: the writer's private note for this meeting; blank deletes it.
- ``set_status`` held|skipped|scheduled: the manager only. Held only once the meeting
  has started (marking a future meeting held would close the check-in the report is
  still to fill in); skipped at any time, since a manager knows ahead that they will
  miss one, which closes the check-in too; scheduled undoes either, reopening it.

Privacy is structural: the private note is read in one place, filtered by the link's
role, so the other side's note never reaches a page; nothing in this module is reachable
from an admin key.

An action writes the meeting row before it reads anything: on PostgreSQL that locks the
row, so two actions on one meeting (a double-clicked tick, both people at once) queue
instead of racing; on SQLite it takes the write lock first, which a transaction that read
first could fail to get (``SQLITE_BUSY_SNAPSHOT``, see app/surveys/answering.py). The
action itself runs in a SAVEPOINT after every check, so a refused action leaves nothing.

Action items belong to the series. A meeting's page shows its own items and carries over
those of earlier meetings that were still open when the previous meeting ended. One
ticked off since then still shows on this page, done ("done since last time"), and is
carried no further: ticking a carried-over item on the upcoming meeting's page, where
people prepare, does not make it vanish from under their finger, and an item done before
the previous meeting ended never reaches the next one. Items of a cancelled meeting
(whose page answers 410) carry over to every meeting after they were written, or they
would be lost with it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from sqlalchemy import CursorResult, and_, case, delete, desc, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from app.checkins import ics
from app.checkins.models import (
    ActionItem,
    CheckinSeries,
    Meeting,
    MeetingLink,
    PrivateNote,
    TalkingPoint,
)
from app.core.config import Settings
from app.core.db import new_id, utcnow
from app.core.errors import Conflict, Forbidden, NotFound, PulseError, Unprocessable
from app.employees.models import Employee
from app.organizations.models import Organization
from app.surveys import links
from app.surveys import messages as survey_messages
from app.surveys.answering import (
    Anchors,
    AnswerProblem,
    OptionRead,
    QuestionRead,
    answers_from_form,
    check_answers,
)
from app.surveys.schemas import DEFAULT_ENPS_PROMPT, TEXT_MAX

Role = Literal["manager", "report"]
Status = Literal["scheduled", "held", "skipped", "cancelled"]

ITEM_MAX = 500  # a talking point or an action item: a line, not an essay
NOTE_MAX = 10_000

# --- Errors -----------------------------------------------------------------------------


class MeetingLinkNotFound(NotFound):
    """Unknown, malformed or retired token, or a person no longer in the directory: one
    answer for all, so the answer tells a guesser nothing."""

    code = "link_not_found"

    def __init__(self) -> None:
        super().__init__("no meeting at this link: check that the whole link was copied")


class MeetingCancelled(PulseError):
    status, code = 410, "meeting_cancelled"

    def __init__(self, access: Access) -> None:
        super().__init__(
            f"the meeting of {access.scheduled_at.replace(microsecond=0).isoformat()} was "
            "cancelled; a meeting that is only moved keeps its link"
        )
        self.access = access


class NotYourRole(Forbidden):
    """An action the other side of the meeting takes. ``message`` names the page
    string that explains it (messages.py)."""

    code = "wrong_role"

    def __init__(self, access: Access, detail: str, message: str) -> None:
        super().__init__(detail)
        self.access = access
        self.message = message


class CheckinClosed(Conflict):
    """``message`` names the page string that explains it (messages.py)."""

    code = "checkin_closed"
    message = "checkin_closed_body"

    def __init__(self, access: Access, detail: str | None = None) -> None:
        closed = "the check-in can only be sent while the meeting is scheduled"
        super().__init__(detail or f"{closed}; it is {access.status}")
        self.access = access


class NoCheckin(CheckinClosed):
    code = "no_checkin"
    message = "checkin_none"

    def __init__(self, access: Access) -> None:
        super().__init__(access, "this series asks no check-in questions: there is nothing to send")


class MeetingNotStarted(Conflict):
    code = "meeting_not_started"

    def __init__(self, access: Access) -> None:
        super().__init__(
            f"the meeting starts at {access.scheduled_at.isoformat()}; it can be marked held "
            "once it has started (mark it skipped if it will not take place)"
        )
        self.access = access


@dataclass(frozen=True)
class Problem:
    """One invalid field: ``loc`` for the API, ``code``/``params`` for the page's words."""

    loc: tuple[str | int, ...]
    code: str
    detail: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def field_name(self) -> str:
        return str(self.loc[-1]) if self.loc else "body"


class ActionInvalid(Unprocessable):
    """A 422 naming each bad field; ``form`` is the page form it came from, so the page
    can show the errors beside that form with what was typed kept."""

    def __init__(self, access: Access, form: str, problems: Sequence[Problem]) -> None:
        first = problems[0]
        name = ".".join(str(p) for p in first.loc if p != "body") or "body"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(
            f"{name}: {first.detail}{more}",
            errors=[{"loc": list(p.loc), "msg": p.detail} for p in problems],
        )
        self.access = access
        self.form = form
        self.problems = list(problems)


# --- What a link opens ------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """Everything a link's pages need, as plain values read in one query (ORM objects
    would expire, and lazy-load, after a rolled-back SAVEPOINT)."""

    link_id: uuid.UUID
    role: Role
    meeting_id: uuid.UUID
    series_id: uuid.UUID
    organization_name: str
    default_locale: str
    locale: str
    timezone: str
    series_timezone: str
    scheduled_at: datetime
    duration_minutes: int
    status: Status
    sequence: int
    checkin_submitted: bool
    checkin_answers: dict[str, Any] | None
    questions: list[dict[str, Any]]
    other_name: str

    @property
    def wanted_locales(self) -> list[str]:
        return survey_messages.preference_chain(self.locale, self.default_locale)

    @property
    def ui_locale(self) -> str:
        return survey_messages.ui_locale(self.wanted_locales)

    @property
    def can_submit_checkin(self) -> bool:
        return self.role == "report" and self.status == "scheduled" and bool(self.questions)

    def settable_statuses(self, now: datetime) -> list[Status]:
        """What ``set_status`` accepts from this link at ``now`` (see the module
        docstring)."""
        if self.role != "manager" or self.status == "cancelled":
            return []
        started: list[Status] = ["held"] if self.scheduled_at <= now else []
        return [*started, "skipped", "scheduled"]

    @property
    def allowed_actions(self) -> list[str]:
        if self.status == "cancelled":
            return []
        allowed = [
            "add_talking_point",
            "toggle_talking_point",
            "add_action_item",
            "toggle_action_item",
            "save_note",
        ]
        if self.can_submit_checkin:
            allowed.insert(0, "submit_checkin")
        if self.role == "manager":
            allowed.append("set_status")
        return allowed


def _link_query(token_hash: str) -> Any:
    me = aliased(Employee)
    other = aliased(Employee)
    other_id = case(
        (MeetingLink.role == "manager", CheckinSeries.employee_id),
        else_=CheckinSeries.manager_id,
    )
    return (
        select(
            MeetingLink.id.label("link_id"),
            MeetingLink.role,
            MeetingLink.key_id,
            Meeting.id.label("meeting_id"),
            Meeting.series_id,
            Meeting.scheduled_at,
            Meeting.duration_minutes,
            Meeting.status,
            Meeting.sequence,
            Meeting.checkin_submitted,
            Meeting.checkin_answers,
            CheckinSeries.questions,
            CheckinSeries.timezone.label("series_timezone"),
            Organization.name.label("organization_name"),
            Organization.default_locale,
            me.locale,
            me.timezone,
            me.active,
            other.name.label("other_name"),
            other.email.label("other_email"),
        )
        .join(Meeting, Meeting.id == MeetingLink.meeting_id)
        .join(CheckinSeries, CheckinSeries.id == Meeting.series_id)
        .join(Organization, Organization.id == Meeting.organization_id)
        .join(me, me.id == MeetingLink.employee_id)
        .join(other, other.id == other_id)
        .where(MeetingLink.token_hash == token_hash)
    )


async def _find(session: AsyncSession, settings: Settings, token_hash: str) -> Access:
    row = (await session.execute(_link_query(token_hash))).one_or_none()
    # A retired signing key kills its links (as for surveys); so does leaving the
    # directory: someone deactivated keeps no way into the shared items or the notes.
    if row is None or row.key_id not in links.signing_keys(settings) or not row.active:
        raise MeetingLinkNotFound()
    return Access(
        link_id=row.link_id,
        role=row.role,
        meeting_id=row.meeting_id,
        series_id=row.series_id,
        organization_name=row.organization_name,
        default_locale=row.default_locale,
        locale=row.locale,
        timezone=row.timezone or row.series_timezone,
        series_timezone=row.series_timezone,
        scheduled_at=row.scheduled_at,
        duration_minutes=row.duration_minutes,
        status=row.status,
        sequence=row.sequence,
        checkin_submitted=row.checkin_submitted,
        checkin_answers=dict(row.checkin_answers) if row.checkin_answers is not None else None,
        questions=list(row.questions or []),
        other_name=row.other_name or row.other_email,
    )


async def open_meeting(session: AsyncSession, settings: Settings, token: str) -> Access:
    """The meeting behind a link, for reading: MeetingLinkNotFound, or MeetingCancelled
    for a cancelled meeting. Reads only."""
    access = await _find(session, settings, links.hash_token(token))
    if access.status == "cancelled":
        raise MeetingCancelled(access)
    return access


# --- The document both sides read --------------------------------------------------------


class MeetingInfo(BaseModel):
    scheduled_at: datetime
    ends_at: datetime
    duration_minutes: int
    status: Status
    role: Role = Field(description="Whose link this is: the manager's or the report's.")
    other_person: str = Field(description="The other participant's name.")
    organization: str
    timezone: str = Field(description="The reader's time zone, to show times in.")


class CheckinState(BaseModel):
    submitted: bool
    answers: dict[str, Any] | None = Field(
        description="Question key → answer, once the report has sent them; null before."
    )
    can_submit: bool = Field(
        description="True for the report while the meeting is scheduled, if the series asks "
        "questions (a series may ask none: then there is no check-in at all)."
    )


class TalkingPointRead(BaseModel):
    id: uuid.UUID
    text: str
    author: Role
    done: bool
    created_at: datetime


class ActionItemRead(BaseModel):
    id: uuid.UUID
    text: str
    owner: Role
    done: bool
    done_at: datetime | None
    created_at: datetime
    carried_over: bool = Field(description="Written at an earlier meeting of the series.")
    meeting_scheduled_at: datetime = Field(description="When the meeting it came from was.")


class NoteRead(BaseModel):
    text: str
    updated_at: datetime


class MeetingDocument(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "meeting": {
                        "scheduled_at": "2027-01-05T09:00:00Z",
                        "ends_at": "2027-01-05T09:30:00Z",
                        "duration_minutes": 30,
                        "status": "scheduled",
                        "role": "report",
                        "other_person": "Maya Manager",
                        "organization": "Acme",
                        "timezone": "Europe/Berlin",
                    },
                    "locale": "en",
                    "dir": "ltr",
                    "questions": [
                        {
                            "key": "feeling",
                            "kind": "rating",
                            "prompt": "How are you feeling this week?",
                            "prompt_locale": "en",
                            "required": True,
                            "min": 1,
                            "max": 5,
                        }
                    ],
                    "checkin": {"submitted": True, "answers": {"feeling": 4}, "can_submit": True},
                    "talking_points": [
                        {
                            "id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c81",
                            "text": "Conference budget",
                            "author": "report",
                            "done": False,
                            "created_at": "2027-01-04T15:00:00Z",
                        }
                    ],
                    "action_items": [
                        {
                            "id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c82",
                            "text": "Share the Q1 roadmap",
                            "owner": "manager",
                            "done": False,
                            "done_at": None,
                            "created_at": "2026-12-22T09:20:00Z",
                            "carried_over": True,
                            "meeting_scheduled_at": "2026-12-22T09:00:00Z",
                        }
                    ],
                    "note": {"text": "Ask about the move", "updated_at": "2027-01-04T15:05:00Z"},
                    "allowed_actions": [
                        "submit_checkin",
                        "add_talking_point",
                        "toggle_talking_point",
                        "add_action_item",
                        "toggle_action_item",
                        "save_note",
                    ],
                    "settable_statuses": [],
                }
            ]
        }
    )

    meeting: MeetingInfo
    locale: str = Field(description="The language of the questions and pages (en, fr or ar).")
    dir: Literal["ltr", "rtl"]
    questions: list[QuestionRead] = Field(description="The check-in, in the reader's language.")
    checkin: CheckinState
    talking_points: list[TalkingPointRead]
    action_items: list[ActionItemRead] = Field(
        description="This meeting's, then the open ones carried over from earlier meetings."
    )
    note: NoteRead | None = Field(description="The reader's own private note; nobody else's.")
    allowed_actions: list[str] = Field(description="The actions this link may POST now.")
    settable_statuses: list[Status] = Field(
        description="The statuses set_status accepts now, for the manager: held once the "
        "meeting has started, skipped at any time, scheduled to undo either; empty for the "
        "report."
    )


def _localized(value: str | Mapping[str, str], wanted: Sequence[str]) -> tuple[str, str | None]:
    if isinstance(value, str):
        return value, None
    tag = survey_messages.negotiate(wanted, value.keys()) or next(iter(value))
    return value[tag], tag


def question_read(
    question: Mapping[str, Any], wanted: Sequence[str], ui: str, organization: str
) -> QuestionRead:
    """A check-in question in the reader's language, shaped like a survey question so
    apps and pages read both kinds of link alike."""
    kind = question["kind"]
    if question.get("prompt") is None:  # only eNPS may leave it out: the built-in prompt
        prompt, prompt_locale = _localized(DEFAULT_ENPS_PROMPT, wanted)
        prompt = prompt.replace("{org}", organization)
    else:
        prompt, prompt_locale = _localized(question["prompt"], wanted)
    out = QuestionRead(
        key=question["key"],
        kind=kind,
        prompt=prompt,
        prompt_locale=prompt_locale,
        required=bool(question.get("required", True)),
    )
    if kind in ("enps", "rating"):
        out.min, out.max = (0, 10) if kind == "enps" else (1, int(question.get("scale") or 5))
    if kind == "enps":
        out.anchors = Anchors(
            low=survey_messages.text(ui, "enps_low"), high=survey_messages.text(ui, "enps_high")
        )
    if kind in ("single_choice", "multi_choice"):
        out.options = []
        for option in question.get("options") or []:
            label, locale = _localized(option["label"], wanted)
            out.options.append(OptionRead(key=option["key"], label=label, locale=locale))
    if kind == "text":
        out.max_length = TEXT_MAX
    return out


async def _previous_end(session: AsyncSession, access: Access) -> datetime | None:
    """When the series' last meeting before this one ended (cancelled ones never
    happened); None for the first."""
    row = (
        await session.execute(
            select(Meeting.scheduled_at, Meeting.duration_minutes)
            .where(
                Meeting.series_id == access.series_id,
                Meeting.scheduled_at < access.scheduled_at,
                Meeting.status != "cancelled",
            )
            .order_by(desc(Meeting.scheduled_at))
            .limit(1)
        )
    ).one_or_none()
    return None if row is None else row.scheduled_at + timedelta(minutes=row.duration_minutes)


def _on_this_page(access: Access, previous_end: datetime | None) -> ColumnElement[bool]:
    """The action items a meeting's page shows (see the module docstring). Expects
    ``Meeting`` joined as the item's own meeting."""
    at = access.scheduled_at
    earlier = or_(
        Meeting.scheduled_at < at,
        and_(Meeting.status == "cancelled", ActionItem.created_at < at),
    )
    still_open: ColumnElement[bool] = ActionItem.done.is_(False)
    if previous_end is not None:
        still_open = or_(still_open, ActionItem.done_at > previous_end)
    else:
        still_open = or_(still_open, ActionItem.done_at.is_not(None))
    return and_(
        ActionItem.series_id == access.series_id,
        or_(ActionItem.meeting_id == access.meeting_id, and_(earlier, still_open)),
    )


async def meeting_document(session: AsyncSession, access: Access) -> MeetingDocument:
    """The meeting as this link's holder sees it: the check-in (answers once sent),
    talking points, this meeting's and the carried-over action items, and their own
    private note, never the other side's."""
    ui = access.ui_locale
    talking_points = (
        (
            await session.execute(
                select(TalkingPoint)
                .where(TalkingPoint.meeting_id == access.meeting_id)
                .order_by(TalkingPoint.created_at, TalkingPoint.id)
            )
        )
        .scalars()
        .all()
    )
    previous_end = await _previous_end(session, access)
    items = (
        await session.execute(
            select(ActionItem, Meeting.scheduled_at)
            .join(Meeting, Meeting.id == ActionItem.meeting_id)
            .where(_on_this_page(access, previous_end))
            .order_by(Meeting.scheduled_at, ActionItem.created_at, ActionItem.id)
        )
    ).all()
    # The one read of private notes: by this meeting and this link's role, nothing else.
    note = (
        await session.execute(
            select(PrivateNote).where(
                PrivateNote.meeting_id == access.meeting_id,
                PrivateNote.author_role == access.role,
            )
        )
    ).scalar_one_or_none()
    return MeetingDocument(
        meeting=MeetingInfo(
            scheduled_at=access.scheduled_at,
            ends_at=access.scheduled_at + timedelta(minutes=access.duration_minutes),
            duration_minutes=access.duration_minutes,
            status=access.status,
            role=access.role,
            other_person=access.other_name,
            organization=access.organization_name,
            timezone=access.timezone,
        ),
        locale=ui,
        dir="rtl" if survey_messages.direction(ui) == "rtl" else "ltr",
        questions=[
            question_read(q, access.wanted_locales, ui, access.organization_name)
            for q in access.questions
        ],
        checkin=CheckinState(
            submitted=access.checkin_submitted,
            answers=access.checkin_answers if access.checkin_submitted else None,
            can_submit=access.can_submit_checkin,
        ),
        talking_points=[
            TalkingPointRead(
                id=p.id,
                text=p.text,
                author=_role(p.author_role),
                done=p.done,
                created_at=p.created_at,
            )
            for p in talking_points
        ],
        action_items=[
            ActionItemRead(
                id=item.id,
                text=item.text,
                owner=_role(item.owner_role),
                done=item.done,
                done_at=item.done_at,
                created_at=item.created_at,
                carried_over=item.meeting_id != access.meeting_id,
                meeting_scheduled_at=origin_at,
            )
            for item, origin_at in items
        ],
        note=None if note is None else NoteRead(text=note.text, updated_at=note.updated_at),
        allowed_actions=access.allowed_actions,
        settable_statuses=access.settable_statuses(utcnow()),
    )


def _role(value: str) -> Role:
    return "manager" if value == "manager" else "report"


# --- Actions ----------------------------------------------------------------------------


def _tidy_text(value: Any) -> Any:
    """Browsers send line breaks as CRLF but count them as one character against
    maxlength; normalise before measuring, so the page and the server agree."""
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n").strip()
    return value


def _no_nul(value: str) -> str:
    # A form field may carry %00, which the request-wide NUL check (on raw bytes) cannot
    # see and PostgreSQL text cannot store.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


# The constraints come first so they apply to the tidied string (and read "String should
# have at least 1 character"); the BeforeValidator wraps them.
ItemText = Annotated[
    str,
    Field(min_length=1, max_length=ITEM_MAX),
    BeforeValidator(_tidy_text),
    AfterValidator(_no_nul),
]
NoteText = Annotated[
    str, Field(max_length=NOTE_MAX), BeforeValidator(_tidy_text), AfterValidator(_no_nul)
]


class ActionBase(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitCheckin(ActionBase):
    """The report's pre-meeting answers (question key → answer, as for a survey)."""

    action: Literal["submit_checkin"]
    answers: dict[str, Any]


class AddTalkingPoint(ActionBase):
    action: Literal["add_talking_point"]
    text: ItemText


class ToggleTalkingPoint(ActionBase):
    action: Literal["toggle_talking_point"]
    id: uuid.UUID
    done: bool | None = Field(default=None, description="The state to set; leave out to flip it.")


class AddActionItem(ActionBase):
    action: Literal["add_action_item"]
    text: ItemText
    owner: Role


class ToggleActionItem(ActionBase):
    action: Literal["toggle_action_item"]
    id: uuid.UUID
    done: bool | None = Field(default=None, description="The state to set; leave out to flip it.")


class SaveNote(ActionBase):
    action: Literal["save_note"]
    text: NoteText = Field(description="The whole note; blank deletes it.")


class SetStatus(ActionBase):
    """``scheduled`` undoes held or skipped."""

    action: Literal["set_status"]
    status: Literal["held", "skipped", "scheduled"]


MeetingAction = Annotated[
    SubmitCheckin
    | AddTalkingPoint
    | ToggleTalkingPoint
    | AddActionItem
    | ToggleActionItem
    | SaveNote
    | SetStatus,
    Field(discriminator="action"),
]
ACTIONS: dict[str, type[ActionBase]] = {
    "submit_checkin": SubmitCheckin,
    "add_talking_point": AddTalkingPoint,
    "toggle_talking_point": ToggleTalkingPoint,
    "add_action_item": AddActionItem,
    "toggle_action_item": ToggleActionItem,
    "save_note": SaveNote,
    "set_status": SetStatus,
}
ACTION_EXAMPLES: dict[str, dict[str, Any]] = {
    "submit_checkin": {"action": "submit_checkin", "answers": {"feeling": 4, "on_mind": "…"}},
    "add_talking_point": {"action": "add_talking_point", "text": "Conference budget"},
    "toggle_talking_point": {
        "action": "toggle_talking_point",
        "id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c81",
        "done": True,
    },
    "add_action_item": {"action": "add_action_item", "text": "Book the course", "owner": "report"},
    "toggle_action_item": {
        "action": "toggle_action_item",
        "id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c82",
        "done": True,
    },
    "save_note": {"action": "save_note", "text": "Ask about the move"},
    "set_status": {"action": "set_status", "status": "held"},
}
_ADAPTER: TypeAdapter[Any] = TypeAdapter(MeetingAction)
_FORMS = {
    "submit_checkin": "checkin",
    "add_talking_point": "talking_point",
    "toggle_talking_point": "talking_point",
    "add_action_item": "action_item",
    "toggle_action_item": "action_item",
    "save_note": "note",
    "set_status": "status",
}


def tidy_error_loc(error: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    """A validation error's location and message without the union's tag, so ``text``
    is named ``text`` (not ``add_talking_point.text``) and an unknown action names
    ``action``."""
    loc = tuple(error.get("loc", ()))
    msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    inner = loc[1:] if loc[:1] == ("body",) else loc
    if error.get("type") in ("union_tag_invalid", "union_tag_not_found") and not inner:
        return (*loc, "action"), "must be one of: " + ", ".join(ACTIONS)
    if inner and inner[0] in ACTIONS:
        inner = inner[1:]
    return (("body", *inner) if loc[:1] == ("body",) else inner), msg


def _problems_of(exc: ValidationError, data: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc, msg = tidy_error_loc(error)
        code, params = "err_form", {}
        kind = error.get("type")
        if kind in ("string_too_short", "too_short") or (
            kind == "missing" and loc[-1:] == ("text",)
        ):
            code = "err_blank"
        elif kind in ("string_too_long", "too_long"):
            limit = (error.get("ctx") or {}).get("max_length", ITEM_MAX)
            given = _tidy_text(data.get(str(loc[-1]), ""))
            code, params = "err_too_long", {"max": limit, "length": len(str(given))}
        problems.append(Problem(("body", *loc), code, msg, params))
    return problems


def parse_form(access: Access, items: Sequence[tuple[str, str]]) -> ActionBase:
    """A page form (one per action, its ``action`` in a hidden field) as the same typed
    action the JSON twin takes. Check-in fields are typed by the series' questions."""
    first: dict[str, str] = {}
    for name, value in items:
        first.setdefault(name, value)
    name = first.get("action", "")
    model = ACTIONS.get(name)
    if model is None:
        raise ActionInvalid(
            access,
            "form",
            [Problem(("body", "action"), "err_form", "must be one of: " + ", ".join(ACTIONS))],
        )
    data: dict[str, Any] = {k: v for k, v in first.items() if k in model.model_fields}
    if model is SubmitCheckin:
        data["answers"] = answers_from_form(access.questions, items)
    if data.get("done") == "":  # an empty hidden field means "flip"
        del data["done"]
    try:
        action: ActionBase = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ActionInvalid(access, _FORMS[name], _problems_of(exc, data)) from None
    return action


async def _lock_meeting(session: AsyncSession, token_hash: str, now: datetime) -> None:
    """Write the link's meeting row first (see the module docstring); a token that opens
    nothing updates nothing."""
    await session.execute(
        update(Meeting)
        .where(
            Meeting.id.in_(
                select(MeetingLink.meeting_id).where(MeetingLink.token_hash == token_hash)
            ),
            Meeting.status != "cancelled",
        )
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )


async def _act(
    session: AsyncSession,
    settings: Settings,
    token: str,
    decode: Callable[[Access], ActionBase],
) -> Access:
    token_hash = links.hash_token(token)
    now = utcnow()
    await _lock_meeting(session, token_hash, now)
    access = await _find(session, settings, token_hash)
    if access.status == "cancelled":
        raise MeetingCancelled(access)
    action = decode(access)
    async with session.begin_nested():
        await _apply(session, access, action, now)
    # Re-read: the answer shows the meeting as it is now (status, check-in).
    return await _find(session, settings, token_hash)


async def act(session: AsyncSession, settings: Settings, token: str, action: ActionBase) -> Access:
    """Apply one action through a link; MeetingLinkNotFound, MeetingCancelled,
    NotYourRole, CheckinClosed (NoCheckin), MeetingNotStarted or ActionInvalid
    otherwise, with nothing written."""
    return await _act(session, settings, token, lambda _access: action)


async def act_on_form(
    session: AsyncSession, settings: Settings, token: str, items: Sequence[tuple[str, str]]
) -> Access:
    """``act`` for a page form's fields."""
    return await _act(session, settings, token, lambda access: parse_form(access, items))


async def _apply(session: AsyncSession, access: Access, action: ActionBase, now: datetime) -> None:
    if isinstance(action, SubmitCheckin):
        await _submit_checkin(session, access, action.answers, now)
    elif isinstance(action, AddTalkingPoint):
        session.add(
            TalkingPoint(
                id=new_id(),
                meeting_id=access.meeting_id,
                author_role=access.role,
                text=action.text,
                done=False,
                created_at=now,
            )
        )
    elif isinstance(action, ToggleTalkingPoint):
        point = await session.get(TalkingPoint, action.id)
        if point is None or point.meeting_id != access.meeting_id:
            raise _gone(access, "talking_point", "talking point")
        point.done = (not point.done) if action.done is None else action.done
    elif isinstance(action, AddActionItem):
        session.add(
            ActionItem(
                id=new_id(),
                series_id=access.series_id,
                meeting_id=access.meeting_id,
                text=action.text,
                owner_role=action.owner,
                done=False,
                created_at=now,
                done_at=None,
            )
        )
    elif isinstance(action, ToggleActionItem):
        await _toggle_action_item(session, access, action, now)
    elif isinstance(action, SaveNote):
        await _save_note(session, access, action.text, now)
    elif isinstance(action, SetStatus):
        if access.role != "manager":
            raise NotYourRole(
                access, "only the manager marks the meeting held or skipped", "manager_only"
            )
        if action.status not in access.settable_statuses(now):
            raise MeetingNotStarted(access)  # held is the one status that waits
        await session.execute(
            update(Meeting)
            .where(Meeting.id == access.meeting_id)
            .values(status=action.status, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    await session.flush()


def _gone(access: Access, form: str, what: str) -> ActionInvalid:
    return ActionInvalid(
        access, form, [Problem(("body", "id"), "err_gone", f"no {what} with this id here")]
    )


def stored_answers(
    questions: Sequence[Mapping[str, Any]], answers: Mapping[str, Any]
) -> tuple[dict[str, Any], list[AnswerProblem]]:
    """Check-in answers checked by the survey rules, in the JSON shape they were given
    in (the stored form, normalised: trimmed text, choices in question order)."""
    checked, problems = check_answers(questions, answers)
    out: dict[str, Any] = {}
    for key, (kind, value) in checked.items():
        if kind in ("enps", "rating"):
            out[key] = value.score
        elif kind == "yes_no":
            out[key] = bool(value.score)
        elif kind == "single_choice":
            out[key] = value.choices[0] if value.choices else None
        elif kind == "multi_choice":
            out[key] = list(value.choices or [])
        else:
            out[key] = value.text
    return out, problems


async def _submit_checkin(
    session: AsyncSession, access: Access, answers: Mapping[str, Any], now: datetime
) -> None:
    if access.role != "report":
        raise NotYourRole(access, "only the report sends the check-in", "report_only")
    if access.status == "scheduled" and not access.questions:
        raise NoCheckin(access)
    if not access.can_submit_checkin:
        raise CheckinClosed(access)
    stored, problems = stored_answers(access.questions, answers)
    if problems:
        raise ActionInvalid(
            access,
            "checkin",
            [
                Problem(
                    ("body", "answers", p.key),
                    p.code,
                    f"the check-in has no question {p.key!r}"
                    if p.code == "err_unknown"
                    else p.detail,
                    p.params,
                )
                for p in problems
            ],
        )
    result = await session.execute(
        update(Meeting)
        .where(Meeting.id == access.meeting_id, Meeting.status == "scheduled")
        .values(checkin_answers=stored, checkin_submitted=True, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if isinstance(result, CursorResult) and result.rowcount != 1:
        raise CheckinClosed(access)


async def _toggle_action_item(
    session: AsyncSession, access: Access, action: ToggleActionItem, now: datetime
) -> None:
    # Only an item this page shows may be ticked from it.
    previous_end = await _previous_end(session, access)
    item = (
        await session.execute(
            select(ActionItem)
            .join(Meeting, Meeting.id == ActionItem.meeting_id)
            .where(ActionItem.id == action.id, _on_this_page(access, previous_end))
        )
    ).scalar_one_or_none()
    if item is None:
        raise _gone(access, "action_item", "action item")
    done = (not item.done) if action.done is None else action.done
    if done != item.done:
        item.done = done
        item.done_at = now if done else None


def _insert(session: AsyncSession, table: Any) -> Any:
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(table)


async def _save_note(session: AsyncSession, access: Access, text: str, now: datetime) -> None:
    """Upsert the writer's note (one per meeting and side); blank deletes it, so
    nothing is kept that the writer cleared."""
    if not text:
        await session.execute(
            delete(PrivateNote).where(
                PrivateNote.meeting_id == access.meeting_id,
                PrivateNote.author_role == access.role,
            )
        )
        return
    await session.execute(
        _insert(session, PrivateNote)
        .values(
            id=new_id(),
            meeting_id=access.meeting_id,
            author_role=access.role,
            text=text,
            updated_at=now,
        )
        .on_conflict_do_update(
            index_elements=["meeting_id", "author_role"],
            set_={"text": text, "updated_at": now},
        )
    )


# --- The calendar -----------------------------------------------------------------------


async def invite(session: AsyncSession, settings: Settings, token: str) -> tuple[bytes, str]:
    """The meeting as iCalendar for this link: REQUEST, or CANCEL once cancelled (so a
    calendar that fetches it drops the event), with this person's link in it. Returns
    the body and its method."""
    access = await _find(session, settings, links.hash_token(token))
    series = await session.get(CheckinSeries, access.series_id)
    assert series is not None  # the lookup joined it
    people = {
        e.id: e
        for e in (
            await session.execute(
                select(Employee).where(Employee.id.in_([series.manager_id, series.employee_id]))
            )
        ).scalars()
    }
    manager = people[series.manager_id]
    report = people[series.employee_id]
    url = f"{settings.public_base_url}/m/{token}"
    # The person's own locale, as their emailed invite uses, not the page's chain: the
    # same event must not change language depending on where it was fetched from.
    summary, description = ics.wording(access.locale, access.other_name, url)
    method: ics.Method = "CANCEL" if access.status == "cancelled" else "REQUEST"
    body = ics.build_invite(
        meeting_id=access.meeting_id,
        method=method,
        sequence=access.sequence,
        scheduled_at=access.scheduled_at,
        duration_minutes=access.duration_minutes,
        timezone=access.series_timezone,
        manager=ics.Person(manager.name, manager.email),
        report=ics.Person(report.name, report.email),
        summary=summary,
        description=description,
        url=url,
    )
    return body, method
