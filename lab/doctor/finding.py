"""A finding: what one check saw on one node, why it matters and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .text import Text

ERROR = "error"  # the swarm is broken, or will be at the next join
WARNING = "warning"  # works now, bites later or confuses students
UNAVAILABLE = "unavailable"  # this host cannot offer a feature; nothing in the lab to fix
SKIPPED = "skipped"  # could not be checked because something else is already wrong
OK = "ok"
SEVERITIES = (ERROR, WARNING, UNAVAILABLE, SKIPPED, OK)
# These make `lab.doctor` exit non-zero: "nothing is wrong" means none of them. A skip is
# among them: what could not be proven is not known to be right, and a skip whose cause
# no other check caught would otherwise read as a healthy lab.
FAILING = (ERROR, WARNING, SKIPPED)
NOTHING = Text("", "")


@dataclass(frozen=True)
class Finding:
    check: str
    node: str  # "" when it is about the whole lab
    severity: str
    saw: Text
    cause: Text = NOTHING
    fix: Text = NOTHING

    @property
    def failing(self) -> bool:
        return self.severity in FAILING

    def as_dict(self, lang: str) -> dict[str, Any]:
        return {
            "check": self.check,
            "node": self.node,
            "severity": self.severity,
            "saw": self.saw(lang),
            "cause": self.cause(lang),
            "fix": self.fix(lang),
        }


def ok(check: str, saw: Text, node: str = "") -> Finding:
    return Finding(check, node, OK, saw)
