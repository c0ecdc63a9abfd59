"""What the answering tests share: a survey with an open wave and the personal links of
its invitations (recomputed from their salts: the database holds no token), and a small
HTML reader to look at the pages the way a test needs (by id, by tag, as text)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx
from sqlalchemy import select

from app.core.config import Settings
from app.core.db import Database
from app.surveys import links
from app.surveys.models import Invitation
from tests.conftest import Org

ARABIC_WORKLOAD = "عبء عملي معقول"

QUESTIONS: list[dict[str, Any]] = [
    {"key": "enps", "kind": "enps"},
    {
        "key": "workload",
        "kind": "rating",
        "prompt": {
            "en": "My workload is manageable",
            "fr": "Ma charge de travail est raisonnable",
            "ar": ARABIC_WORKLOAD,
        },
        "scale": 5,
    },
    {
        "key": "remote",
        "kind": "yes_no",
        "prompt": {
            "en": "Do you mostly work remotely?",
            "fr": "Travaillez-vous surtout à distance ?",
        },
        "required": False,
    },
    {
        "key": "office",
        "kind": "single_choice",
        "prompt": "Which office are you closest to?",
        "options": [
            {"key": "cairo", "label": {"en": "Cairo", "fr": "Le Caire", "ar": "القاهرة"}},
            {"key": "paris", "label": "Paris"},
        ],
        "required": False,
    },
    {
        "key": "perks",
        "kind": "multi_choice",
        "prompt": "Which perks do you use?",
        "options": [
            {"key": "gym", "label": "Gym"},
            {"key": "lunch", "label": "Lunch"},
            {"key": "train", "label": "Train pass"},
        ],
        "required": False,
    },
    {
        "key": "comment",
        "kind": "text",
        "prompt": {"en": "Anything else?", "fr": "Autre chose ?", "ar": "هل من شيء آخر؟"},
        "required": False,
    },
]

VALID_ANSWERS: dict[str, Any] = {
    "enps": 9,
    "workload": 4,
    "remote": True,
    "office": "paris",
    "perks": ["train", "gym"],
    "comment": "More focus time, please.",
}


@dataclass
class Person:
    email: str
    id: str
    invitation_id: uuid.UUID
    token: str


@dataclass
class Opened:
    survey_id: str
    wave_id: str
    people: dict[str, Person] = field(default_factory=dict)

    def token(self, email: str) -> str:
        return self.people[email].token


async def open_survey(
    client: httpx.AsyncClient,
    org: Org,
    db: Database,
    settings: Settings,
    *,
    people: Sequence[tuple[str, str]] = (("ana@example.com", "en"),),
    questions: Sequence[dict[str, Any]] = QUESTIONS,
    anonymous: bool = True,
    employee_fields: dict[str, Any] | None = None,
) -> Opened:
    """Employees (email, locale), an active survey for all of them, an open wave, and
    each person's link."""
    ids: dict[str, str] = {}
    for email, locale in people:
        body = {
            "email": email,
            "name": email.split("@")[0].title(),
            "locale": locale,
            "timezone": "Europe/Paris",
            "team": "Sales",
            "department": "Commercial",
            "attributes": {"location": "Cairo"},
            **(employee_fields or {}),
        }
        created = await client.post("/v1/employees", json=body, headers=org.admin)
        assert created.status_code == 201, created.text
        ids[email] = created.json()["id"]
    survey = await client.post(
        "/v1/surveys",
        json={
            "name": "Monthly pulse",
            "anonymous": anonymous,
            "questions": list(questions),
            "status": "active",
        },
        headers=org.admin,
    )
    assert survey.status_code == 201, survey.text
    wave = await client.post(f"/v1/surveys/{survey.json()['id']}/waves", headers=org.admin)
    assert wave.status_code == 201, wave.text
    opened = Opened(survey.json()["id"], wave.json()["id"])
    async with db.sessionmaker() as session:
        invitations = (
            await session.execute(
                select(Invitation).where(Invitation.wave_id == uuid.UUID(opened.wave_id))
            )
        ).scalars()
        by_employee = {str(inv.employee_id): inv for inv in invitations}
    for email, employee_id in ids.items():
        inv = by_employee[employee_id]
        token = links.recompute(settings, inv.id, inv.salt, inv.key_id)
        opened.people[email] = Person(email, employee_id, inv.id, token)
    return opened


def form(answers: dict[str, Any]) -> dict[str, str | list[str]]:
    """Answers as the browser would post them: strings, a field per chosen option."""
    out: dict[str, str | list[str]] = {}
    for key, value in answers.items():
        if isinstance(value, bool):
            out[key] = "yes" if value else "no"
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            out[key] = str(value)
    return out


# --- Reading HTML -----------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)
    parent: Element | None = None

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.iter()
            if (tag is None or e.tag == tag)
            and all(e.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    def by_id(self, id_: str) -> Element:
        found = self.find_all(id=id_)
        assert len(found) == 1, f"expected one element with id {id_!r}, found {len(found)}"
        return found[0]

    @property
    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text for c in self.children]
        return " ".join(" ".join(parts).split())

    def contains(self, other: Element) -> bool:
        node: Element | None = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(
            tag, {k: v if v is not None else "" for k, v in attrs}, parent=self.current
        )
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse_html(html: str) -> Element:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root
