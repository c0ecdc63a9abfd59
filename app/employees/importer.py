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
from app.employees.schemas import ImportResult, ImportRow, ImportRowError, email_key
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
    seen_keys: set[str] = field(default_factory=set)

    def fail(self, number: int, field_name: str | None, msg: str) -> None:
        self.errors.append({"row": number, "field": field_name, "msg": msg})


def parse_records(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """The file's records as dicts of column → value; 422 for a file we cannot read."""
    if "csv" in content_type:
        try:
            text = body.decode("utf-8-sig")  # Excel writes a BOM; strip it if there
        except UnicodeDecodeError as exc:
            raise Unprocessable.field(["body"], f"not UTF-8 text (byte {exc.start})") from exc
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip() for h in (reader.fieldnames or [])]
        if not header:
            raise Unprocessable.field(
                ["body"], "the CSV file is empty; the first line must name the columns"
            )
        reader.fieldnames = header
        _check_columns(header)
        records: list[dict[str, Any]] = []
        for raw in reader:
            if None in raw:  # more cells than header columns
                records.append({"__error__": "more cells than the header has columns"})
                continue
            records.append({k: (v.strip() if isinstance(v, str) else v) for k, v in raw.items()})
            if len(records) > MAX_ROWS:
                raise Unprocessable.field(["body"], f"at most {MAX_ROWS} rows per import")
        return records
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Unprocessable.field(["body"], f"not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise Unprocessable.field(["body"], "must be a JSON array of employee objects")
    if len(data) > MAX_ROWS:
        raise Unprocessable.field(["body"], f"at most {MAX_ROWS} rows per import")
    keys: set[str] = set()
    for item in data:
        if isinstance(item, dict):
            keys.update(item)
    _check_columns(sorted(keys), require_email=False)
    return [item if isinstance(item, dict) else {"__error__": "must be an object"} for item in data]


def _check_columns(columns: list[str], *, require_email: bool = True) -> None:
    unknown = [c for c in columns if c not in COLUMNS and not c.startswith(ATTR_PREFIX)]
    if unknown:
        raise Unprocessable.field(
            ["body"],
            "unknown column(s) "
            + ", ".join(repr(c) for c in unknown)
            + "; known: "
            + ", ".join(COLUMNS)
            + ", attr.<name>",
        )
    if require_email and "email" not in columns:
        raise Unprocessable.field(["body"], "the column 'email' is required")


def _validate_rows(records: list[dict[str, Any]], plan: _Plan) -> None:
    for number, record in enumerate(records, start=1):
        if "__error__" in record:
            plan.fail(number, None, record["__error__"])
            continue
        attributes = {
            k[len(ATTR_PREFIX) :]: v for k, v in record.items() if k.startswith(ATTR_PREFIX)
        }
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
            # A bad row still counts as present for deactivate_missing, if its email is readable.
            raw_email = record.get("email")
            if isinstance(raw_email, str) and raw_email.strip():
                plan.seen_keys.add(email_key(raw_email.strip()))
            continue
        bad_attr = next(
            (
                k
                for k in attributes
                if not k or len(k) > 64 or not all(c.isalnum() or c in "_-" for c in k)
            ),
            None,
        )
        if bad_attr is not None:
            plan.fail(
                number,
                ATTR_PREFIX + bad_attr,
                "attribute names use 1-64 letters, digits, '_' or '-'",
            )
            continue
        present = set(fields) | {ATTR_PREFIX + k for k in attributes}
        key = email_key(row.email)
        plan.seen_keys.add(key)
        plan.rows.append(_Row(number=number, data=row, present=present, key=key))


def _drop_duplicates(plan: _Plan) -> None:
    by_key: dict[str, list[_Row]] = defaultdict(list)
    for row in plan.rows:
        by_key[row.key].append(row)
    dupes = {k: rows for k, rows in by_key.items() if len(rows) > 1}
    for rows in dupes.values():
        numbers = ", ".join(str(r.number) for r in rows)
        for row in rows:
            plan.fail(
                row.number,
                "email",
                f"{row.data.email} appears more than once in the file (rows {numbers})",
            )
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

    _resolve_managers(plan, directory)
    _reject_cycles(plan, {r.id: r.manager_id for r in directory.values()})

    if atomic and plan.errors:
        raise Unprocessable(
            f"{len(plan.errors)} row(s) have errors; with atomic=true nothing was imported",
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
            if r.active and k not in plan.seen_keys
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
