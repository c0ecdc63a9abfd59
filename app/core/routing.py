"""Router defaults shared by every domain."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.core.errors import error_responses


def api_router(*, tags: list[str], auth: bool = True, **kwargs: Any) -> APIRouter:
    """An APIRouter whose routes document the problems every authenticated route can
    answer (and replace FastAPI's default 422 schema with our problem+json)."""
    statuses = (400, 401, 403, 422) if auth else (400, 422)
    return APIRouter(tags=list(tags), responses=error_responses(*statuses), **kwargs)
