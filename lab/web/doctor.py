"""The doctor's findings for a student's page, in English and Chinese at once (the page
picks), from the checks that only read the lab.

The class's health (lab.classroom.health) skips the same acting checks for the same reason:
the overlay check starts services in the student's swarm, which a page must never do.
"""

from __future__ import annotations

from typing import Any

from ..classroom.health import ACTING_CHECKS
from ..context import Lab
from ..doctor.checks import CHECKS
from ..doctor.survey import take
from ..errors import LabError


def findings(lab: Lab) -> list[dict[str, Any]]:
    """The failing findings, each with its words in both languages (blocking: SSH)."""
    survey = take(lab)
    found: list[dict[str, Any]] = []
    for check in CHECKS:
        if check.NAME in ACTING_CHECKS:
            continue
        try:
            results = check.check(survey)
        except LabError as exc:
            found.append({"check": check.NAME, "node": "", "severity": "error",
                          "en": {"saw": f"the check could not run: {exc}", "cause": "",
                                 "fix": ""},
                          "zh": {"saw": f"检查无法运行：{exc}", "cause": "", "fix": ""}})
            continue
        for finding in results:
            if finding.failing:
                entry = finding.as_dict("en")
                found.append({"check": finding.check, "node": finding.node,
                              "severity": finding.severity,
                              "en": {k: entry[k] for k in ("saw", "cause", "fix")},
                              "zh": {k: finding.as_dict("zh")[k] for k in ("saw", "cause",
                                                                           "fix")}})
    return found
