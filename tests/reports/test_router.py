"""Reports over HTTP: figures against counts made here from the raw answers inserted,
periods in the organization's time zone, windows, scopes and tenancy, CSV, ETags and
parameter errors. Anonymity rules have their own module (test_anonymity.py)."""

from __future__ import annotations

import csv
import io
import itertools
import random
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from app.core.db import Database
from app.reports.enps import Counts, score
from tests.conftest import Org
from tests.employees.helpers import assert_problem
from tests.reports.factory import Factory, Inserted, group_of, people

REPORTS = ("/v1/reports/enps", "/v1/reports/participation", "/v1/reports/questions")
INTERVALS = ("week", "month", "quarter", "wave")
GROUPINGS = (None, "team", "department", "manager", "attribute:location")
BERLIN = ZoneInfo("Europe/Berlin")
WHOLE_2027 = {"from": "2027-01-01", "to": "2027-12-31"}


@pytest.fixture
def factory(db: Database, org: Org) -> Factory:
    return Factory(db, org.id)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


async def get(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- independent counting ------------------------------------------------------------


def period_of(local: date, interval: str) -> date:
    """Written apart from the service on purpose: ISO weeks, calendar months, quarters."""
    if interval == "week":
        return date.fromisocalendar(*local.isocalendar()[:2], 1)
    if interval == "month":
        return date(local.year, local.month, 1)
    if interval == "quarter":
        return date(local.year, [1, 1, 1, 4, 4, 4, 7, 7, 7, 10, 10, 10][local.month - 1], 1)
    return local


def expected_counts(
    inserted: Sequence[Inserted],
    interval: str,
    group_by: str | None,
    zone: ZoneInfo,
    names: dict[uuid.UUID, str],
) -> dict[tuple[str, str | None, str | None], Counts]:
    """(period_start, wave_id, group label) → eNPS counts, straight from the answers."""
    scores: dict[tuple[str, str | None, str | None], list[int | None]] = defaultdict(list)
    for rec in inserted:
        value = rec.answers.get("enps")
        if value is None:
            continue
        local = rec.occurrence_at.astimezone(zone).date()
        start = period_of(local, interval)
        wave = str(rec.wave_id) if interval == "wave" else None
        group = group_of(rec.person, group_by)
        label = None if group_by is None else "(none)" if group is None else names.get(group, group)
        scores[(start.isoformat(), wave, label)].append(value)
    return {k: Counts.of(v) for k, v in scores.items()}


def figures(c: Counts) -> dict[str, Any]:
    s = score(c)
    assert s is not None
    return {
        "responses": c.responses,
        "promoters": c.promoters,
        "passives": c.passives,
        "detractors": c.detractors,
        "enps": s.enps,
        "ci_low": s.ci_low,
        "ci_high": s.ci_high,
        "margin_of_error": s.margin_of_error,
        "suppressed": False,
    }


def row_key(row: dict[str, Any]) -> tuple[str, str | None, str | None]:
    return row["period_start"], row["wave_id"], row["group"]


def row_figures(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in figures(Counts(1, 0, 0))}


@pytest.fixture
async def history(factory: Factory) -> tuple[list[Inserted], dict[uuid.UUID, str]]:
    """Six waves in Europe/Berlin where every cell of every grouping holds 3 or more
    (threshold 3), so nothing is hidden and every figure can be checked. Waves share
    ISO weeks across a month and a quarter end; one opens at 00:30 local on June 1st,
    still May 31st in UTC."""
    await factory.organization(timezone="Europe/Berlin", min_group_size=3)
    survey = await factory.survey(min_group_size=3, comment_min_group_size=3)
    ada = await factory.employee("Ada Manager")
    bo = await factory.employee("Bo Manager")
    occurrences = [
        berlin(2027, 1, 4, 9),
        berlin(2027, 1, 6, 9),
        berlin(2027, 1, 18, 9),
        berlin(2027, 3, 29, 9),
        berlin(2027, 4, 1, 9),
        berlin(2027, 6, 1, 0, 30),
    ]
    for i, at in enumerate(occurrences):
        rng = random.Random(i)

        def scores(n: int, rng: random.Random = rng) -> list[int | None]:
            return [rng.randint(0, 10) for _ in range(n)]

        invitees = [
            *people(4, team="Platform", department="Engineering", manager_id=ada, enps=scores(4)),
            *people(4, team="Mobile", department="Engineering", manager_id=bo, enps=scores(4)),
            *people(4, team="Sales", department="Commercial", manager_id=ada, enps=scores(4)),
            *people(3, enps=scores(3)),  # no team, department, manager or location
            *people(1, team="Sales", department="Commercial", manager_id=ada, enps=[None]),
            *people(2, team="Mobile", department="Engineering", answered=False),
        ]
        for n, p in enumerate(invitees[:12]):
            p.attributes = {"location": "Cairo" if n % 2 else "Berlin"}
        await factory.wave(survey, at, invitees)
    return factory.inserted, {ada: "Ada Manager", bo: "Bo Manager"}


# --- figures -------------------------------------------------------------------------


async def test_trend_equals_counts_computed_from_the_raw_answers(
    client: httpx.AsyncClient, org: Org, history: tuple[list[Inserted], dict[uuid.UUID, str]]
) -> None:
    """Every interval and every grouping (one test: the history is the slow part)."""
    inserted, names = history
    for interval, group_by in itertools.product(INTERVALS, GROUPINGS):
        params: dict[str, Any] = {**WHOLE_2027, "interval": interval}
        if group_by:
            params["group_by"] = group_by
        body = await get(client, "/v1/reports/enps", org.reports, **params)
        expected = expected_counts(inserted, interval, group_by, BERLIN, names)

        assert body["interval"] == interval
        assert body["group_by"] == group_by
        assert body["min_group_size"] == 3
        got = {row_key(r): row_figures(r) for r in body["series"]}
        assert len(got) == len(body["series"]), "one row per period and group"
        assert got == {k: figures(c) for k, c in expected.items()}, (interval, group_by)
        total = sum(expected.values(), Counts(0, 0, 0))
        assert body["overall"] == figures(total), (interval, group_by)
        if group_by == "manager":
            ids = {r["group"]: r["group_id"] for r in body["series"]}
            assert {ids["Ada Manager"], ids["Bo Manager"]} == {str(i) for i in names}


async def test_skipped_enps_answers_count_nowhere(
    client: httpx.AsyncClient, org: Org, history: tuple[list[Inserted], dict[uuid.UUID, str]]
) -> None:
    inserted, _ = history
    body = await get(client, "/v1/reports/enps", org.reports, interval="wave", **WHOLE_2027)
    answered = sum(1 for rec in inserted if rec.answers.get("enps") is not None)
    skipped = sum(1 for rec in inserted if rec.answers.get("enps") is None)
    assert skipped == 6
    assert body["overall"]["responses"] == answered
    assert body["overall"]["passives"] == sum(
        1 for rec in inserted if rec.answers.get("enps") in (7, 8)
    )


async def test_periods_follow_the_organizations_time_zone(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    """2027-03-31T23:30Z is April 1st, 08:30 in Tokyo: April's wave, April's month,
    the second quarter."""
    survey = await factory.survey()
    at = datetime(2027, 3, 31, 23, 30, tzinfo=UTC)
    await factory.wave(survey, at, people(6, team="Sales"))
    await factory.organization(timezone="Asia/Tokyo")

    monthly = await get(client, "/v1/reports/enps", org.reports, **WHOLE_2027)
    assert [r["period_start"] for r in monthly["series"]] == ["2027-04-01"]
    quarterly = await get(client, "/v1/reports/enps", org.reports, interval="quarter", **WHOLE_2027)
    assert [r["period_start"] for r in quarterly["series"]] == ["2027-04-01"]
    waves = await get(client, "/v1/reports/enps", org.reports, interval="wave", **WHOLE_2027)
    assert [r["period_start"] for r in waves["series"]] == ["2027-04-01"]
    march = await get(
        client, "/v1/reports/enps", org.reports, **{"from": "2027-03-01", "to": "2027-03-31"}
    )
    assert march["series"] == []

    await factory.organization(timezone="UTC")
    utc = await get(client, "/v1/reports/enps", org.reports, **WHOLE_2027)
    assert [r["period_start"] for r in utc["series"]] == ["2027-03-01"]


async def test_from_and_to_snap_outward_to_whole_periods(
    client: httpx.AsyncClient, org: Org
) -> None:
    windows = {
        "week": ("2027-01-11", "2027-02-07"),  # Monday to Sunday
        "month": ("2027-01-01", "2027-02-28"),
        "quarter": ("2027-01-01", "2027-03-31"),
    }
    for interval, window in windows.items():
        body = await get(
            client,
            "/v1/reports/enps",
            org.reports,
            interval=interval,
            **{"from": "2027-01-13", "to": "2027-02-02"},
        )
        assert (body["window"]["from"], body["window"]["to"]) == window, interval


async def test_a_wave_window_snaps_outward_to_whole_waves(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey()
    # Opens on the 4th, closes 120 hours later, on the 9th.
    wave = await factory.wave(survey, datetime(2027, 1, 4, 9, tzinfo=UTC), people(6))
    await factory.wave(survey, datetime(2027, 2, 1, 9, tzinfo=UTC), people(6))

    body = await get(
        client,
        "/v1/reports/enps",
        org.reports,
        interval="wave",
        **{"from": "2027-01-06", "to": "2027-01-07"},
    )
    assert body["window"] == {"from": "2027-01-04", "to": "2027-01-09"}
    assert [r["wave_id"] for r in body["series"]] == [str(wave)]


# --- the questions report --------------------------------------------------------------


async def test_questions_report_gives_means_distributions_choices_and_shares(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey(min_group_size=5, comment_min_group_size=5)
    invitees = people(
        6,
        team="Sales",
        enps=[10, 9, 7, 3, 0, None],
        workload=[1, 2, 2, 5, 5, 4],
        tool=["laptop", "laptop", "phone", "laptop", "desk", "phone"],
        perks=[
            ["laptop", "phone"],
            ["phone"],
            [],
            ["laptop", "phone", "desk"],
            ["desk"],
            ["phone"],
        ],
        recognised=[True, False, True, True],  # the last two skip it
        comment=["Más foco", "Less meetings", "أتمنى وضوحًا أكبر", "ok", "ok", "Fine"],
    )
    for p in invitees[4:]:
        assert p.answers is not None
        del p.answers["recognised"]
    wave = await factory.wave(survey, datetime(2027, 2, 1, 9, tzinfo=UTC), invitees)

    body = await get(client, "/v1/reports/questions", org.reports, **WHOLE_2027)
    assert body["window"] == WHOLE_2027
    (entry,) = body["waves"]
    assert entry["wave_id"] == str(wave)
    assert entry["survey_id"] == str(survey)
    assert entry["responses"] == 6
    assert entry["suppressed"] is False
    q = {item["key"]: item for item in entry["questions"]}
    assert list(q) == ["enps", "workload", "tool", "perks", "recognised", "comment"]

    assert q["enps"]["responses"] == 5
    assert q["enps"]["enps"] == figures(Counts(promoters=2, passives=1, detractors=2))
    assert q["enps"]["distribution"]["10"] == 1
    assert sum(q["enps"]["distribution"].values()) == 5

    assert q["workload"]["distribution"] == {"1": 1, "2": 2, "3": 0, "4": 1, "5": 2}
    assert q["workload"]["mean"] == round((1 + 2 + 2 + 5 + 5 + 4) / 6, 2)
    assert q["workload"]["responses"] == 6

    assert q["tool"]["choices"] == {"laptop": 3, "phone": 2, "desk": 1}
    assert q["tool"]["responses"] == 6
    assert q["perks"]["choices"] == {"laptop": 2, "phone": 4, "desk": 2}
    assert q["perks"]["responses"] == 6  # people, not ticks (one ticked nothing)

    assert q["recognised"]["yes_share"] == 0.75
    assert q["recognised"]["responses"] == 4

    assert sorted(q["comment"]["comments"]) == sorted(
        ["Más foco", "Less meetings", "أتمنى وضوحًا أكبر", "ok", "ok", "Fine"]
    )
    assert all(isinstance(c, str) for c in q["comment"]["comments"])
    assert q["comment"]["comments_suppressed"] is False


async def test_change_is_from_the_period_just_before_and_only_when_it_is_shown(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey(min_group_size=5)
    scores = {1: [10] * 6 + [0] * 4, 2: [10] * 3, 3: [10] * 2 + [0] * 8, 4: [10] * 9 + [7]}
    for month, enps in scores.items():
        await factory.wave(
            survey, datetime(2027, month, 1, 9, tzinfo=UTC), people(len(enps), enps=enps)
        )
    body = await get(client, "/v1/reports/enps", org.reports, **WHOLE_2027)
    rows = {r["period_start"]: r for r in body["series"]}
    assert rows["2027-01-01"]["change"] is None  # nothing before it
    assert rows["2027-02-01"]["suppressed"] is True
    assert rows["2027-03-01"]["change"] is None  # February is hidden: no silent skip to January
    april = rows["2027-04-01"]["change"]
    assert april["difference"] == 90.0 - (-60.0)
    assert april["ci_low"] <= april["difference"] <= april["ci_high"]
    assert april["significant"] is True


async def test_comments_come_shuffled_the_same_way_on_every_request(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    """The order must not tell who wrote first, and must not change between requests
    either: a dashboard polling with If-None-Match would otherwise never get a 304."""
    survey = await factory.survey()
    texts = [f"comment {i:02d}" for i in range(20)]
    await factory.wave(survey, datetime(2027, 2, 1, 9, tzinfo=UTC), people(20, comment=texts))
    first = await client.get("/v1/reports/questions", params=WHOLE_2027, headers=org.reports)
    (comment,) = [q for q in first.json()["waves"][0]["questions"] if q["key"] == "comment"]
    assert sorted(comment["comments"]) == texts
    assert comment["comments"] != texts, "not in the order they were written"
    again = await client.get(
        "/v1/reports/questions",
        params=WHOLE_2027,
        headers={**org.reports, "If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304


# --- scopes and tenancy ----------------------------------------------------------------


async def test_reports_and_admin_keys_read_every_report(
    client: httpx.AsyncClient, org: Org
) -> None:
    for path, headers in itertools.product(REPORTS, (org.reports, org.admin)):
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)


async def test_reports_need_a_key(client: httpx.AsyncClient) -> None:
    for path in REPORTS:
        response = await client.get(path)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_reports_key_is_refused_on_named_admin_endpoints(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await client.post(
        "/v1/employees", json={"email": "x@example.com", "name": "X"}, headers=org.reports
    )
    assert_problem(created, 403)
    for path in ("/v1/employees", "/v1/organization", "/v1/surveys", "/v1/deliveries"):
        assert_problem(await client.get(path, headers=org.reports), 403)


# Routes that take no API key at all: employees' links, operations, documentation.
KEYLESS_PREFIXES = ("/r/", "/m/", "/v1/respond/", "/v1/meetings/", "/docs", "/redoc")
KEYLESS = {"/healthz", "/readyz", "/metrics", "/openapi.json"}


def every_route(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, included routers flattened (FastAPI keeps them
    as wrappers in ``app.routes``)."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for ctx in contexts() if callable(contexts) else contexts:
                for method in ctx.methods or ():
                    yield method, ctx.path
            continue
        for method in getattr(route, "methods", None) or ():
            yield method, route.path  # type: ignore[attr-defined]


def non_report_routes(app: FastAPI) -> list[tuple[str, str]]:
    return sorted(
        {
            (method, path)
            for method, path in every_route(app)
            if method != "HEAD"
            and not path.startswith("/v1/reports/")
            and path not in KEYLESS
            and not path.startswith(KEYLESS_PREFIXES)
        }
    )


def test_every_documented_path_is_enumerated(app: FastAPI) -> None:
    # Starlette writes a converter into the path ({token:path}); OpenAPI leaves it out.
    enumerated = {re.sub(r"{(\w+):\w+}", r"{\1}", path) for _, path in every_route(app)}
    documented = set(app.openapi()["paths"])
    assert documented <= enumerated, documented - enumerated
    assert len(non_report_routes(app)) >= 15


async def test_a_reports_key_is_refused_on_every_other_endpoint(
    client: httpx.AsyncClient, app: FastAPI, org: Org
) -> None:
    answers = {}
    for method, template in non_report_routes(app):
        path = template
        while "{" in path:
            start, end = path.index("{"), path.index("}")
            path = path[:start] + str(uuid.uuid4()) + path[end + 1 :]
        body = {} if method in ("POST", "PUT", "PATCH") else None
        response = await client.request(method, path, json=body, headers=org.reports)
        answers[(method, template)] = response.status_code
    assert answers, "no routes found"
    assert {k: v for k, v in answers.items() if v != 403} == {}


async def test_another_organizations_key_sees_none_of_the_data(
    client: httpx.AsyncClient, org: Org, other_org: Org, factory: Factory
) -> None:
    survey = await factory.survey()
    await factory.wave(survey, datetime(2027, 2, 1, 9, tzinfo=UTC), people(8, team="Sales"))
    mine = await get(client, "/v1/reports/enps", org.reports, **WHOLE_2027)
    assert mine["overall"]["responses"] == 8

    for path in REPORTS:
        theirs = await get(client, path, other_org.reports, **WHOLE_2027)
        assert theirs.get("series", theirs.get("waves")) == []
        response = await client.get(
            path, params={"survey_id": str(survey)}, headers=other_org.reports
        )
        assert_problem(response, 404)


async def test_an_unknown_survey_answers_404(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.get(
        "/v1/reports/enps", params={"survey_id": str(uuid.uuid4())}, headers=org.reports
    )
    assert_problem(response, 404)


# --- CSV, ETag, caching ----------------------------------------------------------------


async def test_csv_has_one_header_line_rfc_4180_quoting_and_the_json_rows(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey()
    quoted = 'R&D, "Core"'
    arabic = "فريق المبيعات"
    for month in (1, 2):
        await factory.wave(
            survey,
            datetime(2027, month, 1, 9, tzinfo=UTC),
            [*people(5, team=quoted), *people(6, team=arabic), *people(7, team="Ops")],
        )
    params = {"group_by": "team", **WHOLE_2027}
    as_json = await get(client, "/v1/reports/enps", org.reports, **params)
    response = await client.get(
        "/v1/reports/enps", params=params, headers={**org.reports, "Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    text = response.content.decode("utf-8")
    assert text.endswith("\r\n")
    assert '"R&D, ""Core"""' in text  # RFC 4180: quoted, inner quotes doubled
    rows = list(csv.reader(io.StringIO(text)))
    header, data = rows[0], rows[1:]
    assert header[0] == "period_start"
    assert "period_start" not in [r[0] for r in data], "exactly one header line"
    assert len(data) == len(as_json["series"]) == 6
    col = {name: i for i, name in enumerate(header)}
    assert {r[col["group"]] for r in data} == {quoted, arabic, "Ops"}
    for row, item in zip(data, as_json["series"], strict=True):
        assert row[col["group"]] == item["group"]
        assert int(row[col["responses"]]) == item["responses"]
        assert float(row[col["enps"]]) == item["enps"]


@pytest.mark.parametrize(
    ("accept", "csv_wanted"),
    [
        ("text/csv", True),
        ("text/csv, application/json;q=0.5", True),
        ("application/json, text/csv;q=0.1", False),
        ("text/csv;q=0", False),
        ("*/*", False),
        ("", False),
        ("text/*", True),
        ("text/html, */*;q=0.8", False),
        ("text/csv;q=oops", False),
    ],
)
async def test_csv_or_json_follows_the_accept_ranking(
    client: httpx.AsyncClient, org: Org, accept: str, csv_wanted: bool
) -> None:
    response = await client.get("/v1/reports/enps", headers={**org.reports, "Accept": accept})
    assert response.status_code == 200
    media = response.headers["content-type"].split(";")[0]
    assert media == ("text/csv" if csv_wanted else "application/json")


async def test_csv_writes_booleans_as_in_json_and_defuses_formula_comments(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey(min_group_size=3, comment_min_group_size=3)
    texts = ['=HYPERLINK("http://evil.example","x")', "+1 more", "@here", "fine", "ok"]
    await factory.wave(
        survey, datetime(2027, 1, 4, 9, tzinfo=UTC), people(5, comment=texts, team="Ops")
    )
    await factory.wave(survey, datetime(2027, 2, 1, 9, tzinfo=UTC), people(2, team="Ops"))
    trend = await client.get(
        "/v1/reports/enps", params=WHOLE_2027, headers={**org.reports, "Accept": "text/csv"}
    )
    rows = list(csv.DictReader(io.StringIO(trend.text)))
    assert [r["suppressed"] for r in rows] == ["false", "true"]
    questions = await client.get(
        "/v1/reports/questions", params=WHOLE_2027, headers={**org.reports, "Accept": "text/csv"}
    )
    comments = {r["comment"] for r in csv.DictReader(io.StringIO(questions.text)) if r["comment"]}
    assert comments == {"'" + t for t in texts[:3]} | {"fine", "ok"}


async def test_every_report_answers_csv(client: httpx.AsyncClient, org: Org) -> None:
    for path in REPORTS:
        response = await client.get(path, headers={**org.reports, "Accept": "text/csv"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert len(list(csv.reader(io.StringIO(response.text)))) == 1, "the header alone"


async def test_etag_answers_304_and_changes_with_the_data(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey()
    await factory.wave(survey, datetime(2027, 1, 4, 9, tzinfo=UTC), people(6))
    first = await client.get("/v1/reports/enps", params=WHOLE_2027, headers=org.reports)
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert first.headers["cache-control"] == "private, max-age=60"

    again = await client.get(
        "/v1/reports/enps", params=WHOLE_2027, headers={**org.reports, "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "private, max-age=60"

    weak = await client.get(
        "/v1/reports/enps",
        params=WHOLE_2027,
        headers={**org.reports, "If-None-Match": f'"other", W/{etag}'},
    )
    assert weak.status_code == 304

    await factory.wave(survey, datetime(2027, 2, 1, 9, tzinfo=UTC), people(7))
    changed = await client.get(
        "/v1/reports/enps", params=WHOLE_2027, headers={**org.reports, "If-None-Match": etag}
    )
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["overall"]["responses"] == 13

    as_csv = await client.get(
        "/v1/reports/enps", params=WHOLE_2027, headers={**org.reports, "Accept": "text/csv"}
    )
    assert as_csv.headers["etag"] not in (etag, changed.headers["etag"])


# --- parameters ------------------------------------------------------------------------


BAD_PARAMETERS: list[tuple[dict[str, str], str]] = [
    ({"interval": "fortnight"}, "interval"),
    ({"interval": ""}, "interval"),
    ({"group_by": "location"}, "group_by"),
    ({"group_by": "attribute:"}, "group_by"),
    ({"group_by": "attribute:a b"}, "group_by"),
    ({"from": "2027-03-01", "to": "2027-02-01"}, "from"),
    ({"from": "2027-02-30"}, "from"),
    ({"from": "01/02/2027"}, "from"),
    ({"to": "yesterday"}, "to"),
    ({"survey_id": "not-a-uuid"}, "survey_id"),
    # Dates at the calendar's edges, whose periods or default window would leave it.
    ({"to": "9999-12-31"}, "to"),
    ({"to": "0001-01-05"}, "to"),
    ({"from": "0001-01-01", "to": "2027-01-01"}, "from"),
    ({"from": "9999-06-30"}, "from"),
    # A 'from' after today with no 'to' (which defaults to today).
    ({"from": "9000-01-01"}, "from"),
]


async def test_bad_parameters_answer_422_naming_the_parameter(
    client: httpx.AsyncClient, org: Org
) -> None:
    for params, field in BAD_PARAMETERS:
        response = await client.get("/v1/reports/enps", params=params, headers=org.reports)
        assert_problem(response, 422, field=field)
    for path in ("/v1/reports/participation", "/v1/reports/questions"):
        for params, field in BAD_PARAMETERS:
            if "interval" in params or "group_by" in params:
                continue  # the questions report takes neither
            response = await client.get(path, params=params, headers=org.reports)
            assert_problem(response, 422, field=field)
    response = await client.get(
        "/v1/reports/participation", params={"interval": "day"}, headers=org.reports
    )
    assert_problem(response, 422, field="interval")


# --- participation ---------------------------------------------------------------------


async def test_participation_counts_invited_and_responded(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey()
    wave = await factory.wave(
        survey,
        datetime(2027, 1, 4, 9, tzinfo=UTC),
        [
            *people(6, team="Sales"),
            *people(4, team="Sales", answered=False),
            *people(7, team="Ops"),
            *people(1, team="Ops", answered=False),
        ],
    )
    body = await get(
        client, "/v1/reports/participation", org.reports, group_by="team", **WHOLE_2027
    )
    assert body["interval"] == "wave"
    rows = {r["group"]: r for r in body["series"]}
    assert rows["Sales"]["wave_id"] == str(wave)
    assert (rows["Sales"]["invited"], rows["Sales"]["responded"]) == (10, 6)
    assert rows["Sales"]["response_rate"] == 0.6
    assert (rows["Ops"]["invited"], rows["Ops"]["responded"]) == (8, 7)
    assert body["overall"] == {
        "invited": 18,
        "responded": 13,
        "response_rate": round(13 / 18, 3),
        "suppressed": False,
    }
    assert Counter(r["suppressed"] for r in body["series"]) == {False: 2}


async def test_open_waves_count_for_participation(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey()
    now = datetime.now(UTC) - timedelta(hours=1)
    await factory.wave(survey, now, [*people(6), *people(3, answered=False)], status="open")
    body = await get(client, "/v1/reports/participation", org.reports)
    assert body["overall"]["invited"] == 9
    assert body["overall"]["responded"] == 6
