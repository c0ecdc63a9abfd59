"""The eNPS maths against hand-computed values and as properties (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.reports.enps import Counts, classify, compare, score


@pytest.mark.parametrize(
    ("value", "category"),
    [
        (0, "detractor"),
        (6, "detractor"),
        (7, "passive"),
        (8, "passive"),
        (9, "promoter"),
        (10, "promoter"),
    ],
)
def test_scores_are_classified_on_the_industry_scale(value: int, category: str) -> None:
    assert classify(value) == category


@pytest.mark.parametrize("value", [-1, 11])
def test_a_score_outside_0_to_10_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="0-10"):
        classify(value)


def test_architecture_example_50_answers_20_promoters_10_detractors() -> None:
    s = score(Counts(promoters=20, passives=20, detractors=10))
    assert s is not None
    assert s.enps == 20.0
    assert s.margin_of_error == 20.1


def test_api_contract_example_42_answers() -> None:
    """api.md: 42 responses, 20 promoters, 12 passives, 10 detractors."""
    s = score(Counts(20, 12, 10))
    assert s is not None
    assert (s.enps, s.ci_low, s.ci_high, s.margin_of_error) == (23.8, -1.3, 45.8, 23.6)


def test_hand_computed_interval() -> None:
    # 10 answers: 8 promoters, 1 passive, 1 detractor.
    # n′ = 13, p′ = 8.75/13, d′ = 1.75/13; SE = sqrt((p′+d′−(p′−d′)²)/n′)
    p, d, n = 8.75 / 13, 1.75 / 13, 13
    se = math.sqrt((p + d - (p - d) ** 2) / n)
    s = score(Counts(promoters=8, passives=1, detractors=1))
    assert s is not None
    assert s.enps == 70.0
    assert s.margin_of_error == round(100 * 1.96 * se, 1)
    assert s.ci_high == round(min(100, 100 * (p - d) + 100 * 1.96 * se), 1)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (Counts(5, 7, 4), 6.3),  # 100 × 1/16 = 6.25: a spreadsheet shows 6.3
        (Counts(4, 7, 5), -6.3),  # and -6.3, half away from zero
        (Counts(1, 1, 1), 0.0),
        (Counts(2, 0, 1), 33.3),  # 33.33…
        (Counts(2, 1, 0), 66.7),  # 66.66…
    ],
)
def test_enps_rounds_halves_as_a_spreadsheet_does(counts: Counts, expected: float) -> None:
    s = score(counts)
    assert s is not None
    assert s.enps == expected


def test_skipped_answers_count_nowhere() -> None:
    assert Counts.of([10, None, 3, None, 8]) == Counts(1, 1, 1)


def test_no_responses_has_no_score() -> None:
    assert score(Counts(0, 0, 0)) is None


def test_a_clear_rise_is_significant_and_a_wobble_is_not() -> None:
    before, after = Counts(100, 200, 300), Counts(300, 200, 100)
    change = compare(before, after)
    assert change is not None
    assert change.difference == pytest.approx(66.7, abs=0.05)
    assert change.significant
    wobble = compare(Counts(5, 5, 5), Counts(6, 5, 4))
    assert wobble is not None
    assert not wobble.significant
    assert wobble.ci_low < 0 < wobble.ci_high


counts = st.builds(
    Counts,
    promoters=st.integers(0, 5000),
    passives=st.integers(0, 5000),
    detractors=st.integers(0, 5000),
).filter(lambda c: c.responses > 0)


@given(counts)
def test_enps_and_interval_stay_in_range(c: Counts) -> None:
    s = score(c)
    assert s is not None
    assert -100 <= s.enps <= 100
    assert -100 <= s.ci_low <= s.ci_high <= 100
    assert s.ci_low - 0.05 <= s.adjusted <= s.ci_high + 0.05
    assert s.responses == c.promoters + c.passives + c.detractors


@given(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20), st.integers(2, 50))
def test_interval_narrows_as_n_grows_with_shares_fixed(p: int, pa: int, d: int, k: int) -> None:
    if p + pa + d == 0:
        return
    small = score(Counts(p, pa, d))
    large = score(Counts(p * k, pa * k, d * k))
    assert small is not None
    assert large is not None
    assert large.margin_of_error <= small.margin_of_error


@given(st.lists(st.one_of(st.none(), st.integers(0, 10)), max_size=200))
def test_counts_always_add_up(scores: list[int | None]) -> None:
    c = Counts.of(scores)
    assert c.responses == sum(1 for s in scores if s is not None)
