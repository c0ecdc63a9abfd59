"""eNPS maths: classification, score, adjusted-Wald interval, period comparison.

Pure functions on counts; nothing here touches the database, so the maths is tested on
its own (tests/reports/test_enps.py, with hypothesis).

The interval is the adjusted-Wald interval for NPS (Rocks 2016, as recommended by Sauro
& Lewis): add ¾ of a promoter and ¾ of a detractor (3 pseudo-responses in all), then a
normal interval on the difference of the two shares. It behaves well for small n and
extreme shares, where the plain Wald interval collapses to zero width."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

Z95 = 1.96
Category = Literal["detractor", "passive", "promoter"]


def classify(score: int) -> Category:
    """0–6 detractor, 7–8 passive, 9–10 promoter."""
    if not 0 <= score <= 10:
        raise ValueError(f"an eNPS score is 0-10, not {score}")
    if score >= 9:
        return "promoter"
    if score >= 7:
        return "passive"
    return "detractor"


@dataclass(frozen=True)
class Counts:
    promoters: int
    passives: int
    detractors: int

    @property
    def responses(self) -> int:
        return self.promoters + self.passives + self.detractors

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.promoters + other.promoters,
            self.passives + other.passives,
            self.detractors + other.detractors,
        )

    @classmethod
    def of(cls, scores: list[int | None]) -> Counts:
        """Counts of a list of scores; None (a skipped question) counts nowhere."""
        cats = [classify(s) for s in scores if s is not None]
        return cls(cats.count("promoter"), cats.count("passive"), cats.count("detractor"))


@dataclass(frozen=True)
class Score:
    """An eNPS with its count and 95 % interval, all in points (−100…100)."""

    responses: int
    enps: float
    ci_low: float
    ci_high: float
    margin_of_error: float
    adjusted: float  # the adjusted estimate the interval is centred on


def _adjusted(c: Counts) -> tuple[float, float]:
    """(adjusted p′ − d′, its standard error)."""
    n_adj = c.responses + 3
    p = (c.promoters + 0.75) / n_adj
    d = (c.detractors + 0.75) / n_adj
    se = math.sqrt(max(0.0, p + d - (p - d) ** 2) / n_adj)
    return p - d, se


def round_half_up(value: Fraction) -> float:
    """One decimal, halves away from zero, as a spreadsheet's ROUND does: the plain eNPS
    is an exact fraction, and HR checks it in Excel (Python's round() gives 6.2 for
    6.25, where Excel shows 6.3)."""
    tenths = math.floor(abs(value) * 10 + Fraction(1, 2))
    return math.copysign(tenths / 10, value) if tenths else 0.0


def score(c: Counts) -> Score | None:
    """The eNPS of some counts, or None when there are no responses."""
    if c.responses == 0:
        return None
    plain = Fraction(100 * (c.promoters - c.detractors), c.responses)
    diff, se = _adjusted(c)
    margin = 100 * Z95 * se
    centre = 100 * diff
    return Score(
        responses=c.responses,
        enps=round_half_up(plain),
        ci_low=round(max(-100.0, centre - margin), 1),
        ci_high=round(min(100.0, centre + margin), 1),
        margin_of_error=round(margin, 1),
        adjusted=centre,
    )


@dataclass(frozen=True)
class Change:
    """The change from one period to the next, with its 95 % interval."""

    difference: float
    ci_low: float
    ci_high: float
    significant: bool


def compare(before: Counts, after: Counts) -> Change | None:
    """after − before on the adjusted estimates; significant only when the interval of
    the difference excludes zero."""
    if before.responses == 0 or after.responses == 0:
        return None
    d1, se1 = _adjusted(before)
    d2, se2 = _adjusted(after)
    diff = 100 * (d2 - d1)
    margin = 100 * Z95 * math.sqrt(se1**2 + se2**2)
    low, high = max(-200.0, diff - margin), min(200.0, diff + margin)
    return Change(
        difference=round_half_up(100 * (_plain(after) - _plain(before))),
        ci_low=round(low, 1),
        ci_high=round(high, 1),
        significant=low > 0 or high < 0,
    )


def _plain(c: Counts) -> Fraction:
    return Fraction(c.promoters - c.detractors, c.responses)
