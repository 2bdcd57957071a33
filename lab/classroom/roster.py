"""The roster: a CSV file with a header row, one student a row.

Columns: `id` (becomes part of host-level names, so a-z, 0-9 and '-'), `name` (shown on the
cards), and optional per-student overrides of the lab file (`subnet`, `os_family`,
`firewall`, `selinux`, `time_sync`) plus `note` (printed on the student's card). An empty
cell means "as the lab file says". Every fault is one line naming the file and the row.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import fields
from ..errors import SpecError
from ..spec import FIREWALL_POLICIES, OS_FAMILIES, SELINUX_POLICIES

REQUIRED = ("id", "name")
OVERRIDES = ("subnet", "os_family", "firewall", "selinux", "time_sync")
COLUMNS = (*REQUIRED, *OVERRIDES, "note")
# Host names allow letters, digits and hyphens (RFC 1123); ids are lowered, so "Ann" and
# "ann" are the same student.
ID_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")
MAX_STUDENTS = 4096


@dataclass(frozen=True)
class Student:
    id: str
    name: str
    row: int  # the line of the roster file, for messages
    overrides: dict[str, str] = field(default_factory=dict)
    note: str = ""


def _fault(path: Path, row: int, message: str) -> SpecError:
    return SpecError(f"roster {path} row {row}: {message}")


def _override(where: str, column: str, value: str) -> str:
    """The cell checked as the lab file's field it overrides, in the form the plan takes."""
    field = f"{where}: {column}"
    if column == "subnet":
        return str(fields.ipv4_network(field, value, "10.100.7.0/24"))
    if column == "time_sync":
        return "true" if fields.yes_no(field, value) else "false"
    allowed = {"os_family": OS_FAMILIES, "firewall": FIREWALL_POLICIES,
               "selinux": SELINUX_POLICIES}[column]
    return fields.choice(field, value.lower(), allowed)


def read_roster(path: str | Path) -> list[Student]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # spreadsheets often write a BOM
    except OSError as exc:
        raise SpecError(f"roster {path}: {exc.strerror}; give a CSV file with --roster") from None
    except UnicodeDecodeError:
        raise SpecError(f"roster {path}: not UTF-8 text; save the CSV as UTF-8") from None
    # As the csv module asks (newline=""): a quoted cell keeps its line break, to be refused
    # below, rather than two lines glued into one name.
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise SpecError(f"roster {path}: not a CSV file ({exc}); save it as CSV") from None
    # Blank lines at the end are an editor's, not a student's.
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()
    if not rows:
        raise SpecError(f"roster {path}: empty; give a header row id,name then one row a student")
    header = [cell.strip().lower() for cell in rows[0]]
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        raise _fault(path, 1, f"the header has no {missing[0]!r} column; start the file with"
                     " the header row id,name (optional: " + ", ".join(COLUMNS[2:]) + ")")
    unknown = [column for column in header if column not in COLUMNS]
    if unknown:
        raise _fault(path, 1, f"unknown column {unknown[0]!r}; allowed: " + ", ".join(COLUMNS))
    if len(set(header)) != len(header):
        twice = next(column for column in header if header.count(column) > 1)
        raise _fault(path, 1, f"column {twice!r} appears twice")
    students: list[Student] = []
    seen: dict[str, int] = {}
    for number, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            raise _fault(path, number, "empty row; remove it or fill in id,name")
        if len(cells) > len(header):
            raise _fault(path, number, f"{len(cells)} cells but the header has {len(header)}"
                         " columns; quote cells that hold commas")
        values = {column: cells[i].strip() if i < len(cells) else ""
                  for i, column in enumerate(header)}
        raw_id = values["id"]
        if not raw_id:
            raise _fault(path, number, "no student id; every row needs one")
        if not ID_RE.match(raw_id):
            bad = next((c for c in raw_id if not (c.isascii() and (c.isalnum() or c == "-"))),
                       None)
            what = f"character {bad!r}" if bad else "a '-' at the start or end"
            raise _fault(path, number, f"student id {raw_id!r} has {what}, which host names do"
                         " not allow; use a-z, 0-9 and '-' (not first or last)")
        student_id = raw_id.lower()
        if student_id in seen:
            raise _fault(path, number, f"student id {raw_id!r} is also on row {seen[student_id]};"
                         " ids must be unique (case does not count)")
        seen[student_id] = number
        if len(seen) > MAX_STUDENTS:
            raise _fault(path, number, f"more than {MAX_STUDENTS} students; split the class")
        where = f"roster {path} row {number} ({student_id})"
        students.append(Student(
            id=student_id,
            name=fields.line(f"{where}: name", values["name"]) or raw_id,
            row=number,
            overrides={key: _override(where, key, values[key])
                       for key in OVERRIDES if values.get(key)},
            note=fields.line(f"{where}: note", values.get("note", "")),
        ))
    if not students:
        raise SpecError(f"roster {path}: a header but no students; add one row a student")
    return students
