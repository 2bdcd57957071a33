"""The one place the class reaches the doctor (lab.doctor) and failures broken on purpose
(lab.failures), so the class tasks do not depend on how those modules are laid out.

A lab is healthy when its swarm is as the lab file says (every node a Ready member with its
role) and the doctor finds nothing wrong (errors and warnings; what the host cannot offer,
such as IPVS, does not count), by the checks that only read the lab.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import swarm
from ..context import Lab
from ..doctor import examine
from ..errors import LabError
from ..failures import get
from ..failures.show import Show
from ..scenario.display import Console

Log = Callable[[str], None]


def findings(lab: Lab) -> list[str]:
    """The doctor's failing findings, one short line each ("check node: what it saw").

    Every check runs but those that act on the lab: a class status or grade reads thirty
    students' labs and must not start services in their swarms (the overlay check does, and
    takes up to a minute a lab). `invoke -f <class dir>/labs/<id>.yaml lab.doctor` runs all.
    """
    lines = []
    for finding in examine(lab, read_only=True):
        if finding.failing:
            where = f" {finding.node}" if finding.node else ""
            lines.append(f"{finding.check}{where}: {finding.saw('en')}")
    return lines


class LogStream:
    """A text stream that hands each whole line to a lab's log: a failure shows Docker's
    words on a console, and in a class that console is the student's log file."""

    encoding = "utf-8"

    def __init__(self, log: Log):
        self.log = log
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.log(line)
        return len(text)

    def flush(self) -> None:
        """Lines go out as they end; a partial line waits for its end."""


def _show(log: Log) -> Show:
    return Show(Console(LogStream(log)))  # type: ignore[arg-type]


def break_lab(lab: Lab, failure: str, log: Log) -> str:
    """Break one lab on purpose, Docker's own words going to the lab's log."""
    chosen = get(failure)
    chosen.break_(lab, _show(log))
    return f"{failure} broken: {chosen.title}"


def fix_lab(lab: Lab, failure: str, log: Log) -> str:
    """Undo one failure broken on purpose by its own fix, as `failure.fix` does, verified."""
    get(failure).fix(lab, _show(log))
    return f"{failure} fixed"


def undo_recorded(lab: Lab, log: Log) -> list[str]:
    """Before a reset wipes Docker: undo each failure recorded as broken on purpose.

    A failure may change more than Docker (a firewall rule, a clock), and only its own fix
    knows what; the fixes work on a standing swarm, so they run before the wipe, and not at
    all where no manager leads (they would wait for one in vain). A fix that cannot finish
    is logged and the reset goes on: its Docker side goes with the wipe, and whatever else
    it left shows in the doctor's findings of class.status.
    """
    if not lab.state.broken:
        return []
    if swarm.find_leader(lab) is None:
        log("    no manager leads a swarm: the failures' fixes cannot run; the wipe undoes"
            " their Docker side")
        return [f"{name} left to the wipe" for name in lab.state.broken]
    done = []
    for name in list(lab.state.broken):
        try:
            get(name).fix(lab, _show(log))
            done.append(f"{name} fixed")
        except LabError as exc:
            log(f"    could not undo {name}: {exc}")
            done.append(f"{name} left to the wipe")
    return done
