from __future__ import annotations

import uuid
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Interval = Literal["week", "month", "quarter", "wave"]


class Window(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from", serialization_alias="from")
    to: date


class Change(BaseModel):
    difference: float
    ci_low: float
    ci_high: float
    significant: bool


class EnpsFigures(BaseModel):
    responses: int | None
    promoters: int | None
    passives: int | None
    detractors: int | None
    enps: float | None
    ci_low: float | None
    ci_high: float | None
    margin_of_error: float | None
    suppressed: bool = False


class EnpsRow(EnpsFigures):
    period_start: date
    wave_id: uuid.UUID | None = None
    group: str | None = None
    group_id: str | None = Field(
        default=None, description="The manager's id when group_by=manager."
    )
    change: Change | None = Field(
        default=None, description="From the same group's previous period, when both are shown."
    )


ENPS_EXAMPLE: dict[str, Any] = {
    "interval": "month",
    "group_by": "team",
    "min_group_size": 5,
    "window": {"from": "2027-01-01", "to": "2027-03-31"},
    "series": [
        {
            "period_start": "2027-01-01",
            "group": "Sales",
            "responses": 42,
            "promoters": 20,
            "passives": 12,
            "detractors": 10,
            "enps": 23.8,
            "ci_low": -1.3,
            "ci_high": 45.8,
            "margin_of_error": 23.6,
            "suppressed": False,
        }
    ],
    "overall": {
        "responses": 420,
        "promoters": 160,
        "passives": 176,
        "detractors": 84,
        "enps": 18.1,
        "ci_low": 10.9,
        "ci_high": 25.0,
        "margin_of_error": 7.1,
        "suppressed": False,
    },
}


class EnpsReport(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ENPS_EXAMPLE]})

    interval: Interval
    group_by: str | None
    min_group_size: int
    window: Window
    series: list[EnpsRow]
    overall: EnpsFigures


class ParticipationRow(BaseModel):
    period_start: date
    wave_id: uuid.UUID | None = None
    group: str | None = None
    group_id: str | None = None
    invited: int | None
    responded: int | None
    response_rate: float | None
    suppressed: bool = False


class ParticipationFigures(BaseModel):
    """Participation over the whole window (the waves large enough to be shown)."""

    invited: int | None
    responded: int | None
    response_rate: float | None
    suppressed: bool = False


class ParticipationReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "interval": "wave",
                    "group_by": None,
                    "min_group_size": 5,
                    "window": {"from": "2027-01-04", "to": "2027-01-09"},
                    "series": [
                        {
                            "period_start": "2027-01-04",
                            "wave_id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7d",
                            "invited": 78,
                            "responded": 55,
                            "response_rate": 0.705,
                            "suppressed": False,
                        }
                    ],
                    "overall": {
                        "invited": 78,
                        "responded": 55,
                        "response_rate": 0.705,
                        "suppressed": False,
                    },
                }
            ]
        }
    )

    interval: Interval
    group_by: str | None
    min_group_size: int
    window: Window
    series: list[ParticipationRow]
    overall: ParticipationFigures


class QuestionResult(BaseModel):
    key: str
    kind: str
    responses: int
    mean: float | None = None
    distribution: dict[str, int] | None = None
    choices: dict[str, int] | None = None
    yes_share: float | None = None
    enps: EnpsFigures | None = None
    comments: list[str] | None = Field(
        default=None,
        description="Shuffled, without dates or segments; null below the comment threshold.",
    )
    comments_suppressed: bool = False


class WaveQuestions(BaseModel):
    wave_id: uuid.UUID
    survey_id: uuid.UUID
    period_start: date
    responses: int | None
    suppressed: bool
    questions: list[QuestionResult]


class QuestionsReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "window": {"from": "2027-01-01", "to": "2027-01-31"},
                    "waves": [
                        {
                            "wave_id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7d",
                            "survey_id": "0193b3c2-7d1e-7a4b-9c1d-2f3e4a5b6c7e",
                            "period_start": "2027-01-04",
                            "responses": 55,
                            "suppressed": False,
                            "questions": [
                                {
                                    "key": "workload",
                                    "kind": "rating",
                                    "responses": 55,
                                    "mean": 3.4,
                                    "distribution": {"1": 2, "2": 6, "3": 20, "4": 18, "5": 9},
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )

    window: Window
    waves: list[WaveQuestions]
