"""Secret links to the class in a browser: one per student and one for the instructor.

A link is the only credential a student has, so it is long (token_urlsafe(24): 192 bits),
compared in constant time, kept in one 0600 file in the class's folder (never in a log or in
the class record) and replaced wholesale by `--new-secrets`.
"""

from __future__ import annotations

import hmac
import json
import secrets
from pathlib import Path

from ..atomic import write_atomic
from ..errors import LabError

FILE = "web-secrets.json"
SERVED = "web-served.json"  # the base URL class.serve last served on, for the cards
TOKEN_BYTES = 24  # 192 bits; the issue asks for 128 or more
INSTRUCTOR = "instructor"


class Links:
    def __init__(self, path: Path, instructor: str, students: dict[str, str]):
        self.path = path
        self.instructor = instructor
        self.students = students

    @classmethod
    def load(cls, folder: Path, students: list[str], *, renew: bool = False) -> Links:
        """The links of these students, made for those who have none (all of them if renew)."""
        path = folder / FILE
        data: dict = {}
        if path.exists() and not renew:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise LabError(f"{path} is unreadable ({exc}); rerun with --new-secrets to make"
                               " new links") from None
        known: dict[str, str] = dict(data.get("students") or {})
        instructor = data.get(INSTRUCTOR) or secrets.token_urlsafe(TOKEN_BYTES)
        changed = not path.exists() or renew or INSTRUCTOR not in data
        for student in students:
            if student not in known:
                known[student] = secrets.token_urlsafe(TOKEN_BYTES)
                changed = True
        links = cls(path, instructor, known)
        if changed:
            links.save()
        return links

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({INSTRUCTOR: self.instructor, "students": self.students}, indent=2)
        write_atomic(self.path, body + "\n", mode=0o600)

    def student_ok(self, student: str, token: str) -> bool:
        """True only for this student's own secret: another student's is refused."""
        expected = self.students.get(student)
        # Compared even when the student is unknown, so timing tells nothing about ids.
        return hmac.compare_digest((expected or "\0").encode(), token.encode()) and bool(expected)

    def instructor_ok(self, token: str) -> bool:
        return hmac.compare_digest(self.instructor.encode(), token.encode())


def student_urls(folder: Path) -> dict[str, str]:
    """Each student's page as last served from this folder; {} before the first serve.

    The cards print them (lab.classroom.cards), so they are only as right as the last
    `class.serve --listen`: serve on the address the students will use before printing.
    """
    try:
        base = json.loads((folder / SERVED).read_text())["base"]
        students = json.loads((folder / FILE).read_text())["students"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {sid: f"{base}/s/{sid}/{token}/" for sid, token in students.items()}
