"""The answer pages in a real browser (headless Chromium, 360 px wide: a small phone):
filling and submitting in English and Arabic, right-to-left layout, keyboard use, the
error display and the thank-you page, against a live server that really commits.

Skips, saying how to enable it, when Chromium or its driver is missing."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.core.db import Database
from app.main import create_app
from app.surveys import links
from app.surveys.models import Invitation
from tests.conftest import create_org, make_settings
from tests.databases import in_thread, migrated_database
from tests.live import live_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ENABLE_HINT = "browser tests need Chromium: apt-get install chromium chromium-driver"

PEOPLE = [
    ("en-fill@example.com", "en"),
    ("en-error@example.com", "en"),
    ("en-keys@example.com", "en"),
    ("ar-fill@example.com", "ar"),
    ("ar-layout@example.com", "ar"),
]
QUESTIONS = [
    {"key": "enps", "kind": "enps"},
    {
        "key": "workload",
        "kind": "rating",
        "prompt": {"en": "My workload is manageable", "ar": "عبء عملي معقول"},
    },
    {
        "key": "office",
        "kind": "single_choice",
        "prompt": {"en": "Which office?", "ar": "أي مكتب؟"},
        "options": [
            {"key": "cairo", "label": {"en": "Cairo", "ar": "القاهرة"}},
            {"key": "paris", "label": {"en": "Paris", "ar": "باريس"}},
        ],
        "required": False,
    },
    {
        "key": "comment",
        "kind": "text",
        "prompt": {"en": "Anything else?", "ar": "هل من شيء آخر؟"},
        "required": False,
    },
]


def _chromium_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists() and shutil.which(Path(path).name) is None:
            return f"{path} not found; {ENABLE_HINT}"
    return None


@dataclass
class Site:
    base_url: str
    tokens: dict[str, str]

    def link(self, email: str) -> str:
        return f"{self.base_url}/r/{self.tokens[email]}"


async def _seed(url: str, base_url: str) -> dict[str, str]:
    """Organization, people, survey and wave through the live API; links recomputed."""
    db = Database.from_url(url)
    try:
        org = await create_org(db, "Browser Co")
        async with httpx.AsyncClient(base_url=base_url, headers=org.admin, timeout=30) as api:
            ids = {}
            for email, locale in PEOPLE:
                created = await api.post(
                    "/v1/employees",
                    json={"email": email, "locale": locale, "timezone": "Africa/Cairo"},
                )
                assert created.status_code == 201, created.text
                ids[created.json()["id"]] = email
            survey = await api.post(
                "/v1/surveys",
                json={"name": "Pulse", "questions": QUESTIONS, "status": "active"},
            )
            assert survey.status_code == 201, survey.text
            wave = await api.post(f"/v1/surveys/{survey.json()['id']}/waves")
            assert wave.status_code == 201, wave.text
        settings = make_settings(url)
        async with db.sessionmaker() as session:
            invitations = (
                await session.execute(
                    select(Invitation).where(Invitation.wave_id == uuid.UUID(wave.json()["id"]))
                )
            ).scalars()
            return {
                ids[str(i.employee_id)]: links.recompute(settings, i.id, i.salt, i.key_id)
                for i in invitations
            }
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A live server on a migrated SQLite file of its own (the server commits). The
    pages do not depend on the database, so one backend is enough here."""
    missing = _chromium_missing()
    if missing:
        pytest.skip(missing)
    with migrated_database("sqlite", tmp_path_factory.mktemp("browser")) as url:
        with live_server(create_app(make_settings(url))) as base_url:
            tokens = in_thread(lambda: asyncio.run(_seed(url, base_url)))
            yield Site(base_url, tokens)


@pytest.fixture(scope="module")
def driver(site: Site) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=360,800",
    ):
        options.add_argument(flag)
    # Headless Chromium will not make a window narrower than 500 px; emulate the phone's
    # viewport (which also honours the page's viewport meta, as a phone does).
    options.add_experimental_option(
        "mobileEmulation", {"deviceMetrics": {"width": 360, "height": 800, "pixelRatio": 2}}
    )
    try:
        browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    except Exception as exc:  # a driver that does not match the browser, no display libs…
        pytest.skip(f"Chromium did not start ({exc.__class__.__name__}: {exc}); {ENABLE_HINT}")
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


def _by_id(driver: Any, id_: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, id_)


def _choose(driver: Any, key: str, value: str) -> None:
    """Click the choice's label, as a person taps it (the radio itself is hidden)."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"label[for='a-{key}-{value}']").click()


def _submit(driver: Any) -> None:
    """Submit the form and wait for the answer page to replace this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 15).until(expected_conditions.staleness_of(page))


def _fits_the_screen(driver: Any) -> bool:
    return bool(
        driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    )


def test_english_page_fills_and_submits_on_a_small_screen(driver: Any, site: Site) -> None:
    driver.get(site.link("en-fill@example.com"))

    assert driver.execute_script("return window.innerWidth") <= 360
    assert _fits_the_screen(driver), "the page scrolls sideways at 360 px"
    assert driver.execute_script("return document.documentElement.lang") == "en"
    assert "This survey is anonymous" in _by_id(driver, "notice").text
    points = driver.execute_script(
        "return [...document.querySelectorAll('#scale-enps label')]"
        ".map(l => l.getBoundingClientRect()).map(r => [r.width, r.height])"
    )
    assert len(points) == 11
    assert all(w >= 24 and h >= 24 for w, h in points), points  # WCAG 2.5.8 target size
    _choose(driver, "enps", "9")
    _choose(driver, "workload", "4")
    _choose(driver, "office", "paris")
    _by_id(driver, "a-comment").send_keys("More quiet rooms")
    assert _by_id(driver, "a-enps-9").is_selected()
    _submit(driver)

    assert driver.find_element("tag name", "h1").text == "Thank you"
    assert "Your answers have been recorded." in driver.page_source


def test_arabic_page_is_laid_out_right_to_left(driver: Any, site: Site) -> None:
    driver.get(site.link("ar-layout@example.com"))

    assert driver.execute_script("return document.documentElement.dir") == "rtl"
    assert driver.execute_script("return document.documentElement.lang") == "ar"
    scale = _by_id(driver, "scale-enps")
    assert driver.execute_script("return getComputedStyle(arguments[0]).direction", scale) == "rtl"
    zero, ten = (
        driver.find_element("css selector", f"label[for='a-enps-{n}']").rect for n in (0, 10)
    )
    assert zero["x"] > ten["x"], "0 should sit on the right in a right-to-left scale"
    assert "عبء عملي معقول" in _by_id(driver, "q-workload").text
    assert _fits_the_screen(driver)


def test_arabic_page_fills_and_submits(driver: Any, site: Site) -> None:
    driver.get(site.link("ar-fill@example.com"))

    _choose(driver, "enps", "10")
    _choose(driver, "workload", "5")
    _choose(driver, "office", "cairo")
    _by_id(driver, "a-comment").send_keys("شكرًا")
    _submit(driver)

    assert driver.find_element("tag name", "h1").text == "شكرًا لك"
    assert driver.execute_script("return document.documentElement.dir") == "rtl"


def test_missing_answer_shows_the_error_beside_its_question_and_keeps_the_rest(
    driver: Any, site: Site
) -> None:
    driver.get(site.link("en-error@example.com"))

    _choose(driver, "workload", "2")
    _choose(driver, "office", "cairo")
    _by_id(driver, "a-comment").send_keys("Kept, I hope")
    _submit(driver)

    error = _by_id(driver, "err-enps")
    assert error.is_displayed()
    assert "Please answer this question." in error.text
    assert driver.execute_script(
        "return document.getElementById('q-enps').contains(arguments[0])", error
    )
    # Beside the question: below its prompt, above its scale.
    scale = _by_id(driver, "scale-enps")
    assert error.rect["y"] < scale.rect["y"]
    assert _by_id(driver, "a-workload-2").is_selected()
    assert _by_id(driver, "a-office-cairo").is_selected()
    assert _by_id(driver, "a-comment").get_attribute("value") == "Kept, I hope"
    assert "Please check your answers" in _by_id(driver, "summary").text

    _choose(driver, "enps", "6")
    _submit(driver)

    assert driver.find_element("tag name", "h1").text == "Thank you"


def test_the_scale_is_usable_with_the_keyboard(driver: Any, site: Site) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver.get(site.link("en-keys@example.com"))
    driver.execute_script("document.activeElement && document.activeElement.blur()")

    ActionChains(driver).send_keys(Keys.TAB).perform()
    focused = driver.switch_to.active_element
    assert focused.get_attribute("name") == "enps"
    outline = driver.execute_script(
        "return getComputedStyle(document.querySelector("
        "'label[for=' + document.activeElement.id + ']')).outlineStyle"
    )
    assert outline == "solid", "the focused choice must show a focus ring"
    ActionChains(driver).send_keys(Keys.SPACE).send_keys(Keys.ARROW_RIGHT).perform()

    assert _by_id(driver, "a-enps-1").is_selected()
