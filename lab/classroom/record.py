"""The class record: who is in the class, where each lab lives, what was last done to it.

One JSON file in the class's own folder (`<state_dir>/<class>.class/class.json`; the dot
keeps it apart from lab folders, whose names cannot hold one), written atomically after each
change. It keeps the students' subnets so that a roster edited between sessions never moves
a student who already has a lab. Each lab's own state file stays the truth about its
machines; this file never holds secrets either.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..errors import LabError

FORMAT = 1


def class_dir(state_dir: str | Path, class_name: str) -> Path:
    return Path(state_dir) / f"{class_name}.class"


class ClassRecord:
    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data
        # Labs of one class are worked on from several threads at once.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, state_dir: str | Path, class_name: str) -> ClassRecord:
        path = class_dir(state_dir, class_name) / "class.json"
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise LabError(
                    f"class record {path} is unreadable ({exc}); move it aside and rerun"
                    " class.up with the roster"
                ) from None
        data.setdefault("format", FORMAT)
        data.setdefault("class", class_name)
        data.setdefault("students", {})
        return cls(path, data)

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def students(self) -> dict[str, dict[str, Any]]:
        return self.data["students"]

    def save(self) -> None:
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
            write_atomic(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")

    def note(self, student: str, key: str, **facts: Any) -> None:
        """Record what was just done to one student's lab (its last `reset`), with the time."""
        with self._lock:
            self.students.setdefault(student, {})[key] = {"at": time.time(), **facts}
        self.save()

    def remove(self) -> None:
        """Forget the class (after class.down removed every lab); logs and cards go too."""
        for child in sorted(self.directory.rglob("*"), reverse=True):
            if child.is_dir():
                child.rmdir()
            else:
                child.unlink()
        if self.directory.exists():
            self.directory.rmdir()
