"""The instructor's actions on one student's lab, run in the server's threads with progress.

Each action is the class's own (lab.classroom.ops, lab.classroom.health): the web page is
one more way to call them, not a second copy. One action at a time per student; its log
lines are kept (the last ones) for the board, with the outcome and, for `check`, the grade.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from .. import lifecycle
from ..classroom import health, ops
from ..context import Lab
from ..errors import LabError
from ..remote import redact
from ..scenario.model import Scenario
from . import lesson
from .room import Seat

ACTIONS = ("break", "fix", "check", "reset")
RESET_TARGETS = ("prepared", "swarm")
KEPT_LINES = 60


@dataclass
class Job:
    student: str
    action: str
    detail: str = ""
    state: str = "running"  # running, ok, failed
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=KEPT_LINES))
    result: str = ""
    started: float = field(default_factory=time.time)
    ended: float = 0.0

    def log(self, line: str) -> None:
        # Docker's words may carry a join token: never onto a page.
        self.lines.append(redact(line))

    def shown(self) -> dict[str, Any]:
        return {"action": self.action, "detail": self.detail, "state": self.state,
                "last": self.lines[-1] if self.lines else "", "lines": list(self.lines),
                "result": self.result, "started": self.started, "ended": self.ended}


@dataclass
class Grade:
    healthy: bool
    reasons: list[str]
    at: float
    # The lesson's steps as "check my work" judges them ([] when the room has no lesson).
    steps: list[dict[str, Any]] = field(default_factory=list)


def _break(seat: Seat, job: Job, failure: str) -> str:
    with Lab(seat.spec, log=job.log) as lab:
        lifecycle.require_up(lab)
        return health.break_lab(lab, failure, job.log)


def _fix(seat: Seat, job: Job) -> str:
    """Each failure recorded as broken, undone by its own fix (`failure.fix`): it forces the
    quorum back where the break took it, and verifies the lab healthy before it clears the
    record. Not the reset's undo, which gives up where no manager leads and leaves the rest
    to a wipe that a fix never does."""
    with Lab(seat.spec, log=job.log) as lab:
        lifecycle.require_up(lab)
        done = [health.fix_lab(lab, name, job.log) for name in list(lab.state.broken)]
    return "; ".join(done) if done else "nothing was broken on purpose"


class Jobs:
    def __init__(self, pool: Executor, failures: tuple[str, ...],
                 before_reset: Callable[[str], None], after_reset: Callable[[str, str], None],
                 lesson: Scenario | None = None):
        self.pool = pool
        self.failures = failures
        self.lesson = lesson
        self.before_reset = before_reset
        self.after_reset = after_reset
        self.current: dict[str, Job] = {}
        self.grades: dict[str, Grade] = {}

    def busy(self, student: str) -> bool:
        job = self.current.get(student)
        return job is not None and job.state == "running"

    def check_request(self, action: str, failure: str, to: str) -> str:
        """'' if the request is sound, else one line saying what is wrong."""
        if action not in ACTIONS:
            return f"no action {action!r}; allowed: {', '.join(ACTIONS)}"
        if action == "break" and failure not in self.failures:
            return f"no failure {failure!r}; known: {', '.join(self.failures)}"
        if action == "reset" and to not in RESET_TARGETS:
            return f"reset to {to!r}? allowed: {', '.join(RESET_TARGETS)}"
        return ""

    def start(self, seat: Seat, action: str, failure: str = "", to: str = "prepared") -> Job:
        detail = failure if action == "break" else to if action == "reset" else ""
        job = Job(seat.id, action, detail)
        self.current[seat.id] = job
        self.pool.submit(self._run, seat, job, failure, to)
        return job

    def _run(self, seat: Seat, job: Job, failure: str, to: str) -> None:
        job.log(f"==> {job.action} {job.detail}".rstrip())
        try:
            if job.action == "break":
                job.result = _break(seat, job, failure)
            elif job.action == "fix":
                job.result = _fix(seat, job)
            elif job.action == "check":
                # ops' functions read only entry.spec of the class's StudentLab.
                job.result, value = ops.check(seat, job.log)  # type: ignore[arg-type]
                steps = lesson.check(seat.spec, self.lesson, job.log) if self.lesson else []
                reasons = list(value["reasons"]) + [
                    f"step {s['index']} {s['name']}: {s['detail'] or 'failed'}"
                    for s in steps if s["status"] == "failed"]
                healthy = value["healthy"] and lesson.passed(steps)
                if steps:
                    done = sum(s["status"] == "passed" for s in steps)
                    job.result += f"; lesson: {done}/{len(steps)} steps passed"
                self.grades[seat.id] = Grade(healthy, reasons, time.time(), steps)
            else:
                self.before_reset(seat.id)
                job.result, _ = ops.reset(seat, job.log, to=to)  # type: ignore[arg-type]
                self.after_reset(seat.id, to)
            job.state = "ok"
        except LabError as exc:
            job.result, job.state = redact(str(exc)), "failed"
        except Exception as exc:  # one lab's fault is that job's, never the server's
            job.result, job.state = redact(f"{type(exc).__name__}: {exc}"), "failed"
        if job.action == "check" and job.state == "failed":
            # As class.check grades it: a lab that cannot be checked is not healthy.
            self.grades[seat.id] = Grade(False, [f"could not check: {job.result}"], time.time())
        job.log(f"{job.state}: {job.result}")
        job.ended = time.time()
