"""The lesson on a student's lab, judged read-only: the student's "check my work" and the
instructor's check both call this, so the two can never disagree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..context import Lab
from ..scenario import readonly
from ..scenario.model import Scenario
from ..spec import LabSpec


def _quiet(line: str) -> None:
    """A check from the page logs nothing to the server's console."""


def check(spec: LabSpec, lesson: Scenario,
          log: Callable[[str], None] = _quiet) -> list[dict[str, Any]]:
    """Each step of the lesson: passed, failed or not checkable read-only (blocking)."""
    with Lab(spec, log=log) as lab:
        return [step.shown() for step in readonly.check(lesson, lab)]


def passed(steps: list[dict[str, Any]]) -> bool:
    """Every step that can be checked read-only passed."""
    return all(step["status"] != "failed" for step in steps)
