"""`lab.doctor`: look at a lab and say what is wrong with it, why, and how to fix it.

survey.py probes every node once; each module of checks/ turns that (and, for ports and
overlay, a little more work on the nodes) into findings; report.py shows them in English
or Chinese, or as JSON. The doctor never reads the lab's record of failures broken on
purpose: it must recognise them, and their cousins, from the lab alone.
"""

from __future__ import annotations

from ..context import Lab
from ..errors import LabError
from .checks import CHECKS
from .finding import ERROR, Finding
from .survey import take
from .text import Text

# Checks that act on the lab: the overlay check starts a short-lived service in the swarm
# (up to a minute a lab). A class's grade and a student's page look at thirty labs and must
# never start anything in a student's swarm, so they examine read-only.
ACTING_CHECKS = ("overlay",)


def examine(lab: Lab, *, read_only: bool = False) -> list[Finding]:
    survey = take(lab)
    findings: list[Finding] = []
    for check in CHECKS:
        if read_only and check.NAME in ACTING_CHECKS:
            continue
        try:
            findings += check.check(survey)
        except LabError as exc:
            # A check that cannot run proves nothing: that is not "nothing is wrong".
            findings.append(Finding(check.NAME, "", ERROR,
                                    Text(f"the check could not run: {exc}",
                                         f"检查无法运行：{exc}")))
    return findings


def exit_code(findings: list[Finding]) -> int:
    return 1 if any(f.failing for f in findings) else 0
