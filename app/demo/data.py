"""`pulse demo`: a believable organization for a newcomer to explore.

Acme has 80 employees in 6 teams over 3 departments, with a CEO, department heads and
team leads, in English, French and Arabic (names in Arabic script, locale ``ar``)."""

from __future__ import annotations

import random
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import new_id
from app.demo.checkins import load_checkins, meeting_links
from app.demo.surveys import load_survey_history, open_wave_links
from app.employees import service as employee_service
from app.employees.models import Employee
from app.organizations import service as organization_service
from app.organizations.models import Organization
from app.organizations.schemas import ApiKeyCreate

DEMO_ORG = "Acme"
DEPARTMENTS = {
    "Engineering": ["Platform", "Mobile"],
    "Commercial": ["Sales", "Marketing"],
    "Operations": ["Support", "People"],
}
TEAM_SIZE = 14  # 5 teams × 14 + a People team of 4 + 3 heads + 1 CEO = 78

ENGLISH = [
    "Olivia Bennett",
    "Liam Carter",
    "Emma Hughes",
    "Noah Fletcher",
    "Ava Morgan",
    "James Porter",
    "Sophia Reed",
    "Lucas Grant",
    "Mia Walsh",
    "Henry Brooks",
    "Isla Turner",
    "Jack Dawson",
    "Grace Palmer",
    "Oscar Hayes",
    "Chloe Baxter",
    "Leo Sutton",
    "Ruby Knight",
    "Arthur Blake",
    "Freya Lawson",
    "Theo Marsh",
    "Evie Stone",
    "Harry Quinn",
    "Lily Shaw",
    "George Wells",
    "Amelia Ross",
    "Samuel Price",
    "Ella Ward",
    "Daniel Cole",
    "Poppy Fox",
    "Max Ellis",
]
FRENCH = [
    "Camille Laurent",
    "Louis Moreau",
    "Chloé Lefèvre",
    "Hugo Girard",
    "Léa Fontaine",
    "Jules Mercier",
    "Manon Chevalier",
    "Gabriel Rousseau",
    "Inès Blanc",
    "Arthur Garnier",
]
ARABIC = [
    "أميرة حداد",
    "عمر فاروق",
    "ليلى منصور",
    "يوسف الخطيب",
    "نور الهدى سالم",
    "كريم عبد الله",
    "سلمى ناصر",
    "حسن الشريف",
    "مريم العلي",
    "طارق زيدان",
    "هدى إبراهيم",
    "خالد العمري",
    "رنا يوسف",
    "سامي حبيب",
    "دينا فؤاد",
    "زياد قاسم",
    "فاطمة الزهراء",
    "مازن حمدان",
    "جنى سليمان",
    "أحمد رشيد",
    "ياسمين خليل",
    "بلال عيسى",
    "رهف الأحمد",
    "وليد مراد",
    "لمى جابر",
    "إياد صبري",
    "شهد عثمان",
    "نادر البنا",
    "تالا عوض",
    "فارس حداد",
    "سارة مكي",
    "مهند ضاهر",
    "هبة الرفاعي",
    "عادل نجم",
    "ريم الصالح",
    "أنس بكر",
    "جود عمران",
    "رامي فهد",
    "لين الحسن",
    "معاذ شاكر",
]
LOCATIONS = {"en": "London", "fr": "Paris", "ar": "Cairo"}
ZONES = {"en": "Europe/London", "fr": "Europe/Paris", "ar": "Africa/Cairo"}


def _people() -> list[tuple[str, str]]:
    people = (
        [(n, "en") for n in ENGLISH] + [(n, "fr") for n in FRENCH] + [(n, "ar") for n in ARABIC]
    )
    random.Random(7).shuffle(people)
    return people


def _email(name: str, index: int, locale: str) -> str:
    if locale == "ar":
        return f"employee{index:03d}@acme.example.com"  # Arabic names have no ASCII spelling
    ascii_name = name.lower().replace("é", "e").replace("è", "e").replace(" ", ".")
    return f"{ascii_name}@acme.example.com"


def build_employees(org_id: uuid.UUID) -> list[dict[str, Any]]:
    """The demo directory as rows, managers linked, deterministic across runs."""
    people = iter(enumerate(_people()))
    rows: list[dict[str, Any]] = []

    def person(
        team: str | None, department: str | None, manager: uuid.UUID | None, level: str
    ) -> uuid.UUID:
        index, (name, locale) = next(people)
        row_id = new_id()
        rows.append(
            {
                "id": row_id,
                "organization_id": org_id,
                "email": _email(name, index, locale),
                "email_key": _email(name, index, locale).lower(),
                "name": name,
                "team": team,
                "department": department,
                "manager_id": manager,
                "locale": locale,
                "timezone": ZONES[locale],
                "attributes": {"location": LOCATIONS[locale], "level": level},
                "active": True,
            }
        )
        return row_id

    ceo = person(None, None, None, "executive")
    for department, teams in DEPARTMENTS.items():
        head = person(None, department, ceo, "director")
        for team in teams:
            lead = person(team, department, head, "manager")
            size = 4 if team == "People" else TEAM_SIZE  # a small team, to show suppression
            for _ in range(size - 1):
                person(team, department, lead, "individual")
    return rows


async def load_demo(session: AsyncSession, settings: Settings) -> str:
    """Create the demo organization, its directory and a year of survey history;
    returns a new admin key."""
    org = await organization_service.get_or_create_organization(session, DEMO_ORG)
    org.default_timezone = "Europe/London"
    rows = build_employees(org.id)
    # Insert managers before their reports: rows are built top-down.
    await employee_service.bulk_insert(session, rows)
    await load_survey_history(session, org.id, settings)
    await load_checkins(session, org.id, settings)
    _, key = await organization_service.create_api_key(
        session, org.id, ApiKeyCreate(name="demo", scope="admin")
    )
    return key


async def database_is_empty(session: AsyncSession) -> bool:
    return (await session.scalar(select(func.count()).select_from(Organization))) == 0


async def new_admin_key(session: AsyncSession, name: str) -> str:
    org = (
        await session.execute(select(Organization).order_by(Organization.created_at).limit(1))
    ).scalar_one()
    _, key = await organization_service.create_api_key(
        session, org.id, ApiKeyCreate(name=name, scope="admin")
    )
    return key


async def employee_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Employee)) or 0)


async def demo_links(session: AsyncSession, settings: Settings) -> list[tuple[str, str, str]]:
    """Links to the demo's open wave, one per locale (see open_wave_links)."""
    from app.surveys.models import Survey

    survey_id = await session.scalar(
        select(Survey.id).where(Survey.name == "Monthly pulse").limit(1)
    )
    if survey_id is None:
        return []
    return await open_wave_links(session, survey_id, settings)


async def demo_meeting_links(
    session: AsyncSession, settings: Settings
) -> list[tuple[str, str, str]]:
    """The manager's and the report's link to the next demo one-on-one."""
    return await meeting_links(session, settings)
