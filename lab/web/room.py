"""What one server serves: the seats (a student and their lab) and where its links live.

`class.serve` seats every student of the recorded class; `lab.serve` seats one lab, named
after itself, so both pages work the same way for a class of one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..scenario import catalog, loader
from ..scenario.model import Scenario
from ..spec import LabSpec

if TYPE_CHECKING:
    from ..classroom.plan import ClassPlan

# The first lesson the project ships (scenarios/README.md): a service, its tasks, scaling.
DEFAULT_LESSON = "swarm-basics"


@dataclass(frozen=True)
class Seat:
    id: str
    name: str
    spec: LabSpec


@dataclass(frozen=True)
class Room:
    title: str
    seats: tuple[Seat, ...]
    folder: Path  # where the links file is kept (the class's or the lab's folder)
    failures: tuple[str, ...] = ()
    # The students on the roster now (a class's record can change while serving); None for
    # a lab, which has no roster.
    roster: Callable[[], frozenset[str]] | None = None
    # The lesson whose steps a student's "check my work" and the instructor's check judge.
    lesson: Scenario | None = None

    def seat(self, student: str) -> Seat | None:
        return next((seat for seat in self.seats if seat.id == student), None)


def lesson(root: Path, name: str = DEFAULT_LESSON) -> Scenario:
    """The lesson by name (scenarios/NAME.yaml) or path; ScenarioError says which exist."""
    return loader.load(catalog.find(root, name))


def class_room(plan: ClassPlan, lesson: Scenario | None = None) -> Room:
    """Every student of the class plan."""
    from ..classroom.record import ClassRecord
    from ..failures import FAILURES

    def roster() -> frozenset[str]:
        record = ClassRecord.load(plan.base.state_dir, plan.name)
        return frozenset(sid for sid, entry in record.students.items()
                         if entry.get("in_roster", True))

    seats = tuple(Seat(entry.id, entry.student.name, entry.spec) for entry in plan.labs)
    return Room(f"class {plan.name}", seats, plan.directory, tuple(FAILURES), roster, lesson)


def lab_room(spec: LabSpec, lesson: Scenario | None = None) -> Room:
    from ..failures import FAILURES

    return Room(f"lab {spec.name}", (Seat(spec.name, spec.name, spec),),
                Path(spec.state_dir) / spec.name, tuple(FAILURES), lesson=lesson)
