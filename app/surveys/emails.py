"""Invitation and reminder emails: rendered at send time from the invitation, with the
link recomputed from its salt (the outbox never holds it)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.employees.models import Employee
from app.notifications.outbox import Claimed
from app.notifications.render import AboutGone, Unsendable, register_kind
from app.organizations.models import Organization
from app.surveys import links
from app.surveys.models import Invitation, Survey, Wave


async def _context(session: AsyncSession, claimed: Claimed, settings: Settings) -> dict[str, Any]:
    row = (
        await session.execute(
            select(
                Invitation, Wave, Survey.name, Organization.name, Employee.timezone, Employee.active
            )
            .join(Wave, Wave.id == Invitation.wave_id)
            .join(Survey, Survey.id == Wave.survey_id)
            .join(Organization, Organization.id == Wave.organization_id)
            .join(Employee, Employee.id == Invitation.employee_id)
            .where(Invitation.id == claimed.about_id)
        )
    ).one_or_none()
    if row is None:
        raise AboutGone("the invitation no longer exists")
    invitation, wave, survey_name, org_name, timezone, active = row
    if wave.status != "open":
        raise AboutGone("the wave has closed")
    if invitation.answered:
        raise AboutGone("no longer needed")
    if not active:
        raise AboutGone("the employee was deactivated")
    try:
        token = links.recompute(settings, invitation.id, invitation.salt, invitation.key_id)
    except KeyError as exc:
        # Not AboutGone: the invitee still needs the link. Restoring the key to
        # PULSE_OLD_SECRET_KEYS and retrying the delivery sends it.
        raise Unsendable("the key that signed this link was retired") from exc
    closes_local = wave.closes_at.astimezone(ZoneInfo(timezone))
    return {
        "organization": org_name,
        "survey": survey_name,
        "link": f"{settings.public_base_url}/r/{token}",
        "closes_at": closes_local.strftime("%Y-%m-%d %H:%M"),
        "timezone": timezone,
        "anonymous": wave.anonymous,
        "question_count": len(wave.questions),
    }


register_kind("survey_invitation", _context)
register_kind("survey_reminder", _context)
