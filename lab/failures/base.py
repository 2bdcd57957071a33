"""A failure broken on purpose: what it teaches, how to break it, explain it and fix it.

The lab's state file records a break before the break changes anything, and the fix
clears the record only after the lab is verified healthy. So an interrupted break (Ctrl-C,
a lost connection) is still listed by `lab.status`, and its fix, which probes before each
step, puts right whatever part of the break did happen.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from ..context import Lab
from ..doctor.text import HEADINGS, Text
from ..errors import LabError, SpecError
from ..lifecycle import require_up
from .show import Show
from .swarmops import healthy, overlay_proven


@dataclass(frozen=True)
class Explanation:
    cause: Text
    fix: Text


class Failure(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    teaches: ClassVar[str]
    explanation: ClassVar[Explanation]
    # The fixes this failure shows; the first is the one used when none is asked for.
    ways: ClassVar[tuple[str, ...]] = ("safe", "seed")

    def refusal(self, lab: Lab) -> str | None:
        """Why this lab cannot show the failure (None when it can)."""
        return None

    def explain(self, lang: str) -> str:
        heads = HEADINGS[lang]
        return "\n".join([
            f"{heads['cause']}: {self.explanation.cause(lang)}",
            f"{heads['fix']}: {self.explanation.fix(lang)}",
        ])

    # --- the record in the state file ----------------------------------------------------
    def note(self, lab: Lab, **facts: Any) -> None:
        lab.state.broken.setdefault(self.name, {}).update(facts)
        lab.state.save()

    def record(self, lab: Lab) -> dict[str, Any]:
        return dict(lab.state.broken.get(self.name) or {})

    # --- break, fix, verify ------------------------------------------------------------------
    def require(self, lab: Lab) -> None:
        """Raise the one-line reason this lab cannot show the failure, if there is one."""
        require_up(lab)
        refused = self.refusal(lab)
        if refused:
            raise LabError(f"{self.name}: {refused}")

    def break_(self, lab: Lab, show: Show) -> None:
        self.require(lab)
        if self.name in lab.state.broken:
            raise LabError(f"{self.name} is already broken on lab {lab.spec.name}; fix it first:"
                           f" `invoke failure.fix {self.name}`")
        try:
            healthy(lab, timeout=30)
        except LabError as exc:
            raise LabError(f"{self.name} starts from a healthy lab; {exc}. Fix that first"
                           " (`invoke lab.doctor` says what is wrong, `invoke lab.up` rebuilds)"
                           ) from None
        self.note(lab, phase="breaking", at=time.time())
        self.do_break(lab, show)
        self.note(lab, phase="broken")
        if show.misses:
            raise LabError(
                f"{self.name}: Docker did not say what the lesson expects"
                f" ({'; '.join(show.misses)}); the lab is recorded as broken:"
                f" `invoke failure.fix {self.name}` puts it right")

    def way(self, asked: str = "") -> str:
        """The fix asked for, or this failure's default; SpecError for one it does not have."""
        chosen = asked or self.ways[0]
        if chosen not in self.ways:
            raise SpecError(f"--way {chosen!r} is not a fix of {self.name}; allowed:"
                            f" {', '.join(self.ways)}")
        return chosen

    def fix(self, lab: Lab, show: Show, way: str = "") -> None:
        chosen = self.way(way)
        self.require(lab)
        self.do_fix(lab, show, chosen, self.record(lab))
        self.verify(lab, show)
        lab.state.broken.pop(self.name, None)
        lab.state.save()

    def verify(self, lab: Lab, show: Show) -> None:
        leader = healthy(lab)
        show.passed("every node is back in the swarm",
                    f"Ready with its role, as {leader.name} lists them")
        show.passed("the overlay works end to end", overlay_proven(lab, show))
        show.passed("the lab is healthy again")

    @abstractmethod
    def do_break(self, lab: Lab, show: Show) -> None:
        """Break the lab, showing Docker's error; note() what the fix will need, as it goes."""

    @abstractmethod
    def do_fix(self, lab: Lab, show: Show, way: str, record: dict[str, Any]) -> None:
        """Undo the break, whole or partial: probe before each step, so it can run twice."""
