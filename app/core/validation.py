"""Field types shared by every domain: locales, time zones, ids in cursors."""

from __future__ import annotations

import re
import zoneinfo
from functools import cache
from typing import Annotated

from pydantic import AfterValidator, Field

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
