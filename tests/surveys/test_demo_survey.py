"""The demo's pulse survey (`pulse demo`) as the API shows it: stored the way a survey
created through the API is, so a newcomer exploring the demo sees real behaviour."""

from __future__ import annotations

import httpx

from app.core.config import Settings
from app.core.db import Database
from app.demo.surveys import QUESTIONS, load_survey_history
from tests.conftest import Org
from tests.employees.helpers import create_employee


async def test_demo_survey_stores_the_questions_the_api_would_store(
    client: httpx.AsyncClient, db: Database, org: Org, settings: Settings
) -> None:
    for email, team in (("ana@example.com", "Sales"), ("bo@example.com", "Support")):
        await create_employee(client, org, email=email, name=email[:3], team=team)
    async with db.sessionmaker() as session, session.begin():
        survey_id = await load_survey_history(session, org.id, settings)

    demo = await client.get(f"/v1/surveys/{survey_id}", headers=org.admin)
    posted = await client.post(
        "/v1/surveys", json={"name": "Same questions", "questions": QUESTIONS}, headers=org.admin
    )

    assert demo.status_code == 200, demo.text
    assert posted.status_code == 201, posted.text
    enps = demo.json()["questions"][0]
    assert enps["key"] == "enps"
    assert enps["prompt"]["en"] == "How likely are you to recommend Acme as a place to work?"
    assert demo.json()["questions"] == posted.json()["questions"]
