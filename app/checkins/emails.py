"""Meeting emails: the calendar invite (REQUEST), its cancellation (CANCEL) and the
pre-meeting check-in, rendered at send time from the participant's meeting link."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.checkins import ics
from app.checkins.models import CheckinSeries, Meeting, MeetingLink
from app.core.config import Settings
from app.employees.models import Employee
from app.notifications.outbox import Claimed
from app.notifications.render import AboutGone, Attachment, Unsendable, register_kind
from app.organizations.models import Organization
from app.surveys import links


async def _load(
    session: AsyncSession, claimed: Claimed
) -> tuple[MeetingLink, Meeting, CheckinSeries, str]:
    row = (
        await session.execute(
            select(MeetingLink, Meeting, CheckinSeries, Organization.name)
            .join(Meeting, Meeting.id == MeetingLink.meeting_id)
            .join(CheckinSeries, CheckinSeries.id == Meeting.series_id)
            .join(Organization, Organization.id == Meeting.organization_id)
            .where(MeetingLink.id == claimed.about_id)
        )
    ).one_or_none()
    if row is None:
        raise AboutGone("the meeting no longer exists")
    return row[0], row[1], row[2], row[3]


async def _people(session: AsyncSession, series: CheckinSeries) -> tuple[ics.Person, ics.Person]:
    rows = {
        e.id: e
        for e in (
            await session.execute(
                select(Employee).where(Employee.id.in_([series.manager_id, series.employee_id]))
            )
        ).scalars()
    }
    manager, report = rows[series.manager_id], rows[series.employee_id]
    return ics.Person(manager.name, manager.email), ics.Person(report.name, report.email)


async def _context(session: AsyncSession, claimed: Claimed, settings: Settings) -> dict[str, Any]:
    link, meeting, series, org_name = await _load(session, claimed)
    if claimed.kind == "meeting_invite" and meeting.status == "cancelled":
        raise AboutGone("the meeting was cancelled")
    # A CANCEL rendered after the meeting was scheduled again would carry the new
    # SEQUENCE and take the live event out of both calendars.
    if claimed.kind == "meeting_cancel" and meeting.status != "cancelled":
        raise AboutGone("the meeting is scheduled again")
    if claimed.kind == "checkin_request" and (
        meeting.status != "scheduled" or meeting.checkin_submitted or not series.questions
    ):
        raise AboutGone("the check-in is no longer needed")
    manager, report = await _people(session, series)
    other = report if link.role == "manager" else manager
    try:
        token = links.recompute(settings, link.id, link.salt, link.key_id)
    except KeyError as exc:  # the person still needs the link: fail where HR looks
        raise Unsendable("the key that signed this link was retired") from exc
    local = meeting.scheduled_at.astimezone(ZoneInfo(series.timezone))
    return {
        "organization": org_name,
        "role": link.role,
        "other": other.name or other.email,
        "link": f"{settings.public_base_url}/m/{token}",
        "when": local.strftime("%Y-%m-%d %H:%M"),
        "timezone": series.timezone,
        "duration": meeting.duration_minutes,
        "_meeting": meeting,
        "_series": series,
        "_manager": manager,
        "_report": report,
    }


async def _invite(
    session: AsyncSession, claimed: Claimed, settings: Settings, ctx: dict[str, Any]
) -> list[Attachment]:
    meeting: Meeting = ctx["_meeting"]
    series: CheckinSeries = ctx["_series"]
    method: ics.Method = "CANCEL" if claimed.kind == "meeting_cancel" else "REQUEST"
    manager: ics.Person = ctx["_manager"]
    report: ics.Person = ctx["_report"]
    summary, description = ics.wording(ctx["lang"], ctx["other"], ctx["link"])
    body = ics.build_invite(
        meeting_id=meeting.id,
        method=method,
        sequence=meeting.sequence,
        scheduled_at=meeting.scheduled_at,
        duration_minutes=meeting.duration_minutes,
        timezone=series.timezone,
        manager=manager,
        report=report,
        summary=summary,
        description=description,
        url=ctx["link"],
    )
    # Outlook reads the method from the part's Content-Type; the others from the body.
    params = {"method": method, "charset": "utf-8"}
    return [Attachment("invite.ics", body, "text", "calendar", params)]


register_kind("meeting_invite", _context, _invite)
register_kind("meeting_cancel", _context, _invite)
register_kind("checkin_request", _context)
