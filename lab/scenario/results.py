"""What a run produced: per check, per command, per step, and for the whole scenario.

The console, the JSON journal and the JUnit report are all made from these records, so
the three can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASSED = "passed"
FAILED = "failed"
UNAVAILABLE = "unavailable"
NOT_RUN = "not run"
INTERRUPTED = "interrupted"
LAB_NOT_READY = "lab not ready"  # a run's outcome only
IN_THE_WAY = "in the way"  # a run's outcome only: a name or port it needs is taken


@dataclass
class CheckResult:
    label: str
    status: str  # PASSED, FAILED or UNAVAILABLE
    detail: str = ""
    node: str = ""
    where: str = ""  # file:line of the check in the scenario


@dataclass
class CommandRecord:
    node: str
    prompt: str  # what a teacher's shell prompt would say: manager1$
    command: str  # exactly what ran, as shown
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    attempts: int = 1
    error: str = ""  # the command could not run at all (SSH lost, timed out)

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


@dataclass
class StepRecord:
    phase: str  # "step", "cleanup", "pre-clean" or "clean" (--clean)
    index: int
    name: str
    where: str
    target: str
    status: str = NOT_RUN
    commands: list[CommandRecord] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0

    def settle(self) -> None:
        """The step's status from its checks: any failure fails it; else unavailable or passed."""
        statuses = {check.status for check in self.checks}
        if self.error or FAILED in statuses:
            self.status = FAILED
        elif statuses == {UNAVAILABLE}:
            self.status = UNAVAILABLE
        else:
            self.status = PASSED


@dataclass
class RunRecord:
    scenario: str
    title: str
    path: str
    lab: str
    provider: str
    started: float  # seconds since the epoch
    seconds: float = 0.0
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    requirements: list[CheckResult] = field(default_factory=list)
    pre_clean: list[StepRecord] = field(default_factory=list)  # results never judged
    steps: list[StepRecord] = field(default_factory=list)
    cleanup: list[StepRecord] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    outcome: str = NOT_RUN  # passed, failed, unavailable, lab not ready, in the way, interrupted
    exit_code: int = 0
    message: str = ""  # the one closing line

    def checks(self) -> list[CheckResult]:
        return [c for step in self.steps + self.cleanup for c in step.checks]
