"""Anonymity in reports (architecture.md, "Anonymity by default"): small groups are
hidden with null figures, hidden groups cannot be derived by subtraction (from a
total, a department, a wider window, a coarser interval or a filter), respondents and
not responses count, the strictest threshold applies, comments wait for their own
threshold, and answers of open waves are not reported."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core.db import Database
from tests.conftest import Org
from tests.reports.factory import Factory, people

FIGURES = (
    "responses",
    "promoters",
    "passives",
    "detractors",
    "enps",
    "ci_low",
    "ci_high",
    "margin_of_error",
)
WHOLE_2027 = {"from": "2027-01-01", "to": "2027-12-31"}


@pytest.fixture
def factory(db: Database, org: Org) -> Factory:
    return Factory(db, org.id)


def at(month: int, day: int) -> datetime:
    return datetime(2027, month, day, 9, tzinfo=UTC)


async def report(
    client: httpx.AsyncClient, org: Org, kind: str = "enps", **params: Any
) -> dict[str, Any]:
    response = await client.get(f"/v1/reports/{kind}", params=params, headers=org.reports)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_suppressed(row: dict[str, Any]) -> None:
    assert row["suppressed"] is True
    assert {k: row[k] for k in FIGURES} == dict.fromkeys(FIGURES)


def shown(body: dict[str, Any]) -> dict[str | None, int]:
    """group → responses of the shown rows (one period in these tests)."""
    return {r["group"]: r["responses"] for r in body["series"] if not r["suppressed"]}


def hidden(body: dict[str, Any]) -> set[str | None]:
    return {r["group"] for r in body["series"] if r["suppressed"]}


def assert_total_minus_shown_reveals_no_small_group(body: dict[str, Any], threshold: int) -> None:
    """What a total minus the shown groups leaves is nothing, or two or more hidden
    groups holding the threshold between them."""
    rest = body["overall"]["responses"] - sum(shown(body).values())
    assert rest == 0 or (rest >= threshold and len(hidden(body)) >= 2), body


# --- suppressed rows ---------------------------------------------------------------------


async def test_a_group_below_the_threshold_has_null_figures_and_says_suppressed(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey(min_group_size=5)
    await factory.wave(
        survey,
        at(1, 4),
        [*people(4, team="People"), *people(30, team="Sales"), *people(20, team="Ops")],
    )
    body = await report(client, org, group_by="team", **WHOLE_2027)
    rows = {r["group"]: r for r in body["series"]}
    assert_suppressed(rows["People"])
    assert_suppressed(rows["Ops"])  # the next-smallest, or Sales = total − Ops − People
    assert rows["Sales"]["suppressed"] is False
    assert rows["Sales"]["responses"] == 30
    assert body["overall"]["responses"] == 54
    assert_total_minus_shown_reveals_no_small_group(body, 5)


async def test_a_lone_small_wave_is_hidden_overall_too(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey(min_group_size=5)
    await factory.wave(survey, at(1, 4), people(4, team="Sales"))
    body = await report(client, org, **WHOLE_2027)
    (row,) = body["series"]
    assert_suppressed(row)
    assert_suppressed(body["overall"])


async def test_two_small_groups_are_not_revealed_together(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    """A team of 1 and a team of 2 hidden together would still leave a group of 3 as
    the total minus the shown teams: a third team is hidden with them."""
    survey = await factory.survey(min_group_size=5)
    await factory.wave(
        survey,
        at(1, 4),
        [
            *people(1, team="Solo"),
            *people(2, team="Duo"),
            *people(30, team="Sales"),
            *people(40, team="Ops"),
        ],
    )
    body = await report(client, org, group_by="team", **WHOLE_2027)
    assert hidden(body) == {"Solo", "Duo", "Sales"}
    assert_total_minus_shown_reveals_no_small_group(body, 5)


# --- subtraction across departments and filters -----------------------------------------


@pytest.fixture
async def departments(factory: Factory) -> None:
    """Engineering: a team of 4 beside a team of 30. Commercial: 10 and 40 (a global
    next-smallest would pick the 10, leaving Engineering − Mobile = Platform)."""
    survey = await factory.survey(min_group_size=5)
    await factory.wave(
        survey,
        at(1, 4),
        [
            *people(4, team="Platform", department="Engineering"),
            *people(30, team="Mobile", department="Engineering"),
            *people(10, team="Sales", department="Commercial"),
            *people(40, team="Ops", department="Commercial"),
        ],
    )


@pytest.mark.usefixtures("departments")
async def test_a_team_of_4_beside_a_team_of_30_hides_both(
    client: httpx.AsyncClient, org: Org
) -> None:
    teams = await report(client, org, group_by="team", **WHOLE_2027)
    rows = {r["group"]: r for r in teams["series"]}
    assert_suppressed(rows["Platform"])
    assert_suppressed(rows["Mobile"])
    assert shown(teams) == {"Sales": 10, "Ops": 40}

    by_department = await report(client, org, group_by="department", **WHOLE_2027)
    assert shown(by_department) == {"Engineering": 34, "Commercial": 50}
    # Engineering minus its shown teams is Platform and Mobile together, never Platform.
    engineering_shown = sum(n for g, n in shown(teams).items() if g in ("Platform", "Mobile"))
    assert by_department["series"][1]["group"] == "Engineering"
    assert by_department["series"][1]["responses"] - engineering_shown == 4 + 30

    within = await report(client, org, group_by="team", department="Engineering", **WHOLE_2027)
    assert hidden(within) == {"Platform", "Mobile"}
    assert within["overall"]["responses"] == 34


@pytest.mark.usefixtures("departments")
@pytest.mark.parametrize("kind", ["enps", "questions"])
async def test_a_filter_cannot_fetch_a_team_that_the_breakdown_hides(
    client: httpx.AsyncClient, org: Org, kind: str
) -> None:
    """Mobile alone is 30 people, but Engineering (shown) minus Mobile is Platform."""
    body = await report(client, org, kind, team="Mobile", **WHOLE_2027)
    if kind == "enps":
        (row,) = body["series"]
        assert_suppressed(row)
        assert_suppressed(body["overall"])
    else:
        (wave,) = body["waves"]
        assert wave["suppressed"] is True
        assert wave["responses"] is None
        assert wave["questions"] == []

    ops = await report(client, org, kind, team="Ops", **WHOLE_2027)
    if kind == "enps":
        assert ops["overall"]["responses"] == 40
    else:
        assert ops["waves"][0]["responses"] == 40


async def test_a_department_hidden_in_its_breakdown_is_not_the_sum_of_shown_teams(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey(min_group_size=5)
    await factory.wave(
        survey,
        at(1, 4),
        [
            *people(4, team="Solo", department="Tiny"),
            *people(30, team="North", department="Field"),
            *people(30, team="South", department="Field"),
            *people(25, team="Web", department="Digital"),
            *people(75, team="Apps", department="Digital"),
        ],
    )
    by_department = await report(client, org, group_by="department", **WHOLE_2027)
    teams = await report(client, org, group_by="team", **WHOLE_2027)
    assert hidden(by_department) == {"Tiny", "Field"}
    members = {"Tiny": {"Solo"}, "Field": {"North", "South"}, "Digital": {"Web", "Apps"}}
    for department in hidden(by_department):
        assert department is not None
        assert not members[department] <= set(shown(teams)), (department, shown(teams))
    department_filter = await report(client, org, department="Field", **WHOLE_2027)
    assert_suppressed(department_filter["overall"])


# --- subtraction across windows and intervals -------------------------------------------


@pytest.fixture
async def small_march(factory: Factory) -> None:
    """30 people answer in January and February; 3 in March."""
    survey = await factory.survey(min_group_size=5)
    await factory.wave(survey, at(1, 4), people(30, team="Sales", enps=[9, 10, 3]))
    await factory.wave(survey, at(2, 1), people(30, team="Sales", enps=[7, 10, 0]))
    await factory.wave(survey, at(3, 1), people(3, team="Sales", enps=[0, 0, 10]))


@pytest.mark.usefixtures("small_march")
@pytest.mark.parametrize("group_by", [None, "team"])
async def test_two_windows_a_day_apart_reveal_nothing(
    client: httpx.AsyncClient, org: Org, group_by: str | None
) -> None:
    for interval, (before, after) in itertools.product(
        ("week", "month", "quarter", "wave"),
        [("2027-02-27", "2027-02-28"), ("2027-02-28", "2027-03-01")],
    ):
        params: dict[str, Any] = {"interval": interval, "from": "2027-01-01"}
        if group_by:
            params["group_by"] = group_by
        a = await report(client, org, **params, to=before)
        b = await report(client, org, **params, to=after)
        assert a["overall"] == b["overall"], (interval, before, after)
        shown_a = [r for r in a["series"] if not r["suppressed"]]
        shown_b = [r for r in b["series"] if not r["suppressed"]]
        assert shown_a == shown_b, (interval, before, after)
        for row in b["series"]:
            if row["suppressed"]:
                assert_suppressed(row)


@pytest.mark.usefixtures("small_march")
async def test_the_wider_window_snaps_to_the_whole_month_and_hides_it(
    client: httpx.AsyncClient, org: Org
) -> None:
    body = await report(client, org, **{"from": "2027-01-01", "to": "2027-03-01"})
    assert body["window"] == {"from": "2027-01-01", "to": "2027-03-31"}
    march = [r for r in body["series"] if r["period_start"] == "2027-03-01"]
    assert len(march) == 1
    assert_suppressed(march[0])
    assert body["overall"]["responses"] == 60


async def test_a_month_minus_its_shown_wave_reveals_nothing(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey(min_group_size=5)
    big = await factory.wave(survey, at(2, 1), people(30, enps=[9, 2]))
    small = await factory.wave(survey, at(2, 15), people(3, enps=[0]))
    waves = await report(client, org, interval="wave", **WHOLE_2027)
    rows = {r["wave_id"]: r for r in waves["series"]}
    assert_suppressed(rows[str(small)])
    months = await report(client, org, interval="month", **WHOLE_2027)
    (february,) = months["series"]
    assert {k: february[k] for k in FIGURES} == {k: rows[str(big)][k] for k in FIGURES}


async def test_four_people_in_three_monthly_waves_stay_hidden_in_the_quarter(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    """Twelve responses, four respondents: respondents count."""
    survey = await factory.survey(min_group_size=5)
    four = people(4, team="Small", department="Lab")
    for month in (1, 2, 3):
        await factory.wave(
            survey,
            at(month, 4),
            [*four, *people(30, team="Big", department="Ops"), *people(20, team="Mid")],
        )
    assert len({p.employee_id for p in four}) == 4
    body = await report(client, org, interval="quarter", group_by="team", **WHOLE_2027)
    rows = {r["group"]: r for r in body["series"]}
    assert_suppressed(rows["Small"])
    assert_total_minus_shown_reveals_no_small_group(body, 5)
    alone = await report(client, org, interval="quarter", team="Small", **WHOLE_2027)
    assert_suppressed(alone["overall"])
    for row in alone["series"]:
        assert_suppressed(row)


# --- thresholds -------------------------------------------------------------------------


async def test_the_strictest_threshold_applies_across_surveys(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    lenient = await factory.survey(name="Lenient", min_group_size=5)
    strict = await factory.survey(name="Strict", min_group_size=8)
    for survey in (lenient, strict):
        await factory.wave(survey, at(1, 4), [*people(6, team="Sales"), *people(20, team="Ops")])
    both = await report(client, org, group_by="team", **WHOLE_2027)
    assert both["min_group_size"] == 8
    assert "Sales" in hidden(both)

    one = await report(client, org, group_by="team", survey_id=str(lenient), **WHOLE_2027)
    assert one["min_group_size"] == 5
    assert shown(one) == {"Sales": 6, "Ops": 20}


async def test_participation_of_a_small_group_is_suppressed(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    """While a wave is open only participation shows it, and a group's size is who was
    invited."""
    survey = await factory.survey(min_group_size=5)
    await factory.wave(
        survey,
        at(1, 4),
        [
            *people(3, team="People"),
            *people(1, team="People", answered=False),
            *people(2, team="Sales"),
            *people(28, team="Sales", answered=False),
            *people(20, team="Ops"),
        ],
        status="open",
        closes_at=at(12, 31),
    )
    body = await report(client, org, "participation", group_by="team", **WHOLE_2027)
    rows = {r["group"]: r for r in body["series"]}
    for team in ("People", "Ops"):  # Ops: the next-smallest
        assert rows[team]["suppressed"] is True
        assert (rows[team]["invited"], rows[team]["responded"]) == (None, None)
        assert rows[team]["response_rate"] is None
    # Thirty invited: two answering tells nobody who did not.
    assert (rows["Sales"]["invited"], rows["Sales"]["responded"]) == (30, 2)
    filtered = await report(client, org, "participation", team="People", **WHOLE_2027)
    assert filtered["overall"]["suppressed"] is True
    assert filtered["overall"]["response_rate"] is None


async def test_no_report_splits_a_group_another_report_hides(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    """Participation hides by invitees and eNPS by answers: if each decided alone,
    participation would show W's 2 respondents while eNPS hides W with Small, and
    overall − shown − W would give Small's count (40 − 25 − 9 − 2 = 4 of 4: all of
    Small answered)."""
    survey = await factory.survey(min_group_size=5)
    await factory.wave(
        survey,
        at(1, 4),
        [
            *people(4, team="Small"),
            *people(9, team="Y"),
            *people(1, team="Y", answered=False),
            *people(2, team="W"),
            *people(10, team="W", answered=False),
            *people(25, team="Z"),
            *people(5, team="Z", answered=False),
        ],
    )
    enps = await report(client, org, "enps", group_by="team", **WHOLE_2027)
    participation = await report(client, org, "participation", group_by="team", **WHOLE_2027)
    enps_hidden = {r["group"] for r in enps["series"] if r["suppressed"]}
    shown = {r["group"]: r for r in participation["series"] if not r["suppressed"]}
    assert enps_hidden == {"Small", "W"}
    assert not enps_hidden & shown.keys(), "participation shows a group eNPS hides"
    # What both reports give away together is the hidden groups' sum, never one of them.
    hidden_responded = participation["overall"]["responded"] - sum(
        r["responded"] for r in shown.values()
    )
    hidden_by_enps = enps["overall"]["responses"] - sum(
        r["responses"] for r in enps["series"] if not r["suppressed"]
    )
    assert hidden_responded >= 6
    assert hidden_by_enps == 6
    for team in ("Small", "W"):
        questions = await report(client, org, "questions", team=team, **WHOLE_2027)
        assert [w["suppressed"] for w in questions["waves"]] == [True]


async def test_a_group_that_gave_no_answers_is_listed_like_one_that_gave_a_few(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    """Listing only groups that answered would tell, month by month, whether the one
    person in Legal did."""
    survey = await factory.survey(min_group_size=5)
    for month, legal_answers in ((1, True), (2, False)):
        await factory.wave(
            survey,
            at(month, 4),
            [
                *people(1, team="Legal", answered=legal_answers),
                *people(12, team="Sales"),
                *people(3, team="Ops"),
            ],
        )
    body = await report(client, org, "enps", group_by="team", **WHOLE_2027)
    legal = [r for r in body["series"] if r["group"] == "Legal"]
    assert [r["period_start"] for r in legal] == ["2027-01-01", "2027-02-01"]
    assert all(r["suppressed"] and r["responses"] is None for r in legal)
    for month in ("2027-01", "2027-02"):
        window = {"from": f"{month}-01", "to": f"{month}-28"}
        filtered = await report(client, org, "enps", team="Legal", **window)
        assert filtered["overall"]["suppressed"] is True
        assert filtered["overall"]["responses"] is None


async def test_questions_report_hides_a_team_whose_enps_answers_are_too_few(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    """Six people in C answered, four of them the (optional) eNPS: the eNPS report
    hides C, so the questions report must not show C's eNPS distribution either."""
    survey = await factory.survey(min_group_size=5)
    await factory.wave(
        survey,
        at(1, 4),
        [
            *people(6, team="C", enps=[0, 0, 0, 0, None, None]),
            *people(12, team="B"),
            *people(15, team="A"),
        ],
    )
    trend = await report(client, org, "enps", group_by="team", **WHOLE_2027)
    assert {r["group"] for r in trend["series"] if r["suppressed"]} >= {"C"}
    questions = await report(client, org, "questions", team="C", **WHOLE_2027)
    assert [w["suppressed"] for w in questions["waves"]] == [True]
    assert questions["waves"][0]["questions"] == []


# --- comments ---------------------------------------------------------------------------


async def test_comments_wait_for_their_own_threshold(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey(min_group_size=5, comment_min_group_size=8)
    below = await factory.wave(survey, at(1, 4), people(7, comment=["too few"]))
    texts = [f"note {i}" for i in range(8)]
    enough = await factory.wave(survey, at(2, 1), people(8, comment=texts))
    body = await report(client, org, "questions", **WHOLE_2027)
    waves = {w["wave_id"]: w for w in body["waves"]}

    small = {q["key"]: q for q in waves[str(below)]["questions"]}
    assert waves[str(below)]["suppressed"] is False
    assert waves[str(below)]["responses"] == 7
    assert small["enps"]["responses"] == 7
    assert small["comment"]["comments"] is None
    assert small["comment"]["comments_suppressed"] is True

    large = {q["key"]: q for q in waves[str(enough)]["questions"]}
    assert large["comment"]["comments_suppressed"] is False
    assert sorted(large["comment"]["comments"]) == texts


async def test_a_team_filter_cannot_narrow_comments_below_their_threshold(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    """Sales (10) reaches the comment threshold, but the wave's comments minus Sales's
    would be the 3 others': Sales's comments are held back."""
    await factory.organization(min_group_size=3)
    survey = await factory.survey(min_group_size=3, comment_min_group_size=6)
    await factory.wave(
        survey,
        at(1, 4),
        [
            *people(3, team="Ops", comment=["ops"]),
            *people(10, team="Sales", comment=["sales"]),
        ],
    )
    whole = await report(client, org, "questions", **WHOLE_2027)
    (comment,) = [q for q in whole["waves"][0]["questions"] if q["key"] == "comment"]
    assert sorted(comment["comments"]) == ["ops"] * 3 + ["sales"] * 10
    sales = await report(client, org, "questions", team="Sales", **WHOLE_2027)
    assert sales["waves"][0]["responses"] == 10  # scores are fine at 3
    (comment,) = [q for q in sales["waves"][0]["questions"] if q["key"] == "comment"]
    assert comment["comments"] is None
    assert comment["comments_suppressed"] is True


# --- open waves -------------------------------------------------------------------------


async def test_answers_of_an_open_wave_are_not_reported(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    """Its figures would change with every answer: two requests a minute apart would
    isolate the one that came in between."""
    survey = await factory.survey()
    opened = datetime.now(UTC) - timedelta(hours=2)
    await factory.wave(survey, opened, people(30, team="Sales"), status="open")
    enps = await report(client, org)
    assert enps["series"] == []
    questions = await report(client, org, "questions")
    assert questions["waves"] == []
    participation = await report(client, org, "participation")
    assert participation["overall"]["responded"] == 30


async def test_a_wave_past_its_window_is_reported_before_the_worker_closes_it(
    client: httpx.AsyncClient, org: Org, factory: Factory
) -> None:
    survey = await factory.survey()
    occurred = datetime.now(UTC) - timedelta(days=30)
    await factory.wave(
        survey, occurred, people(6), status="open", closes_at=occurred + timedelta(days=5)
    )
    body = await report(client, org)
    assert body["overall"]["responses"] == 6
