"""Bulk import: upsert employees by email from a JSON array or a CSV file.

The whole file is checked before anything is written: each row on its own (pydantic),
then duplicates within the file, then manager references (in the file or the directory),
then cycles in the chain the import would leave. Rows that fail are listed with their
row number and field; the others apply, or with ``atomic`` none do. Writes are set-based
(executemany in batches of ``service.BULK_BATCH``), so a 10,000-row file is a few
statements.

Reading and checking a 100,000-row file costs seconds of CPU (email syntax above all).
That work, and working out the writes, runs in a worker thread, so the event loop keeps
answering other requests (health checks, survey pages) meanwhile; only the database
work stays on the loop."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import new_id, utcnow
from app.core.errors import Conflict, Unprocessable
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
# Excel writes ';' where the decimal separator is a comma (most of Europe), and tabs for
# "Text (Tab delimited)". No column name contains any of the three, so the header line
# decides.
DELIMITERS = ",;\t"
SAVE_AS_UTF8 = (
    "the file is UTF-16 text, not UTF-8; save the file as UTF-8 "
    "(in Excel: Save As, 'CSV UTF-8 (Comma delimited)') and import it again"
)
NOT_UNICODE = "not valid Unicode (it holds a lone surrogate such as \\ud800)"
NUL_CHARACTER = "must not contain a NUL character"
# A JSON escape for half a UTF-16 surrogate pair: text decoded from it may not be Unicode.
_TEXT_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


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
    records: int = 0
    rows: list[_Row] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Every row whose email we could read, valid or not: duplicates are found among all
    # of them, and nobody the file names is deactivated by deactivate_missing.
    numbers_by_key: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def fail(self, number: int, field_name: str | None, msg: str) -> None:
        self.errors.append({"row": number, "field": field_name, "msg": msg})


@dataclass
class _Writes:
    inserts: list[dict[str, Any]] = field(default_factory=list)
    manager_links: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    deactivations: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0


def _bad_file(msg: str, *columns: str) -> Unprocessable:
    """A 422 about the file as a whole, or about some of its columns (each located)."""
    locs = [["body", c] for c in columns] or [["body"]]
    return Unprocessable(f"body: {msg}", errors=[{"loc": loc, "msg": msg} for loc in locs])


def _bad_row(number: int, field_name: str | None, msg: str) -> Unprocessable:
    """A 422 for a row that stops the whole file from being read: no later row can be
    trusted, so nothing applies, but the user learns where to look."""
    where = f"row {number}" + (f", {field_name}" if field_name else "")
    loc: list[str | int] = ["body", number, *([field_name] if field_name else [])]
    return Unprocessable(f"body: {where}: {msg}", errors=[{"loc": loc, "msg": msg}])


def check_encoding(body: bytes) -> None:
    """422 for a UTF-16 (or UTF-32) file, which Excel's "Unicode Text" writes: its NUL
    bytes would otherwise earn a message about NUL bytes, when the fix is the encoding."""
    sample = body[:1024]
    # ASCII text in UTF-16 is half NUL bytes; UTF-8 text has none.
    if body.startswith((b"\xff\xfe", b"\xfe\xff")) or sample.count(0) * 4 >= len(sample) > 0:
        raise _bad_file(SAVE_AS_UTF8)


def check_body_text(body: bytes, content_type: str) -> None:
    """The checks the app-wide NUL and surrogate guard would also make, made first and in
    the import's terms: "save as UTF-8" for a UTF-16 file, and rows counted from 1 (as in
    every other import error) rather than list indexes from 0. Bodies that guard lets
    through are left for the import proper, after authentication."""
    if b"\x00" in body:
        check_encoding(body)
    if _is_csv(content_type) or not (b"\\u0000" in body or _TEXT_ESCAPE.search(body)):
        return
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return  # reported with the rest of the file's problems
    if isinstance(data, list):
        _refuse_unstorable_text(data)


def _is_csv(content_type: str) -> bool:
    # Media types are case-insensitive (RFC 9110 §8.3.1): Text/CSV is CSV too.
    return content_type.split(";", 1)[0].strip().lower().endswith("csv")


def parse_records(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """The file's records as dicts of column → value; 422 for a file we cannot read."""
    check_encoding(body)
    return _parse_csv(body) if _is_csv(content_type) else _parse_json(body)


def _parse_json(body: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad_file(f"not valid JSON: {exc}") from exc
    except ValueError as exc:  # Python refuses integers of more than 4300 digits
        raise _bad_file("not valid JSON for an import: a number is too long") from exc
    except RecursionError as exc:
        raise _bad_file(
            "not valid JSON for an import: nested too deeply (rows are flat objects)"
        ) from exc
    if not isinstance(data, list):
        raise _bad_file("must be a JSON array of employee objects")
    if len(data) > MAX_ROWS:
        raise _bad_file(f"at most {MAX_ROWS} rows per import")
    _refuse_unstorable_text(data)
    keys: set[str] = set()
    for item in data:
        if isinstance(item, dict):
            keys.update(item)
    _check_columns(sorted(keys), require_email=False)
    return [item if isinstance(item, dict) else {"__error__": "must be an object"} for item in data]


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return NUL_CHARACTER
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return NOT_UNICODE
    return None


def _nested_text_problem(value: object) -> str | None:
    # Iterative: the parser accepts nesting close to the recursion limit.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem is not None:
                return problem
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _refuse_unstorable_text(data: list[Any]) -> None:
    """JSON's \\ud800 escapes (and the parser's surrogatepass decoding) let a string hold
    half a character, and \\u0000 a NUL: no database column or UTF-8 answer can carry
    either, so the file is refused, naming the row and field."""
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            problem = _nested_text_problem(item)
            if problem is not None:
                raise _bad_row(number, None, problem)
            continue
        for key, value in item.items():
            problem = _text_problem(key)
            if problem is not None:
                shown = key.encode("utf-8", "backslashreplace").decode("utf-8")
                raise _bad_row(number, shown, f"this key is {problem}")
            problem = _nested_text_problem(value)
            if problem is not None:
                raise _bad_row(number, key, problem)


def _delimiter(text: str) -> str:
    end = text.find("\n")
    header = text if end < 0 else text[:end]
    return max(DELIMITERS, key=header.count)  # a tie (one column) stays ','


def _column_name(cell: str) -> str:
    """Spreadsheets capitalise and pad headers ("Email", " name "); attribute names after
    ``attr.`` are data and keep their case."""
    name = cell.strip()
    if name.lower() in COLUMNS:
        return name.lower()
    if name[: len(ATTR_PREFIX)].lower() == ATTR_PREFIX:
        return ATTR_PREFIX + name[len(ATTR_PREFIX) :]
    return name


def _csv_problem(exc: csv.Error) -> str:
    if "field larger than field limit" in str(exc):
        return (
            f"a cell is longer than {csv.field_size_limit():,} characters "
            "(no column takes more than 320)"
        )
    return f"not readable as CSV: {exc}"


def _parse_csv(body: bytes) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8-sig")  # Excel writes a BOM; strip it if there
    except UnicodeDecodeError as exc:
        raise _bad_file(
            f"not UTF-8 text (byte {exc.start}); save the file as UTF-8 (in Excel: 'CSV UTF-8')"
        ) from exc
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise _bad_file(f"the header line: {_csv_problem(exc)}") from exc
    header = [_column_name(h) for h in (fieldnames or [])]
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
    try:
        for raw in reader:
            if None in raw:  # more cells than header columns
                # Keep the email: the row is still the file's word that this person exists.
                records.append({"__error__": "more cells than the header has columns", **raw})
            else:
                # DictReader fills the cells a short row lacks with None: those columns are
                # absent from the row (unchanged), unlike a cell the row leaves empty.
                records.append({k: v.strip() for k, v in raw.items() if v is not None})
            if len(records) > MAX_ROWS:
                raise _bad_file(f"at most {MAX_ROWS} rows per import")
    except csv.Error as exc:
        raise _bad_row(len(records) + 1, None, _csv_problem(exc)) from exc
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


def _read_file(body: bytes, content_type: str) -> _Plan:
    """Parse and check every row on its own and against the others: no database needed,
    so it can run in a worker thread."""
    records = parse_records(body, content_type)
    plan = _Plan(records=len(records))
    _validate_rows(records, plan)
    _drop_duplicates(plan)
    return plan


def _validate_rows(records: list[dict[str, Any]], plan: _Plan) -> None:
    for number, record in enumerate(records, start=1):
        row = None if "__error__" in record else _validate_row(number, record, plan)
        # A valid row's key is already known; checking its email twice would be a third
        # of the import's CPU time.
        key = row.key if row is not None else _readable_key(record.get("email"))
        if key is not None:
            plan.numbers_by_key[key].append(number)
        if "__error__" in record:
            plan.fail(number, None, record["__error__"])
        elif row is not None:
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


def _refuse_deactivating_everyone(plan: _Plan) -> None:
    """A sync whose file names nobody would deactivate the whole directory; that is far
    likelier an export gone wrong than the intent, so it is refused rather than applied."""
    if plan.records == 0:
        raise _bad_file(
            "the file has no rows; with deactivate_missing=true an empty file would "
            "deactivate everyone (deactivate people one by one, or import without it)"
        )
    if not plan.numbers_by_key:
        raise _bad_file(
            "no row has a readable email; with deactivate_missing=true this file would "
            "deactivate everyone"
        )


async def import_employees(
    session: AsyncSession,
    org_id: uuid.UUID,
    body: bytes,
    content_type: str,
    *,
    deactivate_missing: bool,
    atomic: bool,
) -> ImportResult:
    """Upsert employees by email from an uploaded JSON array or CSV file."""
    plan = await asyncio.to_thread(_read_file, body, content_type)
    if deactivate_missing:
        _refuse_deactivating_everyone(plan)

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
    await asyncio.to_thread(_link_managers, plan, directory)

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


def _link_managers(plan: _Plan, directory: dict[str, Any]) -> None:
    """Give every row its id and manager, failing rows whose manager cannot be resolved
    or would close a cycle."""
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
    current = await _load_current(session, org_id, [r.id for r in plan.rows if r.key in directory])
    writes = await asyncio.to_thread(
        _writes_for,
        plan,
        directory,
        current,
        defaults={
            "organization_id": org_id,
            "locale": org.default_locale,
            "timezone": org.default_timezone,
        },
        deactivate_missing=deactivate_missing,
    )
    try:
        await service.bulk_insert(session, writes.inserts)
    except IntegrityError as exc:
        # Another import (or POST /v1/employees) added one of these emails between our
        # look-up and this insert, on PostgreSQL where both ran at once. The request's
        # transaction rolls back whole; sending the file again sees the new rows.
        if "email_key" not in str(exc.orig):
            raise
        raise Conflict(
            "some of these emails were added to the directory while this import ran; "
            "send the file again",
            code="import_conflict",
        ) from exc
    # Managers are linked after every new row exists, so order in the file never matters.
    await service.bulk_update(session, writes.manager_links)
    await service.bulk_update(session, writes.updates)
    await service.bulk_update(session, writes.deactivations)
    await session.flush()
    session.expire_all()
    return ImportResult(
        created=len(writes.inserts),
        updated=len(writes.updates),
        unchanged=writes.unchanged,
        deactivated=len(writes.deactivations),
        errors=[ImportRowError(**e) for e in sorted(plan.errors, key=lambda e: e["row"])],
    )


def _writes_for(
    plan: _Plan,
    directory: dict[str, Any],
    current: dict[uuid.UUID, Any],
    *,
    defaults: dict[str, Any],
    deactivate_missing: bool,
) -> _Writes:
    """The rows to insert and the changes to make: plain data, so it runs off the loop."""
    now = utcnow()
    writes = _Writes()
    for row in plan.rows:
        assert row.id is not None
        if row.key in directory:
            changed = _changes(row, current[row.id], deactivate_missing)
            if changed:
                writes.updates.append({"id": row.id, **changed, "updated_at": now})
            else:
                writes.unchanged += 1
            continue
        d = row.data
        writes.inserts.append(
            {
                "id": row.id,
                "organization_id": defaults["organization_id"],
                "email": d.email,
                "email_key": row.key,
                "name": d.name or "",
                "team": d.team,
                "department": d.department,
                "manager_id": None,
                "locale": d.locale or defaults["locale"],
                "timezone": d.timezone or defaults["timezone"],
                "attributes": {k: v for k, v in d.attributes.items() if v},
                "active": True if d.active is None else d.active,
                "created_at": now,
                "updated_at": now,
            }
        )
        if row.manager_id is not None:
            writes.manager_links.append({"id": row.id, "manager_id": row.manager_id})
    if deactivate_missing:
        writes.deactivations = [
            {"id": r.id, "active": False, "updated_at": now}
            for k, r in directory.items()
            if r.active and k not in plan.numbers_by_key
        ]
    return writes


def _changes(row: _Row, old: Any, deactivate_missing: bool) -> dict[str, Any]:
    """The columns of an existing employee that this row changes, with their new values."""
    d = row.data
    new: dict[str, Any] = {}
    for name in ("name", "team", "department", "locale", "timezone"):
        if name in row.present:
            value = getattr(d, name)
            if name in ("locale", "timezone") and value is None:
                continue  # an empty cell leaves these as they are
            new[name] = value if not (name == "name" and value is None) else ""
    if d.active is not None:
        new["active"] = d.active
    elif deactivate_missing:
        # A sync says the file is the whole directory: whoever it lists works here, so
        # someone deactivated earlier comes back unless their row says active=false.
        new["active"] = True
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
    return {k: v for k, v in new.items() if getattr(old, k) != v}


async def _load_current(
    session: AsyncSession, org_id: uuid.UUID, ids: list[uuid.UUID | None]
) -> dict[uuid.UUID, Any]:
    """Current values of the rows an import updates, read in chunks (SQLite caps bind
    parameters per statement).

    The ids come from this organization's directory, read in this transaction, and a
    primary key never changes organization, so the organization is checked on the rows
    rather than in the WHERE clause: with it there, PostgreSQL's plan for the prepared
    statement (its statistics still stale after a bulk import) scanned the organization's
    whole directory for each chunk, and re-importing 30,000 rows spent 35 s here."""
    out: dict[uuid.UUID, Any] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        result = await session.execute(
            select(
                Employee.id,
                Employee.organization_id,
                Employee.email,
                Employee.name,
                Employee.team,
                Employee.department,
                Employee.manager_id,
                Employee.locale,
                Employee.timezone,
                Employee.attributes,
                Employee.active,
            ).where(Employee.id.in_(chunk))
        )
        for r in result.all():
            if r.organization_id == org_id:
                out[r.id] = r
    return out
