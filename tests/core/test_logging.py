"""Log lines: tokens never appear, and each line carries its request id."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest

from app.core.logging import JSONFormatter, TextFormatter, mask_path, request_id_var
from tests.live import free_port
from tests.test_cli import PULSE, _env


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


def test_json_log_lines_leave_out_uvicorn_s_colour_copy() -> None:
    record = logging.makeLogRecord(
        {
            "name": "uvicorn.error",
            "levelname": "INFO",
            "msg": "Started server process [%d]",
            "args": (42,),
            "color_message": "Started server process [\x1b[36m%d\x1b[0m]",
        }
    )
    line = JSONFormatter().format(record)
    assert "color_message" not in json.loads(line)
    assert "\x1b" not in line
    assert "\\u001b" not in line


def test_serve_logs_json_lines_without_colour_codes(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*PULSE, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_env(tmp_path, {"PULSE_LOG_FORMAT": "json"}),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        while not any("Uvicorn running" in line for line in lines):
            line = proc.stderr.readline()  # type: ignore[union-attr]
            assert line, "".join(lines)
            lines.append(line)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for line in lines:
        assert "\x1b" not in line, line
        assert "\\u001b" not in line, line
        assert "color_message" not in json.loads(line), line
