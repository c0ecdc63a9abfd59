"""HTTP layer for reports: JSON or CSV (``Accept: text/csv``), ETags, private caching.

A `reports` key reads these and nothing else; an `admin` key reads them too."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import Query, Request, Response
from pydantic import BaseModel

from app.core.errors import error_responses
from app.core.routing import api_router
from app.organizations.dependencies import Reader, Session
from app.reports import service
from app.reports.schemas import EnpsReport, Interval, ParticipationReport, QuestionsReport

router = api_router(tags=["reports"])

CSV_MEDIA = "text/csv"
CACHE_CONTROL = "private, max-age=60"


def _params(
    survey_id: uuid.UUID | None,
    from_: date | None,
    to: date | None,
    interval: str,
    group_by: str | None,
    team: str | None,
    department: str | None,
) -> service.Params:
    return service.Params(survey_id, from_, to, interval, group_by, team, department)


SurveyId = Annotated[uuid.UUID | None, Query(description="One survey; default: every survey.")]
From = Annotated[date | None, Query(alias="from", description="First day (snapped to its period).")]
To = Annotated[date | None, Query(description="Last day (snapped to the end of its period).")]
GroupBy = Annotated[
    str | None,
    Query(max_length=80, description="team, department, manager or attribute:<name>."),
]
Team = Annotated[str | None, Query(max_length=200)]
Department = Annotated[str | None, Query(max_length=200)]

_CSV_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {CSV_MEDIA: {"schema": {"type": "string"}}}},
    304: {"description": "Not modified (If-None-Match matched the ETag)."},
    **error_responses(404),  # a survey_id of another organization, or of none
}


def wants_csv(accept: str) -> bool:
    """CSV when the client ranks text/csv above JSON (RFC 9110 quality values); JSON for
    no Accept, */*, or a text/csv it ranks lower or refuses with q=0."""
    ranks = {CSV_MEDIA: 0.0, "application/json": 0.0, "*/*": 0.0}
    for part in accept.split(","):
        media, *options = (p.strip() for p in part.split(";"))
        media = media.lower()
        if media not in ranks and media not in ("text/*", "application/*"):
            continue
        q = 1.0
        for option in options:
            name, _, value = option.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media in ("text/*", "application/*"):
            media = CSV_MEDIA if media == "text/*" else "application/json"
            q = min(q, 0.999)  # an exact type outranks its wildcard
        ranks[media] = max(ranks[media], q)
    json_rank = max(ranks["application/json"], ranks["*/*"])
    return ranks[CSV_MEDIA] > 0 and ranks[CSV_MEDIA] > json_rank


# A cell a spreadsheet would run as a formula (OWASP, "CSV injection"): comments are
# written by employees and opened by HR in Excel, so such a cell gets a leading quote.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"  # as in the JSON
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _respond(request: Request, report: BaseModel) -> Response:
    """Serialize as JSON or CSV, with an ETag of the body, answering 304 when the
    client already has it."""
    if wants_csv(request.headers.get("accept", "")):
        header, rows = service.csv_rows(report)  # type: ignore[arg-type]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180
        writer.writerow(header)
        writer.writerows([[csv_cell(v) for v in row] for row in rows])
        body = buffer.getvalue().encode("utf-8")
        media = f"{CSV_MEDIA}; charset=utf-8"
    else:
        body = report.model_dump_json(by_alias=True).encode()
        media = "application/json"
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept, Authorization"}
    candidates = {
        t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")
    }
    if etag in candidates or "*" in candidates:
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type=media, headers=headers)


@router.get("/v1/reports/enps", response_model=EnpsReport, responses=_CSV_DOC)
async def enps_report(
    request: Request,
    principal: Reader,
    session: Session,
    survey_id: SurveyId = None,
    from_: From = None,
    to: To = None,
    interval: Interval = "month",
    group_by: GroupBy = None,
    team: Team = None,
    department: Department = None,
) -> Response:
    """eNPS trend by week, month, quarter or wave, optionally by group, with counts,
    95 % intervals and small groups suppressed."""
    params = _params(survey_id, from_, to, interval, group_by, team, department)
    return _respond(request, await service.enps_report(session, principal.organization_id, params))


@router.get("/v1/reports/participation", response_model=ParticipationReport, responses=_CSV_DOC)
async def participation_report(
    request: Request,
    principal: Reader,
    session: Session,
    survey_id: SurveyId = None,
    from_: From = None,
    to: To = None,
    interval: Interval = "wave",
    group_by: GroupBy = None,
    team: Team = None,
    department: Department = None,
) -> Response:
    """Invited, responded and response rate per wave or period and group."""
    params = _params(survey_id, from_, to, interval, group_by, team, department)
    report = await service.participation_report(session, principal.organization_id, params)
    return _respond(request, report)


@router.get("/v1/reports/questions", response_model=QuestionsReport, responses=_CSV_DOC)
async def questions_report(
    request: Request,
    principal: Reader,
    session: Session,
    survey_id: SurveyId = None,
    from_: From = None,
    to: To = None,
    team: Team = None,
    department: Department = None,
) -> Response:
    """Per wave and question: rating means and distributions, choice counts, yes/no
    shares, the eNPS breakdown, and comments where the group is large enough."""
    params = _params(survey_id, from_, to, "wave", None, team, department)
    return _respond(
        request, await service.questions_report(session, principal.organization_id, params)
    )
