"""The grade of the last `check` of each student, as JSON and as JUnit XML for a grader."""

from __future__ import annotations

import json
import time
from xml.sax.saxutils import escape, quoteattr

from .jobs import Grade
from .room import Room


def as_json(room: Room, grades: dict[str, Grade]) -> str:
    rows = []
    for seat in room.seats:
        grade = grades.get(seat.id)
        rows.append({"student": seat.id, "name": seat.name, "lab": seat.spec.name,
                     "checked": grade is not None,
                     "healthy": bool(grade and grade.healthy),
                     "reasons": grade.reasons if grade else ["not checked yet"],
                     "at": grade.at if grade else None,
                     "lesson": grade.steps if grade else []})
    healthy = sum(row["healthy"] for row in rows)
    return json.dumps({"room": room.title, "healthy": healthy, "total": len(rows),
                       "students": rows}, indent=2) + "\n"


def as_junit(room: Room, grades: dict[str, Grade]) -> str:
    """One test case per student: passed when healthy, failed with the reasons, skipped when
    never checked (a grader must not read "not checked" as a pass); then one per lesson step
    of each checked student, skipped when the step is not checkable read-only."""
    cases = []
    failures = skipped = 0
    for seat in room.seats:
        grade = grades.get(seat.id)
        for step in grade.steps if grade else []:
            name = quoteattr(f"{seat.id}: step {step['index']} {step['name']}")
            classname = quoteattr(f"{seat.spec.name}.lesson")
            if step["status"] == "passed":
                cases.append(f"<testcase name={name} classname={classname}/>")
                continue
            tag = "failure" if step["status"] == "failed" else "skipped"
            failures += tag == "failure"
            skipped += tag == "skipped"
            said = f"{step['status']}: {step['detail']}" if step["detail"] else step["status"]
            cases.append(f"<testcase name={name} classname={classname}><{tag}"
                         f" message={quoteattr(said)}/></testcase>")
        name = quoteattr(seat.id)
        classname = quoteattr(seat.spec.name)
        if grade is None:
            skipped += 1
            cases.append(f'<testcase name={name} classname={classname}>'
                         '<skipped message="not checked yet"/></testcase>')
        elif grade.healthy:
            cases.append(f"<testcase name={name} classname={classname}/>")
        else:
            failures += 1
            reasons = "; ".join(grade.reasons)
            cases.append(f"<testcase name={name} classname={classname}>"
                         f"<failure message={quoteattr(reasons)}>{escape(reasons)}</failure>"
                         "</testcase>")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f"<testsuite name={quoteattr(room.title)} tests=\"{len(cases)}\""
            f' failures="{failures}" skipped="{skipped}" timestamp="{stamp}">'
            + "".join(cases) + "</testsuite>\n")
