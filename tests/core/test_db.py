"""Row ids: UUIDv7, so keyset pagination by id lists rows in creation order."""

from __future__ import annotations

import uuid

from app.core.db import new_id


def test_ids_are_version_7_with_the_rfc_variant() -> None:
    value = new_id()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_ids_do_not_repeat() -> None:
    assert len({new_id() for _ in range(10_000)}) == 10_000


def test_ids_generated_in_a_row_sort_in_creation_order() -> None:
    ids = [new_id() for _ in range(2_000)]
    assert ids == sorted(ids)
