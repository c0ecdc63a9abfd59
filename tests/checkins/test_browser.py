"""The meeting page in a real browser on a phone-sized screen (headless Chromium through
Selenium): the report sends the check-in, the manager sees it and adds an action item,
the report ticks it off, in English and in Arabic (right-to-left). No JavaScript on the
page: plain forms, Post/Redirect/Get, against a live uvicorn on its own migrated SQLite
database (the server commits, so the tests' rolled-back connection cannot serve it)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from app.core.config import Settings
from app.core.db import Database
from app.main import create_app
from tests.checkins.meeting_support import MeetingLinks, create_series, meeting_links, person
from tests.conftest import create_org, make_settings
from tests.databases import in_thread, migrated_database
from tests.live import live_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTH, HEIGHT = 360, 800

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() or shutil.which("chromium"))
    or not (Path(CHROMEDRIVER).exists() or shutil.which("chromedriver")),
    reason="Chromium not found: apt-get install chromium chromium-driver",
)


@dataclass
class Live:
    base_url: str
    admin: dict[str, str]
    settings: Settings
    database_url: str

    def meeting(self, manager_locale: str, report_locale: str, tag: str) -> MeetingLinks:
        """A new series between two new people; its first meeting's links."""

        async def run() -> MeetingLinks:
            async with httpx.AsyncClient(base_url=self.base_url) as client:
                series = await create_series(
                    client,
                    self.admin,
                    manager=person(f"maya.{tag}@example.com", manager_locale),
                    report=person(f"bo.{tag}@example.com", report_locale),
                )
            db = Database.from_url(self.database_url)
            try:
                return (await meeting_links(db, self.settings, series.id))[0]
            finally:
                await db.dispose()

        return in_thread(lambda: asyncio.run(run()))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with migrated_database("sqlite", tmp_path_factory.mktemp("browser")) as url:
        settings = make_settings(url)

        async def seed() -> str:
            db = Database.from_url(url)
            try:
                return (await create_org(db, "Acme")).admin_key
            finally:
                await db.dispose()

        key = in_thread(lambda: asyncio.run(seed()))
        with live_server(create_app(settings)) as base_url:
            yield Live(base_url, {"Authorization": f"Bearer {key}"}, settings, url)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},{HEIGHT}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        service=Service(CHROMEDRIVER if Path(CHROMEDRIVER).exists() else None), options=options
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


# The page is replaced under the wait (Post/Redirect/Get): an element may go stale.
IGNORED = (NoSuchElementException, StaleElementReferenceException)


def _wait_for(browser: WebDriver, element_id: str) -> None:
    WebDriverWait(browser, 15, ignored_exceptions=IGNORED).until(
        lambda d: d.find_elements(By.ID, element_id)
    )


def _first_item_is_done(browser: WebDriver) -> bool:
    row = browser.find_element(By.CSS_SELECTOR, "#action-item-list li")
    return "done" in (row.get_attribute("class") or "").split()


def _fits_the_screen(browser: WebDriver) -> bool:
    """Nothing wider than the phone: no sideways scrolling, whichever the direction."""
    width = browser.execute_script("return document.documentElement.scrollWidth")
    viewport = browser.execute_script("return document.documentElement.clientWidth")
    return bool(width <= viewport)


WORDS = {
    "en": {
        "feeling": "How are you feeling this week?",
        "answers_from": "Answers from Bo",
        "for_you": "for you",
    },
    "ar": {
        "feeling": "كيف تشعر هذا الأسبوع؟",
        "answers_from": "إجابات Bo",
        "for_you": "لك",
    },
}


@pytest.mark.parametrize("locale", ["en", "ar"])
def test_checkin_and_action_item_through_the_page(
    live: Live, browser: WebDriver, locale: str
) -> None:
    words = WORDS[locale]
    direction = "rtl" if locale == "ar" else "ltr"
    meeting = live.meeting(locale, locale, tag=locale)
    on_mind = "الانتقال إلى القاهرة" if locale == "ar" else "Moving to Cairo"
    action = "احجز الدورة" if locale == "ar" else "Book the course"

    # The report answers the check-in.
    browser.get(f"{live.base_url}/m/{meeting.report}")
    html = browser.find_element(By.TAG_NAME, "html")
    assert (html.get_attribute("lang"), html.get_attribute("dir")) == (locale, direction)
    assert words["feeling"] in browser.find_element(By.ID, "q-feeling").text
    assert _fits_the_screen(browser)
    browser.find_element(By.CSS_SELECTOR, "label[for='a-feeling-4']").click()
    browser.find_element(By.ID, "a-on_mind").send_keys(on_mind)
    browser.find_element(By.ID, "checkin-submit").click()
    _wait_for(browser, "checkin-answers")
    assert browser.current_url.endswith("#checkin")
    answers = browser.find_element(By.ID, "checkin-answers").text
    assert "4 / 5" in answers
    assert on_mind in answers

    # The manager sees the answers and adds an action item for the report.
    browser.get(f"{live.base_url}/m/{meeting.manager}")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("dir") == direction
    manager_answers = browser.find_element(By.ID, "checkin-answers").text
    assert words["answers_from"] in manager_answers
    assert on_mind in manager_answers
    browser.find_element(By.ID, "action-item-text").send_keys(action)
    Select(browser.find_element(By.ID, "action-item-owner")).select_by_value("report")
    browser.find_element(By.ID, "action-item-add").click()
    _wait_for(browser, "action-item-list")
    assert browser.current_url.endswith("#action-items")
    assert action in browser.find_element(By.ID, "action-item-list").text
    assert _fits_the_screen(browser)

    # The report finds it, theirs, and ticks it off.
    browser.get(f"{live.base_url}/m/{meeting.report}")
    row = browser.find_element(By.CSS_SELECTOR, "#action-item-list li")
    assert action in row.text
    assert words["for_you"] in row.text
    row.find_element(By.CSS_SELECTOR, "button.tick").click()
    WebDriverWait(browser, 15, ignored_exceptions=IGNORED).until(_first_item_is_done)
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("dir") == direction
