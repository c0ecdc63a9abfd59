"""Field types shared by every domain: locales, time zones, ids in cursors."""

from __future__ import annotations

import json
import re
import zoneinfo
from functools import cache
from typing import Annotated, Any

from fastapi import Request
from pydantic import AfterValidator, Field

from app.core.errors import Unprocessable

# BCP 47 language tag, the shapes people use: en, ar, fr-CA, zh-Hant-TW, es-419.
_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-[A-Za-z0-9]{5,8})*$")


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_locale(value: str) -> str:
    if not _BCP47.match(value):
        raise ValueError(f"{value!r} is not a BCP 47 language tag such as en, ar or fr-CA")
    return value


def check_timezone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin")
    return value


Locale = Annotated[
    str, Field(max_length=35, examples=["en", "ar", "fr-CA"]), AfterValidator(check_locale)
]
TimeZone = Annotated[
    str, Field(max_length=64, examples=["Europe/Berlin"]), AfterValidator(check_timezone)
]


async def reject_nul_in_request(request: Request) -> None:
    """PostgreSQL text cannot hold NUL; refuse it at the door, naming the parameter or
    the body field, rather than letting the database fail with what would be a 500."""
    for name, value in request.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            raise Unprocessable.field(["query", name], "must not contain a NUL character")
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise Unprocessable.field(["path", name], "must not contain a NUL character")
    body = request.scope.get("state", {}).get("raw_body", b"")
    if b"\x00" in body:
        raise Unprocessable.field(["body"], "must not contain a NUL byte")
    if b"\\u0000" in body:  # cheap pre-check; parse only when a JSON NUL escape may be there
        try:
            found = reject_nul(json.loads(body))
        except ValueError:
            return  # not JSON: the endpoint reports that itself
        if found is not None:
            raise Unprocessable.field(["body", *found], "must not contain a NUL character")


def reject_nul(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """The location of the first string holding a NUL in decoded JSON, else None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = reject_nul(key, (*path, str(key))) or reject_nul(item, (*path, str(key)))
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = reject_nul(item, (*path, index))
            if found is not None:
                return found
    return None
