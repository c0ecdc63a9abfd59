"""Field types shared by every domain: locales, time zones, ids in cursors."""

from __future__ import annotations

import json
import re
import zoneinfo
from functools import cache
from typing import Annotated, Any, TypeAlias

from fastapi import Request
from pydantic import AfterValidator, Field

from app.core.errors import TOO_DEEP, Unprocessable

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


# A JSON escape for a UTF-16 surrogate (\ud800-\udfff). A valid pair decodes to one
# character; a lone one decodes to text that cannot be encoded as UTF-8 at all, so
# bodies holding such an escape are decoded and checked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


async def reject_nul_in_request(request: Request) -> None:
    """Refuse text no database can store, at the door, naming the parameter or the body
    field: PostgreSQL text cannot hold NUL, and a lone surrogate escape (``\\ud800``)
    decodes to a string that is not Unicode text, which fails when it is stored or
    echoed in an answer. Either would otherwise be a 500."""
    for name, value in request.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            raise Unprocessable.field(["query", name], "must not contain a NUL character")
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise Unprocessable.field(["path", name], "must not contain a NUL character")
    body = request.scope.get("state", {}).get("raw_body", b"")
    if b"\x00" in body:
        raise Unprocessable.field(["body"], "must not contain a NUL byte")
    # Cheap pre-checks: decode only when a NUL or surrogate escape may be there.
    if b"\\u0000" in body or _SURROGATE_ESCAPE.search(body):
        try:
            decoded = json.loads(body)
        except RecursionError:
            raise Unprocessable.field(["body"], TOO_DEEP) from None
        except ValueError:
            return  # not JSON: the endpoint reports that itself
        found = find_unstorable_text(decoded)
        if found is not None:
            path, problem = found
            raise Unprocessable.field(["body", *path], problem)


# A location as a chain of (parent, key) links, unrolled only for the field reported.
_PathLink: TypeAlias = tuple["_PathLink", str | int] | None


def find_unstorable_text(value: Any) -> tuple[list[str | int], str] | None:
    """The location of the first string (value or key) in decoded JSON that holds a NUL or
    a lone surrogate, and what is wrong with it; else None.

    Iterative, with each location kept as a link to its parent's: JSON nested as deep as
    the parser allows must not exhaust the stack here, and a deep body must not cost a
    copy of its path per element."""
    stack: list[tuple[Any, _PathLink]] = [(value, None)]
    while stack:
        item, link = stack.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem is not None:
                return _unlink(link), problem
        elif isinstance(item, dict):
            children: list[tuple[Any, _PathLink]] = []
            for key, child in item.items():
                child_link: _PathLink = (link, str(key))
                problem = _text_problem(str(key))
                if problem is not None:
                    return _unlink(child_link), problem
                children.append((child, child_link))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend((item[i], (link, i)) for i in range(len(item) - 1, -1, -1))
    return None


def _text_problem(text: str) -> str | None:
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return "must not contain a NUL character"
    return "must not contain a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape)"


def _unlink(link: _PathLink) -> list[str | int]:
    path: list[str | int] = []
    while link is not None:
        link, part = link
        path.append(part)
    path.reverse()
    return path
