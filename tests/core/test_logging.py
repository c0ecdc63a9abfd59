"""Log lines: tokens never appear, and each line carries its request id."""

from __future__ import annotations

import json
import logging

import pytest

from app.core.logging import JSONFormatter, TextFormatter, mask_path, request_id_var


@pytest.mark.parametrize(
    ("path", "masked"),
    [
        ("/r/AbC-123_xyz", "/r/***"),
        ("/m/AbC-123_xyz", "/m/***"),
        ("/m/AbC-123_xyz/invite.ics", "/m/***/invite.ics"),
        ("/v1/respond/AbC-123_xyz", "/v1/respond/***"),
        ("/v1/meetings/AbC-123_xyz", "/v1/meetings/***"),
        ("/r/AbC-123_xyz/", "/r/***/"),
        ("//r/AbC-123_xyz", "//r/***"),
        ("/v1//respond/AbC-123_xyz", "/v1//respond/***"),
    ],
)
def test_personal_link_tokens_are_masked(path: str, masked: str) -> None:
    assert mask_path(path) == masked
    assert "AbC-123_xyz" not in mask_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/employees/0190c0de-0000-7000-8000-000000000000",
        "/v1/organization",
        "/v1/reports/enps",
        "/healthz",
        "/rss/feed",
        "/metrics",
    ],
)
def test_other_paths_are_logged_as_they_are(path: str) -> None:
    assert mask_path(path) == path


def _record(**extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "pulse.test", "levelname": "INFO", "msg": "hello"})
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_line_carries_the_request_id_and_extra_fields() -> None:
    token = request_id_var.set("req-12345678")
    try:
        line = JSONFormatter().format(_record(status=201))
    finally:
        request_id_var.reset(token)
    out = json.loads(line)
    assert out["request_id"] == "req-12345678"
    assert out["msg"] == "hello"
    assert out["status"] == 201


def test_request_id_stamped_on_the_record_survives_leaving_the_request() -> None:
    """A handler that formats later (a queue, a test's caplog) has lost the context."""
    record = _record(request_id="req-87654321")
    assert json.loads(JSONFormatter().format(record))["request_id"] == "req-87654321"
    assert TextFormatter("%(message)s").format(record).endswith("[req-87654321]")
