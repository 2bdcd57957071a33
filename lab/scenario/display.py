"""The teacher's view of a run: each command behind its node's prompt, its output, a mark
per check.

Everything is written line by line and flushed, so a class watching a projector sees each
command as it completes. A terminal that cannot show ✔ and ✘ gets PASS and FAIL instead.
"""

from __future__ import annotations

import sys
import textwrap
from typing import TextIO

from .features import FeatureState
from .model import Scenario, Step
from .results import FAILED, PASSED, UNAVAILABLE, CheckResult, RunRecord

UNICODE_MARKS = {PASSED: "✔", FAILED: "✘", UNAVAILABLE: "UNAVAILABLE"}
ASCII_MARKS = {PASSED: "PASS", FAILED: "FAIL", UNAVAILABLE: "UNAVAILABLE"}


class Console:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        try:
            "✔✘".encode(getattr(self.stream, "encoding", None) or "ascii")
            self.marks = UNICODE_MARKS
        except (UnicodeEncodeError, LookupError):
            self.marks = ASCII_MARKS

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def heading(self, scenario: Scenario, lab: str) -> None:
        self.line(f"== {scenario.name}: {scenario.title} ==")
        for text in textwrap.wrap(scenario.teaches, 96):
            self.line(f"   {text}")
        self.line(f"   lab: {lab}")

    def feature(self, state: FeatureState) -> None:
        if state.available:
            self.line(f"   {state.name.upper()}: {state.detail}")
        else:
            self.line(
                f"   {state.name.upper()}: absent ({state.detail}); checks that need it are"
                f" {self.marks[UNAVAILABLE]}: {state.reason}"
            )

    def step(self, number: int, total: int, step: Step, phase: str) -> None:
        self.line()
        kind = {"step": "", "clean": "--clean "}.get(phase, "cleanup ")
        heading = f"[{kind}{number}/{total}]"
        self.line(f"{heading} {step.name}")
        for text in textwrap.wrap(step.say, 94):
            self.line(f"# {text}")

    def check(self, result: CheckResult) -> None:
        # The UNAVAILABLE mark already says so; the reason follows it.
        shown = result.detail.removeprefix("unavailable: ")
        detail = f": {shown}" if shown else ""
        self.line(f"  {self.marks[result.status]} {result.label}{detail}")

    def note(self, text: str) -> None:
        self.line(f"  ... {text}")

    def summary(self, run: RunRecord) -> None:
        checks = run.checks()
        counts = {status: sum(c.status == status for c in checks) for status in UNICODE_MARKS}
        self.line()
        self.line(
            f"== {run.scenario}: {run.outcome} - {counts[PASSED]} passed, {counts[FAILED]} failed,"
            f" {counts[UNAVAILABLE]} unavailable, in {run.seconds:.1f} s (exit {run.exit_code}) =="
        )
        if run.message:
            self.line(run.message)
