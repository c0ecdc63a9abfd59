"""Cursor pagination: ``?limit=&cursor=`` in, ``{"items", "next_cursor"}`` out.

The cursor is the last id seen, opaque to clients (base64url). Ids are UUIDv7, so
ordering by id is creation order and a page never skips or repeats a row that was
inserted while a client was paging."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import Query
from pydantic import BaseModel

from app.core.errors import Unprocessable

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=500, description="Page size (default 50, max 500).")]
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="`next_cursor` of the previous page."),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> uuid.UUID | None:
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError) as exc:
        raise Unprocessable.field(["query", "cursor"], "not a cursor this API returned") from exc


class _HasId(Protocol):
    id: uuid.UUID


S = TypeVar("S", bound=BaseModel)


def page_of(rows: Sequence[Any], limit: int, schema: type[S]) -> Page[S]:
    """Build a page from ``limit + 1`` rows read in id order."""
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit and items else None
    return Page[schema](  # type: ignore[valid-type]
        items=[schema.model_validate(r) for r in items], next_cursor=next_cursor
    )
