"""Demo survey history: a monthly eNPS pulse with a year of closed, answered waves and
one open wave whose links `make run` prints.

Answers are drawn per team from a propensity that drifts month by month (Support
slides, Platform recovers), so the trend and the team breakdown show something worth
looking at. The People team has 4 members, below the minimum group size of 5, so its
results are suppressed in reports."""

from __future__ import annotations

import math
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import new_id, utcnow
from app.employees.models import Employee
from app.scheduling import recurrence
from app.surveys import links, waves
from app.surveys import service as survey_service
from app.surveys.models import Answer, Invitation, Response, Survey, Wave
from app.surveys.schemas import Question, Schedule, SurveyCreate

RULE = "FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9;BYMINUTE=0"
TIMEZONE = "Europe/London"
QUESTIONS: list[dict[str, Any]] = [
    {"key": "enps", "kind": "enps", "required": True},
    {
        "key": "workload",
        "kind": "rating",
        "scale": 5,
        "required": True,
        "prompt": {
            "en": "My workload is manageable",
            "fr": "Ma charge de travail est raisonnable",
            "ar": "عبء عملي معقول",
        },
    },
    {
        "key": "recognition",
        "kind": "yes_no",
        "required": False,
        "prompt": {
            "en": "I received recognition for good work this month",
            "fr": "J'ai été reconnu·e pour mon travail ce mois-ci",
            "ar": "حصلت على تقدير لعملي الجيد هذا الشهر",
        },
    },
    {
        "key": "comment",
        "kind": "text",
        "required": False,
        "prompt": {
            "en": "Anything else you would like to share?",
            "fr": "Autre chose à partager ?",
            "ar": "هل هناك شيء آخر تود مشاركته؟",
        },
    },
]
# Team mood: a base and a monthly drift (positive is getting better).
MOOD = {
    "Platform": (0.1, 0.05),
    "Mobile": (0.4, 0.0),
    "Sales": (0.2, 0.02),
    "Marketing": (0.5, -0.01),
    "Support": (0.45, -0.06),
    "People": (0.3, 0.0),
}
COMMENTS = [
    "More focus time would help.",
    "Great team, unclear priorities.",
    "The new onboarding is much better.",
    "Too many meetings this month.",
    "أتمنى وضوحًا أكبر في الأولويات.",
    "Merci pour la flexibilité des horaires.",
]


def _score(rng: random.Random, mood: float) -> int:
    """An eNPS score pulled towards 9-10 by a good mood and towards 0-6 by a bad one."""
    centre = 6.5 + 3.0 * math.tanh(mood)
    return max(0, min(10, round(rng.gauss(centre, 1.8))))


async def load_survey_history(
    session: AsyncSession, org_id: uuid.UUID, settings: Settings
) -> uuid.UUID:
    """Create the demo pulse, a year of closed waves with answers, and an open wave."""
    rng = random.Random(2027)
    now = utcnow()
    starts_at = (now - timedelta(days=380)).replace(hour=0, minute=0, second=0, microsecond=0)
    # Through the service, as POST /v1/surveys would: it fills in the built-in eNPS prompt
    # (and whatever else it normalises), so the demo shows what a real survey stores.
    survey = await survey_service.create_survey(
        session,
        org_id,
        SurveyCreate(
            name="Monthly pulse",
            status="active",
            anonymous=True,
            min_group_size=5,
            comment_min_group_size=5,
            questions=[Question.model_validate(q) for q in QUESTIONS],
            schedule=Schedule(rrule=RULE, timezone=TIMEZONE, starts_at=starts_at),
            window_hours=120,
            reminders_hours=[48, 96],
        ),
    )
    employees = (
        (
            await session.execute(
                select(Employee).where(
                    Employee.organization_id == org_id, Employee.active.is_(True)
                )
            )
        )
        .scalars()
        .all()
    )
    occurrences = recurrence.occurrences_after(RULE, starts_at, TIMEZONE, starts_at, 14)
    past = [o for o in occurrences if o + timedelta(hours=survey.window_hours) < now][-12:]
    key_id, key = links.current_key(settings)
    for month, occurrence in enumerate(past):
        await _closed_wave(session, survey, employees, occurrence, month, rng, key_id, key)
    # The open wave goes through the real path: invitations and emails queued.
    await waves.open_wave(session, survey, now, settings)
    survey.next_opening_at = survey_service.next_opening(survey, now)
    return survey.id


async def _closed_wave(
    session: AsyncSession,
    survey: Survey,
    employees: Any,
    occurrence: datetime,
    month: int,
    rng: random.Random,
    key_id: str,
    key: bytes,
) -> None:
    wave_id = new_id()
    closes_at = occurrence + timedelta(hours=survey.window_hours)
    await session.execute(
        insert(Wave).values(
            id=wave_id,
            organization_id=survey.organization_id,
            survey_id=survey.id,
            occurrence_at=occurrence,
            opens_at=occurrence,
            closes_at=closes_at,
            closed_at=closes_at,
            status="closed",
            questions=survey.questions,
            anonymous=True,
            min_group_size=survey.min_group_size,
            reminders_hours=survey.reminders_hours,
            reminders_sent=2,
            invited=len(employees),
            created_at=occurrence,
        )
    )
    invitations, responses, answers = [], [], []
    for e in employees:
        inv_id, salt, token_hash = links.new_link(key)
        answered = rng.random() < (
            0.62 + 0.02 * month if e.team != "Support" else 0.7 - 0.02 * month
        )
        invitations.append(
            {
                "id": inv_id,
                "wave_id": wave_id,
                "employee_id": e.id,
                "salt": salt,
                "key_id": key_id,
                "token_hash": token_hash,
                "team": e.team,
                "department": e.department,
                "manager_id": e.manager_id,
                "attributes": e.attributes or {},
                "locale": e.locale,
                "answered": answered,
            }
        )
        if not answered:
            continue
        base, drift = MOOD.get(e.team or "", (0.6, 0.0))
        mood = base + drift * (month - 6) + rng.gauss(0, 0.5)
        response_id = uuid.uuid4()
        responses.append(
            {
                "id": response_id,
                "wave_id": wave_id,
                "survey_id": survey.id,
                "organization_id": survey.organization_id,
                "employee_id": None,
                "team": e.team,
                "department": e.department,
                "manager_id": e.manager_id,
                "attributes": e.attributes or {},
                "answered_on": (occurrence + timedelta(hours=rng.uniform(0, 100))).date(),
            }
        )
        common = {"response_id": response_id, "wave_id": wave_id, "choices": None, "text": None}
        answers.append(
            {**common, "question_key": "enps", "kind": "enps", "score": _score(rng, mood)}
        )
        workload = max(1, min(5, round(rng.gauss(3.2 + mood, 0.9))))
        answers.append({**common, "question_key": "workload", "kind": "rating", "score": workload})
        if rng.random() < 0.8:
            answers.append(
                {
                    **common,
                    "question_key": "recognition",
                    "kind": "yes_no",
                    "score": int(rng.random() < 0.4 + mood / 3),
                }
            )
        if rng.random() < 0.15:
            answers.append(
                {
                    **common,
                    "question_key": "comment",
                    "kind": "text",
                    "score": None,
                    "text": rng.choice(COMMENTS),
                }
            )
    await session.execute(insert(Invitation), invitations)
    await waves.record_segments(session, wave_id)
    if responses:
        await session.execute(insert(Response), responses)
        await session.execute(insert(Answer), answers)


async def open_wave_links(
    session: AsyncSession, survey_id: uuid.UUID, settings: Settings, count: int = 2
) -> list[tuple[str, str, str]]:
    """(name, locale, link) for a few invitees of the open wave, one per locale first:
    `make run` prints them so a newcomer can answer straight away."""
    rows = (
        await session.execute(
            select(Invitation, Employee.name)
            .join(Wave, Wave.id == Invitation.wave_id)
            .join(Employee, Employee.id == Invitation.employee_id)
            .where(
                Wave.survey_id == survey_id, Wave.status == "open", Invitation.answered.is_(False)
            )
            .order_by(Employee.id)
        )
    ).all()
    picked: dict[str, tuple[str, str, str]] = {}
    for invitation, name in rows:
        if invitation.locale not in picked:
            token = links.recompute(settings, invitation.id, invitation.salt, invitation.key_id)
            picked[invitation.locale] = (
                name,
                invitation.locale,
                f"{settings.public_base_url}/r/{token}",
            )
    return list(picked.values())[: max(count, len(picked))]
