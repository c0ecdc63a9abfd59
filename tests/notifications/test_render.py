"""Templates and rendering: every kind speaks en, fr and ar; Arabic reads right to left;
the HTML loads nothing from elsewhere; links stand on their own line in the text twin;
a locale without templates falls back to its language, then to English."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from jinja2 import ChainableUndefined

import app.main  # imports every module that registers an email kind
import app.notifications
from app.core.config import Settings
from app.core.db import Database
from app.notifications.render import (
    KINDS,
    build_message,
    environment,
    message_id,
    render,
    template_locale,
)
from app.notifications.sender import deliver_outbox
from tests.conftest import Org, make_settings
from tests.notifications import support

TEMPLATES = Path(app.notifications.__file__).parent / "templates"
LOCALES = ("en", "fr", "ar")
PARTS = ("subject.txt", "body.txt", "body.html")

EXTERNAL = [
    re.compile(r"<script", re.IGNORECASE),
    re.compile(r"<img\b[^>]*\bsrc\s*=\s*[\"']?\s*(https?:)?//", re.IGNORECASE),
    re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?\s*(https?:)?//", re.IGNORECASE),
    re.compile(r"url\(\s*[\"']?\s*(https?:)?//", re.IGNORECASE),
    re.compile(r"@import", re.IGNORECASE),
]
URL = re.compile(r"https?://\S+")
LINK_EXPRESSION = re.compile(r"\{\{[^}]*(url|link)[^}]*\}\}", re.IGNORECASE)


@pytest.fixture
def render_settings() -> Settings:
    return make_settings("sqlite:///unused.db")


def test_test_kind_is_registered() -> None:
    assert "test" in KINDS


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_registered_kind_has_english_french_and_arabic_templates(kind: str) -> None:
    missing = [
        f"{kind}/{locale}.{part}"
        for locale in LOCALES
        for part in PARTS
        if not (TEMPLATES / kind / f"{locale}.{part}").is_file()
    ]
    assert missing == []
    for locale in LOCALES:
        for part in PARTS:
            environment().get_template(f"{kind}/{locale}.{part}")  # parses


def test_every_template_folder_belongs_to_a_registered_kind() -> None:
    folders = {p.name for p in TEMPLATES.iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert folders - set(KINDS) == set(), "templates nobody can send"


class _Placeholder(ChainableUndefined):
    """Stands in for whatever a kind's context builder would supply: a variable named
    like a link renders as a URL, any other as its own name."""

    def __str__(self) -> str:
        name = self._undefined_name or "value"
        is_link = name in ("link", "url") or name.endswith(("_link", "_url"))
        return f"https://pulse.test/{name}/0123456789abcdef" if is_link else name


def render_with_placeholders(kind: str, locale: str, part: str) -> str:
    template = environment().overlay(undefined=_Placeholder).get_template(f"{kind}/{locale}.{part}")
    direction = "rtl" if locale == "ar" else "ltr"
    return template.render(
        lang=locale, dir=direction, recipient="r@example.com", name="Name", subject="Subject"
    )


KIND_LOCALES = [(k, loc) for k in sorted(KINDS) for loc in LOCALES]


@pytest.mark.parametrize(("kind", "locale"), KIND_LOCALES)
def test_every_kind_renders_html_in_the_locales_direction_and_self_contained(
    kind: str, locale: str
) -> None:
    html = render_with_placeholders(kind, locale, "body.html")
    direction = "rtl" if locale == "ar" else "ltr"
    assert f'<html lang="{locale}" dir="{direction}">' in html
    for pattern in EXTERNAL:
        assert not pattern.search(html), pattern.pattern


@pytest.mark.parametrize(("kind", "locale"), KIND_LOCALES)
def test_every_kind_text_twin_has_each_link_alone_on_its_line(kind: str, locale: str) -> None:
    text = render_with_placeholders(kind, locale, "body.txt")
    for line in text.splitlines():
        for url in URL.findall(line):
            assert line.strip() == url, f"link not on its own line: {line!r}"


@pytest.mark.parametrize(
    "path", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES))
)
def test_html_template_loads_no_external_image_script_or_stylesheet(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    for pattern in EXTERNAL:
        assert not pattern.search(source), f"{pattern.pattern} in {path.name}"


@pytest.mark.parametrize(
    "path", sorted(TEMPLATES.rglob("*.body.txt")), ids=lambda p: str(p.relative_to(TEMPLATES))
)
def test_text_template_puts_each_link_on_a_line_of_its_own(path: Path) -> None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for found in [*LINK_EXPRESSION.finditer(line), *URL.finditer(line)]:
            assert line.strip() == found.group(0), f"{path.name}:{number}: {line!r}"


@pytest.mark.parametrize("locale", LOCALES)
async def test_rendered_test_message_is_complete_and_self_contained(
    db: Database, org: Org, render_settings: Settings, locale: str
) -> None:
    async with db.sessionmaker() as session:
        rendered = await render(session, support.claimed(org.id, locale=locale), render_settings)

    assert "Acme" in rendered.subject
    assert "\n" not in rendered.subject
    assert "Acme" in rendered.text
    for pattern in EXTERNAL:
        assert not pattern.search(rendered.html), pattern.pattern
    for line in rendered.text.splitlines():
        for url in URL.findall(line):
            assert line.strip() == url, f"link not on its own line: {line!r}"
    direction = "rtl" if locale == "ar" else "ltr"
    assert f'<html lang="{locale}" dir="{direction}">' in rendered.html
    assert rendered.html.count(f'dir="{direction}"') >= 3, "the html tag and both cells"
    align = "right" if locale == "ar" else "left"
    assert f"text-align:{align}" in rendered.html


@pytest.mark.parametrize(
    ("asked", "used"),
    [
        ("en", "en"),
        ("fr", "fr"),
        ("ar", "ar"),
        ("fr-CA", "fr"),
        ("ar-EG", "ar"),
        ("FR", "fr"),
        ("xx", "en"),
        ("de-AT", "en"),
        ("zh-Hant-TW", "en"),
    ],
)
def test_locale_falls_back_to_its_language_then_english(asked: str, used: str) -> None:
    assert template_locale("test", asked) == used


async def test_canadian_french_recipient_gets_the_french_message(
    db: Database, org: Org, render_settings: Settings
) -> None:
    async with db.sessionmaker() as session:
        rendered = await render(session, support.claimed(org.id, locale="fr-CA"), render_settings)
    assert rendered.subject == "Message de test Pulse pour Acme"
    assert '<html lang="fr" dir="ltr">' in rendered.html


async def test_recipient_name_with_a_line_break_is_sent_on_one_header_line(
    db: Database, org: Org, render_settings: Settings
) -> None:
    claimed = support.claimed(org.id, name="Lena\r\nBcc: spy@example.net")
    async with db.sessionmaker() as session:
        rendered = await render(session, claimed, render_settings)
    msg = build_message(rendered, claimed, render_settings)

    assert msg["Bcc"] is None
    assert msg["To"].addresses[0].display_name == "Lena Bcc: spy@example.net"
    assert msg["To"].addresses[0].addr_spec == claimed.recipient


def test_message_id_is_stable_per_dedupe_key_and_uses_the_sender_domain() -> None:
    first = message_id("invite:w1:e1", "Pulse <pulse@mail.example.com>")
    assert first == message_id("invite:w1:e1", "Pulse <pulse@mail.example.com>")
    assert first != message_id("invite:w1:e2", "Pulse <pulse@mail.example.com>")
    assert re.fullmatch(r"<[0-9a-f]{40}@mail\.example\.com>", first)
    assert message_id("k", "Pulse").endswith("@pulse.invalid>")


async def test_message_of_an_unknown_kind_fails_at_once(
    db: Database, org: Org, tmp_path: Path
) -> None:
    settings = make_settings("sqlite:///unused.db", email_url=tmp_path.as_uri())
    await support.queue(db, org.id, ["mystery"], kind="no_such_kind")

    await deliver_outbox(db, settings)

    failed = await support.row(db, "mystery")
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_reply == "no renderer for message kind 'no_such_kind'"
    assert os.listdir(tmp_path) == []
