"""Schemathesis over the whole OpenAPI document against a live server: no input it can
generate may cause a 5xx, and every response must match what the document promises."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.core.db import Database
from app.main import create_app
from tests.conftest import create_org, make_settings
from tests.databases import in_thread, migrated_database
from tests.live import live_server

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_api(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A migrated database of its own (the server commits), an admin key, a live server."""
    with migrated_database(backend, tmp_path_factory.mktemp("openapi")) as url:

        async def seed() -> str:
            db = Database.from_url(url)
            try:
                org = await create_org(db, "Schemathesis Inc")
                return org.admin_key
            finally:
                await db.dispose()

        key = in_thread(lambda: asyncio.run(seed()))
        app = create_app(make_settings(url))
        with live_server(app) as base_url:
            yield {"app": app, "base_url": base_url, "key": key}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_never_errors_and_keeps_its_schema(
    live_api: dict[str, Any], mode: GenerationMode
) -> None:
    """Every operation, with data that fits its schema and data that does not."""
    schema = schemathesis.openapi.from_dict(live_api["app"].openapi())
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.generate],
        )
        def run(case: Any) -> None:
            case.call_and_validate(
                base_url=live_api["base_url"],
                headers={"Authorization": f"Bearer {live_api['key']}"},
                checks=CHECKS,
            )

        try:
            run()
        except Unsatisfiable:
            continue  # nothing to negate: the operation takes no input
        except Exception as exc:  # collect every operation's failure, then report all
            failures.append(f"{operation.label}: {exc}")
    assert failures == [], "\n\n".join(failures)


def test_every_operation_has_a_summary_and_examples(live_api: dict[str, Any]) -> None:
    """Each endpoint documents itself: a description and, where it takes a body, an example."""
    doc = live_api["app"].openapi()
    missing = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if not op.get("description") and not op.get("summary"):
                missing.append(f"{method.upper()} {path}: no description")
            body = op.get("requestBody", {}).get("content", {})
            for media, spec in body.items():
                schema_ref = spec.get("schema", {}).get("$ref", "")
                has_example = "example" in spec or "examples" in spec
                if schema_ref:
                    name = schema_ref.rsplit("/", 1)[-1]
                    has_example = has_example or "examples" in doc["components"]["schemas"][name]
                if not has_example:
                    missing.append(f"{method.upper()} {path} {media}: no example")
    assert missing == []


def test_problem_schema_is_documented_for_errors(live_api: dict[str, Any]) -> None:
    doc = live_api["app"].openapi()
    responses = doc["paths"]["/v1/employees/{employee_id}"]["get"]["responses"]
    assert "application/problem+json" in responses["404"]["content"]
    assert "Problem" in doc["components"]["schemas"]


# Objects whose keys are the client's own (answers by question key, a survey's audience
# filter): free-form on purpose. Any other untyped object is a figure a dashboard cannot
# discover from the schema.
FREE_FORM = {
    ("CheckinState", "answers"),
    ("RespondBody", "answers"),
    ("SubmitCheckin", "answers"),
    ("SurveyRead", "audience"),
}


def test_every_response_field_has_a_typed_schema(live_api: dict[str, Any]) -> None:
    untyped = set()
    for name, schema in live_api["app"].openapi()["components"]["schemas"].items():
        for prop, prop_schema in (schema.get("properties") or {}).items():
            for option in [prop_schema, *prop_schema.get("anyOf", [])]:
                if (
                    option.get("type") == "object"
                    and "properties" not in option
                    and option.get("additionalProperties") in (None, True)
                ):
                    untyped.add((name, prop))
    assert untyped <= FREE_FORM, untyped - FREE_FORM
