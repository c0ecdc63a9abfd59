"""Bulk import: upsert employees by email from a JSON array or a CSV file.

The whole file is checked before anything is written: each row on its own (pydantic),
then duplicates within the file, then manager references (in the file or the directory),
then cycles in the chain the import would leave. Rows that fail are listed with their
row number and field; the others apply, or with ``atomic`` none do. Writes are set-based
(one executemany for inserts, one for updates), so a 10,000-row file is a few statements."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import new_id, utcnow
from app.core.errors import Unprocessable
from app.employees import service
from app.employees.models import Employee
from app.employees.schemas import (
    ATTRIBUTE_NAME,
    MAX_ATTRIBUTES,
    ImportResult,
    ImportRow,
    ImportRowError,
    check_email,
    email_key,
)
from app.organizations import service as organization_service

MAX_ROWS = 100_000
COLUMNS = ("email", "name", "team", "department", "manager_email", "locale", "timezone", "active")
ATTR_PREFIX = "attr."


@dataclass
class _Row:
    number: int
    data: ImportRow
    present: set[str]
    key: str = ""
    id: uuid.UUID | None = None
    manager_id: uuid.UUID | None = None


@dataclass
class _Plan:
    rows: list[_Row] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Every row whose email we could read, valid or not: duplicates are found among all
    # of them, and nobody the file names is deactivated by deactivate_missing.
    numbers_by_key: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def fail(self, number: int, field_name: str | None, msg: str) -> None:
        self.errors.append({"row": number, "field": field_name, "msg": msg})


def _bad_file(msg: str, *columns: str) -> Unprocessable:
    """A 422 about the file as a whole, or about some of its columns (each located)."""
    locs = [["body", c] for c in columns] or [["body"]]
    return Unprocessable(f"body: {msg}", errors=[{"loc": loc, "msg": msg} for loc in locs])


def parse_records(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """The file's records as dicts of column → value; 422 for a file we cannot read."""
    # Media types are case-insensitive (RFC 9110 §8.3.1): Text/CSV is CSV too.
    if content_type.split(";", 1)[0].strip().lower().endswith("csv"):
        return _parse_csv(body)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad_file(f"not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise _bad_file("must be a JSON array of employee objects")
    if len(data) > MAX_ROWS:
        raise _bad_file(f"at most {MAX_ROWS} rows per import")
    keys: set[str] = set()
    for item in data:
        if isinstance(item, dict):
            keys.update(item)
    _check_columns(sorted(keys), require_email=False)
    return [item if isinstance(item, dict) else {"__error__": "must be an object"} for item in data]


def _parse_csv(body: bytes) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8-sig")  # Excel writes a BOM; strip it if there
    except UnicodeDecodeError as exc:
        raise _bad_file(f"not UTF-8 text (byte {exc.start})") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise _bad_file("the CSV file is empty; the first line must name the columns")
    # DictReader keeps the last of two same-named cells: one of them would be lost silently.
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        names = ", ".join(repr(h) for h in repeated)
        raise _bad_file(f"column(s) {names} appear more than once in the header", *repeated)
    reader.fieldnames = header
    _check_columns(header)
    records: list[dict[str, Any]] = []
    for raw in reader:
        if None in raw:  # more cells than header columns
            # Keep the email: the row is still the file's word that this person exists.
            records.append({"__error__": "more cells than the header has columns", **raw})
        else:
            records.append({k: (v.strip() if isinstance(v, str) else v) for k, v in raw.items()})
        if len(records) > MAX_ROWS:
            raise _bad_file(f"at most {MAX_ROWS} rows per import")
    return records


def _check_columns(columns: list[str], *, require_email: bool = True) -> None:
    unknown = [c for c in columns if c not in COLUMNS and not c.startswith(ATTR_PREFIX)]
    if unknown:
        raise _bad_file(
            "unknown column(s) "
            + ", ".join(repr(c) for c in unknown)
            + "; known: "
            + ", ".join(COLUMNS)
            + ", attr.<name>",
            *unknown,
        )
    # A bad attribute name is the same in every row: a problem of the column, not the rows.
    bad = [
        c
        for c in columns
        if c.startswith(ATTR_PREFIX) and not ATTRIBUTE_NAME.match(c.removeprefix(ATTR_PREFIX))
    ]
    if bad:
        raise _bad_file(
            "attribute column(s) "
            + ", ".join(repr(c) for c in bad)
            + ": after 'attr.' use 1-64 letters, digits, '_' or '-', as in POST /v1/employees",
            *bad,
        )
    if require_email and "email" not in columns:
        raise _bad_file("the column 'email' is required", "email")


def _readable_key(raw: object) -> str | None:
    """The email key of a cell, even when the row fails: as the directory would store it
    if the address is valid, else the cell lower-cased; None for no email at all."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        return email_key(check_email(raw))
    except ValueError:
        return email_key(raw.strip())


def _validate_rows(records: list[dict[str, Any]], plan: _Plan) -> None:
    for number, record in enumerate(records, start=1):
        key = _readable_key(record.get("email"))
        if key is not None:
            plan.numbers_by_key[key].append(number)
        if "__error__" in record:
            plan.fail(number, None, record["__error__"])
            continue
        row = _validate_row(number, record, plan)
        if row is not None:
            plan.rows.append(row)


def _validate_row(number: int, record: dict[str, Any], plan: _Plan) -> _Row | None:
    """The row parsed, or None after listing its errors."""
    attributes = {k[len(ATTR_PREFIX) :]: v for k, v in record.items() if k.startswith(ATTR_PREFIX)}
    fields = {k: v for k, v in record.items() if not k.startswith(ATTR_PREFIX)}
    try:
        row = ImportRow.model_validate({**fields, "attributes": attributes})
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            name = (
                (ATTR_PREFIX + loc[1])
                if loc[:1] == ["attributes"] and len(loc) > 1
                else (loc[0] if loc else None)
            )
            plan.fail(number, name, str(err["msg"]).removeprefix("Value error, "))
        return None
    if len(attributes) > MAX_ATTRIBUTES:
        plan.fail(number, None, f"at most {MAX_ATTRIBUTES} attr.<name> columns")
        return None
    present = set(fields) | {ATTR_PREFIX + k for k in attributes}
    return _Row(number=number, data=row, present=present, key=email_key(row.email))


def _drop_duplicates(plan: _Plan) -> None:
    """Fail every occurrence of an email the file lists twice, including occurrences that
    failed for another reason: applying the one valid twin would be a silent guess."""
    dupes = {k: numbers for k, numbers in plan.numbers_by_key.items() if len(numbers) > 1}
    for key, numbers in dupes.items():
        listed = ", ".join(str(n) for n in numbers)
        for number in numbers:
            plan.fail(number, "email", f"{key} appears more than once in the file (rows {listed})")
    plan.rows = [r for r in plan.rows if r.key not in dupes]


async def import_employees(
    session: AsyncSession,
    org_id: uuid.UUID,
    records: list[dict[str, Any]],
    *,
    deactivate_missing: bool,
    atomic: bool,
) -> ImportResult:
    plan = _Plan()
    _validate_rows(records, plan)
    _drop_duplicates(plan)

    directory = {
        r.email_key: r
        for r in (
            await session.execute(
                select(Employee.id, Employee.email_key, Employee.manager_id, Employee.active).where(
                    Employee.organization_id == org_id
                )
            )
        ).all()
    }
    for row in plan.rows:
        existing = directory.get(row.key)
        row.id = existing.id if existing else new_id()
        row.manager_id = existing.manager_id if existing else None

    # Dropping a row on a cycle can strand a report whose manager was that (new) row, so
    # resolve again until no more rows drop out.
    while True:
        remaining = len(plan.rows)
        _resolve_managers(plan, directory)
        _reject_cycles(plan, {r.id: r.manager_id for r in directory.values()})
        if len(plan.rows) == remaining:
            break

    if atomic and plan.errors:
        raise Unprocessable(
            f"{len({e['row'] for e in plan.errors})} row(s) have errors; "
            "with atomic=true nothing was imported",
            errors=[
                {"loc": ["body", e["row"], *([e["field"]] if e["field"] else [])], **e}
                for e in sorted(plan.errors, key=lambda e: e["row"])
            ],
            code="import_failed",
        )
    return await _apply(session, org_id, plan, directory, deactivate_missing)


def _resolve_managers(plan: _Plan, directory: dict[str, Any]) -> None:
    """Turn manager_email into manager_id. A row whose manager is only in a failed row
    fails too; repeat until no more rows drop out."""
    while True:
        in_file = {r.key: r for r in plan.rows}
        failed: set[int] = set()
        for row in plan.rows:
            if "manager_email" not in row.present:
                continue
            if row.data.manager_email is None:
                row.manager_id = None
                continue
            mkey = email_key(row.data.manager_email)
            if mkey == row.key:
                plan.fail(row.number, "manager_email", "an employee cannot manage themselves")
                failed.add(row.number)
            elif mkey in in_file:
                row.manager_id = in_file[mkey].id
            elif mkey in directory:
                row.manager_id = directory[mkey].id
            else:
                plan.fail(
                    row.number,
                    "manager_email",
                    f"no employee {row.data.manager_email} in the directory or among "
                    "the rows of this file without errors",
                )
                failed.add(row.number)
        if not failed:
            return
        plan.rows = [r for r in plan.rows if r.number not in failed]


def _reject_cycles(plan: _Plan, directory_managers: dict[uuid.UUID, uuid.UUID | None]) -> None:
    """Fail every row on a cycle of the chain the import would leave behind."""
    while True:
        managers = dict(directory_managers)
        by_id = {}
        for row in plan.rows:
            assert row.id is not None
            managers[row.id] = row.manager_id
            by_id[row.id] = row
        on_cycle: set[uuid.UUID] = set()
        state: dict[uuid.UUID, int] = {}  # 1 = on the current path, 2 = known acyclic
        for start in by_id:
            path: list[uuid.UUID] = []
            node: uuid.UUID | None = start
            while node is not None and state.get(node) is None:
                state[node] = 1
                path.append(node)
                node = managers.get(node)
            if node is not None and state.get(node) == 1:
                on_cycle.update(path[path.index(node) :])
            for visited in path:
                state[visited] = 2
        failing = [by_id[i] for i in on_cycle if i in by_id]
        if not failing:
            return
        for row in failing:
            plan.fail(
                row.number, "manager_email", "this manager assignment would form a management cycle"
            )
        numbers = {r.number for r in failing}
        plan.rows = [r for r in plan.rows if r.number not in numbers]


async def _apply(
    session: AsyncSession,
    org_id: uuid.UUID,
    plan: _Plan,
    directory: dict[str, Any],
    deactivate_missing: bool,
) -> ImportResult:
    org = await organization_service.get_organization(session, org_id)
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    manager_links: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    unchanged = 0
    current = await _load_current(session, org_id, [r.id for r in plan.rows if r.key in directory])
    for row in plan.rows:
        d = row.data
        if row.key not in directory:
            inserts.append(
                {
                    "id": row.id,
                    "organization_id": org_id,
                    "email": d.email,
                    "email_key": row.key,
                    "name": d.name or "",
                    "team": d.team,
                    "department": d.department,
                    "manager_id": None,
                    "locale": d.locale or org.default_locale,
                    "timezone": d.timezone or org.default_timezone,
                    "attributes": {k: v for k, v in d.attributes.items() if v},
                    "active": True if d.active is None else d.active,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if row.manager_id is not None:
                manager_links.append({"id": row.id, "manager_id": row.manager_id})
            continue
        assert row.id is not None
        old = current[row.id]
        new: dict[str, Any] = {}
        for name in ("name", "team", "department", "locale", "timezone", "active"):
            if name in row.present:
                value = getattr(d, name)
                if name in ("locale", "timezone", "active") and value is None:
                    continue  # an empty cell leaves these as they are
                new[name] = value if not (name == "name" and value is None) else ""
        if d.email != old.email:
            new["email"] = d.email
        if "manager_email" in row.present:
            new["manager_id"] = row.manager_id
        if d.attributes:
            attrs = dict(old.attributes or {})
            for k, v in d.attributes.items():
                if v:
                    attrs[k] = v
                else:
                    attrs.pop(k, None)
            new["attributes"] = attrs
        changed = {k: v for k, v in new.items() if getattr(old, k) != v}
        if changed:
            updates.append({"id": row.id, **changed, "updated_at": now})
        else:
            unchanged += 1

    await service.bulk_insert(session, inserts)
    # Managers are linked after every new row exists, so order in the file never matters.
    await service.bulk_update(session, manager_links)
    await service.bulk_update(session, updates)

    deactivated = 0
    if deactivate_missing:
        gone = [
            {"id": r.id, "active": False, "updated_at": now}
            for k, r in directory.items()
            if r.active and k not in plan.numbers_by_key
        ]
        await service.bulk_update(session, gone)
        deactivated = len(gone)
    await session.flush()
    session.expire_all()
    return ImportResult(
        created=len(inserts),
        updated=len(updates),
        unchanged=unchanged,
        deactivated=deactivated,
        errors=[ImportRowError(**e) for e in sorted(plan.errors, key=lambda e: e["row"])],
    )


async def _load_current(
    session: AsyncSession, org_id: uuid.UUID, ids: list[uuid.UUID | None]
) -> dict[uuid.UUID, Any]:
    """Current values of the rows an import updates, read in chunks (SQLite caps bind
    parameters per statement)."""
    out: dict[uuid.UUID, Any] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        result = await session.execute(
            select(
                Employee.id,
                Employee.email,
                Employee.name,
                Employee.team,
                Employee.department,
                Employee.manager_id,
                Employee.locale,
                Employee.timezone,
                Employee.attributes,
                Employee.active,
            ).where(Employee.organization_id == org_id, Employee.id.in_(chunk))
        )
        for r in result.all():
            out[r.id] = r
    return out
