"""Assertions shared by the API tests: every error is RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Check the status, the media type and the RFC 9457 members; return the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert PROBLEM_KEYS <= body.keys(), body
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def error_fields(body: dict[str, Any]) -> set[str]:
    """The field names a 422 body points at (the last string part of each ``loc``)."""
    names = set()
    for err in body.get("errors") or []:
        parts = [p for p in err["loc"] if isinstance(p, str)]
        if parts:
            names.add(parts[-1])
    return names
