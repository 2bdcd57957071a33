"""Judging one command's result against one check, and taking captured values from it.

Checks read the command's whole output (stdout then stderr), as a student sees it in a
terminal. Variables inside patterns are matched literally (their values are escaped), so a
captured address such as 10.0.1.5 never matches 10.0.1.55 or 10x0x1x5 by accident.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import template
from .model import FEATURES, Check
from .results import FAILED, PASSED, UNAVAILABLE, CheckResult
from .template import Value


@dataclass
class Judgement:
    result: CheckResult | None  # None: nothing to show (an `exit: any`)
    captured: dict[str, Value] = field(default_factory=dict)


def _pattern(check: Check, values: Mapping[str, Value]) -> re.Pattern[str]:
    return re.compile(template.render(check.pattern, values, re.escape), re.MULTILINE)


def _word(word: str) -> re.Pattern[str]:
    # A whole word: 10.0.0.5 is in "10.0.0.5:8000" but not in "10.0.0.51".
    return re.compile(rf"(?<![\w.]){re.escape(word)}(?![\w.])")


def label_of(check: Check, values: Mapping[str, Value]) -> str:
    """How the check reads on screen; variables shown with their values."""
    if check.label:
        return template.render(check.label, values)
    shown = template.render(check.pattern, values) if check.pattern else ""
    if check.kind == "exit":
        return "exit status not 0" if check.code == "nonzero" else f"exit status {check.code}"
    if check.kind == "match":
        return f"output matches /{shown}/"
    if check.kind == "no_match":
        return f"output does not match /{shown}/"
    if check.kind == "contains":
        return f"output contains {template.render(check.text, values)}"
    if check.kind == "capture":
        return f"capture {check.name} from /{shown}/"
    return f"at least {check.minimum} different values of /{shown}/"


def unavailable_reason(needs: tuple[str, ...], missing: Mapping[str, str]) -> str:
    """Why a check cannot run here ('' if it can): the first needed feature that is missing."""
    for feature in needs:
        if feature in missing:
            return f"unavailable: {FEATURES[feature]}"
    return ""


def judge(
    check: Check,
    exit_code: int,
    output: str,
    values: Mapping[str, Value],
    *,
    node: str = "",
    missing: Mapping[str, str] | None = None,
    step_needs: tuple[str, ...] = (),
) -> Judgement:
    """Evaluate `check`; `missing` maps each absent feature to its detail."""
    if check.kind == "exit" and check.code == "any":
        return Judgement(None)
    label = label_of(check, values)
    if node:
        label = f"{node}: {label}"

    def result(status: str, detail: str = "") -> CheckResult:
        return CheckResult(label, status, detail, node=node, where=str(check.where))

    reason = unavailable_reason(step_needs + check.needs, missing or {})
    if reason:
        # Never judged where the feature is missing: it must not pass (or fail) by chance.
        return Judgement(result(UNAVAILABLE, reason))

    if check.kind == "exit":
        wanted = exit_code != 0 if check.code == "nonzero" else exit_code == check.code
        if wanted:
            return Judgement(result(PASSED))
        last = output.splitlines()[-1] if output else "no output"
        return Judgement(result(FAILED, f"exit status was {exit_code}: {last}"))

    if check.kind in ("match", "no_match"):
        found = _pattern(check, values).search(output)
        if check.kind == "match":
            return Judgement(result(PASSED) if found else result(FAILED, "not in the output"))
        if found:
            return Judgement(result(FAILED, f"found {found.group(0)!r}"))
        return Judgement(result(PASSED))

    if check.kind == "contains":
        words = template.render(check.text, values).split()
        absent = [word for word in words if not _word(word).search(output)]
        if not words:
            return Judgement(result(FAILED, "nothing to look for: the value is empty"))
        if absent:
            return Judgement(result(FAILED, "missing: " + ", ".join(absent)))
        return Judgement(result(PASSED))

    pattern = _pattern(check, values)
    found_values = [m.group(1) for m in pattern.finditer(output) if m.group(1) is not None]

    if check.kind == "capture":
        if not found_values:
            return Judgement(result(FAILED, "nothing in the output to capture"))
        value: Value = found_values if check.all else found_values[0]
        return Judgement(
            result(PASSED, f"{check.name} = {template.as_text(value)}"), {check.name: value}
        )

    distinct = sorted(set(found_values))
    detail = f"{len(distinct)} different: {', '.join(distinct) or 'none'}"
    if len(distinct) >= check.minimum:
        return Judgement(result(PASSED, detail))
    return Judgement(result(FAILED, detail))
