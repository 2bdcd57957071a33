"""The doctor's findings for a student's page, in English and Chinese at once (the page
picks), from the checks that only read the lab.

Like the class's health (lab.classroom.health) it examines read-only: the overlay check
starts services in the student's swarm, which a page must never do.
"""

from __future__ import annotations

from typing import Any

from ..context import Lab
from ..doctor import examine


def findings(lab: Lab) -> list[dict[str, Any]]:
    """The failing findings, each with its words in both languages (blocking: SSH)."""
    found: list[dict[str, Any]] = []
    for finding in examine(lab, read_only=True):
        if finding.failing:
            words = {lang: finding.as_dict(lang) for lang in ("en", "zh")}
            found.append({"check": finding.check, "node": finding.node,
                          "severity": finding.severity,
                          **{lang: {k: entry[k] for k in ("saw", "cause", "fix")}
                             for lang, entry in words.items()}})
    return found
