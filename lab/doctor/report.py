"""The doctor's report: a line per finding for people (English or Chinese), or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..scenario.display import Console
from .finding import ERROR, OK, SEVERITIES, SKIPPED, UNAVAILABLE, WARNING, Finding
from .text import HEADINGS

SEVERITY_WORDS = {
    "en": {ERROR: "error", WARNING: "warning", UNAVAILABLE: "unavailable", SKIPPED: "skipped",
           OK: "ok"},
    "zh": {ERROR: "错误", WARNING: "警告", UNAVAILABLE: "不可用", SKIPPED: "跳过", OK: "正常"},
}


def counts(findings: Sequence[Finding]) -> dict[str, int]:
    return {severity: sum(f.severity == severity for f in findings) for severity in SEVERITIES}


def as_json(lab: str, provider: str, findings: Sequence[Finding], lang: str,
            exit_code: int) -> str:
    return json.dumps({
        "lab": lab,
        "provider": provider,
        "lang": lang,
        "exit_code": exit_code,
        "counts": counts(findings),
        "findings": [f.as_dict(lang) for f in findings],
    }, indent=2, ensure_ascii=False)


def show(console: Console, lab: str, provider: str, findings: Sequence[Finding],
         lang: str, exit_code: int) -> None:
    words = SEVERITY_WORDS[lang]
    heads = HEADINGS[lang]
    marks = {ERROR: console.marks["failed"], WARNING: "!", UNAVAILABLE: "-", SKIPPED: "-",
             OK: console.marks["passed"]}
    console.line(f"doctor: lab {lab} ({provider})")
    # Problems first, so the first screen a class sees is what to fix.
    order = {severity: index for index, severity in enumerate(SEVERITIES)}
    for finding in sorted(findings, key=lambda f: order[f.severity]):
        where = f" {finding.node}" if finding.node else ""
        console.line(f"{marks[finding.severity]} {words[finding.severity]:<11} "
                     f"{finding.check}{where}")
        console.line(f"    {heads['saw']}: {finding.saw(lang)}")
        for key in ("cause", "fix"):
            text = getattr(finding, key)(lang)
            if text:
                console.line(f"    {heads[key]}: {text}")
    tally = counts(findings)
    summary = ", ".join(f"{tally[s]} {words[s]}" for s in SEVERITIES)
    console.line(f"{summary} -> exit {exit_code}")
