"""Bounded parallel work over the labs of a class, with live progress and a summary.

Each lab's work runs in a thread of its own (at most `parallel` at once) and its whole log
goes to `<class dir>/logs/<student>.log`; the terminal gets the step lines of every lab,
each prefixed with the overall count, so both each lab's and the class's progress show.
One lab's failure is that lab's result: the others go on, and the summary names it and why.

Before a lab starts, an optional gate may refuse it (the host has no room for its machines):
that student is reported as having no lab, and labs that need no new machines still go on.

Ctrl-C stops new labs at once and the running ones at their next log line (their state files
record how far they got); rerunning the command finishes the job.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LabError
from ..remote import redact
from .plan import StudentLab

Log = Callable[[str], None]
Say = Callable[[str], None]
# Lines worth a place on the terminal: a step starting and a step's outcome (lifecycle.Step).
PROGRESS_RE = re.compile(r"^(==> |\s{4}\w[\w-]*: (ok|changed|failed|skipped)\b)")
OK, FAILED, REFUSED, INTERRUPTED = "ok", "failed", "no lab", "interrupted"


class Interrupted(LabError):
    """Raised inside a lab's work at its next log line once the user pressed Ctrl-C."""


@dataclass
class Result:
    student: str
    status: str  # ok, failed, no lab, interrupted
    seconds: float = 0.0
    detail: str = ""
    value: Any = None

    @property
    def ok(self) -> bool:
        return self.status == OK


Work = Callable[[StudentLab, Log], tuple[str, Any]]  # -> (one-line detail, value)
Gate = Callable[[StudentLab], str | None]  # -> None to go ahead, else why not
Release = Callable[[StudentLab], None]


class Progress:
    """Serialises terminal lines from many threads and keeps the overall count."""

    def __init__(self, total: int, say: Say, width: int):
        self.total, self.say, self.width = total, say, width
        self.finished = 0
        self.lock = threading.Lock()

    def line(self, student: str, text: str, finished: bool = False) -> None:
        with self.lock:
            if finished:
                self.finished += 1
            self.say(f"[{self.finished}/{self.total}] {student:<{self.width}} {text}")


def run(
    labs: list[StudentLab],
    work: Work,
    *,
    what: str,
    parallel: int,
    say: Say,
    log_dir: Path,
    gate: Gate | None = None,
    release: Release | None = None,
) -> list[Result]:
    """Do `work` on every lab, at most `parallel` at once; one Result per lab, in order."""
    ask_credentials(labs)
    log_dir.mkdir(parents=True, exist_ok=True)
    width = max((len(lab.id) for lab in labs), default=0)
    progress = Progress(len(labs), say, width)
    stop = threading.Event()
    gate_lock = threading.Lock()
    results: dict[str, Result] = {}

    def one(entry: StudentLab) -> Result:
        start = time.monotonic()
        if stop.is_set():
            return Result(entry.id, INTERRUPTED, detail="not started: interrupted")
        path = log_dir / f"{entry.id}.log"
        try:
            try:
                result = attempt(entry, path, start)
            finally:
                if release is not None:
                    release(entry)
        except Exception as exc:  # a fault or bug of one lab (work, gate or release): its result
            message = redact(str(exc) if isinstance(exc, LabError) else
                             f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(OSError), path.open("a") as handle:
                handle.write(f"failed: {message}\n")
            status = INTERRUPTED if stop.is_set() else FAILED
            seconds = time.monotonic() - start
            progress.line(entry.id, f"{status} after {seconds:.1f} s: {message}", finished=True)
            return Result(entry.id, status, seconds, f"{message} (log: {path})")
        # The line comes after the release, so a lab is counted finished exactly once.
        if result.status == REFUSED:
            progress.line(entry.id, f"{REFUSED}: {result.detail}", finished=True)
        else:
            progress.line(entry.id, f"done in {result.seconds:.1f} s: {result.detail}",
                          finished=True)
        return result

    def attempt(entry: StudentLab, path: Path, start: float) -> Result:
        if gate is not None:
            # One lab at a time through the gate, so two labs never count the same free room.
            with gate_lock:
                reason = gate(entry)
            if reason is not None:
                return Result(entry.id, REFUSED, detail=reason)
        with path.open("a") as handle:
            handle.write(f"--- {what} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")

            def log(line: str) -> None:
                handle.write(redact(line) + "\n")
                handle.flush()
                if PROGRESS_RE.match(line):
                    progress.line(entry.id, line.strip())
                if stop.is_set():
                    raise Interrupted("interrupted by the user")

            detail, value = work(entry, log)
        return Result(entry.id, OK, time.monotonic() - start, detail, value)

    pool = ThreadPoolExecutor(max_workers=max(1, min(parallel, len(labs))))
    futures: dict[Future[Result], StudentLab] = {pool.submit(one, lab): lab for lab in labs}
    pending = set(futures)
    try:
        while pending:
            # A short wait keeps the main thread able to take Ctrl-C.
            _done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
    except KeyboardInterrupt:
        stop.set()
        say("interrupted: no new labs start; labs at work stop at their next step")
        pool.shutdown(wait=True, cancel_futures=True)
        _collect(futures, results)
        summary(results_in_order(labs, results), what, say)
        raise
    pool.shutdown(wait=True)
    _collect(futures, results)
    return results_in_order(labs, results)


def ask_credentials(labs: list[StudentLab]) -> None:
    """Ask here, on the main thread before any lab's thread starts, for what the labs will
    need and the user must type (the vSphere password without its variable): one prompt
    for the class, answered once, and Ctrl-C reaches it."""
    vmware = [lab.spec for lab in labs if lab.spec.provider == "vmware"]
    if vmware:
        from ..vsphere.connection import resolve_password
        from ..vsphere.settings import parse_settings

        for spec in vmware:
            resolve_password(parse_settings(spec))  # asks once per account; then remembered


def _collect(futures: dict[Future[Result], StudentLab], results: dict[str, Result]) -> None:
    for future, entry in futures.items():
        if future.cancelled():
            results[entry.id] = Result(entry.id, INTERRUPTED, detail="not started: interrupted")
        else:
            results[entry.id] = future.result()


def results_in_order(labs: list[StudentLab], results: dict[str, Result]) -> list[Result]:
    return [results[lab.id] for lab in labs if lab.id in results]


def summary(results: list[Result], what: str, say: Say) -> None:
    """A table of every lab, then one line: how many ok, and who failed or has no lab."""
    if not results:
        return
    width = max(len("student"), *(len(r.student) for r in results))
    say("")
    say(f"{'student':<{width}}  {'result':<11}  {'seconds':>7}  detail")
    for r in results:
        say(f"{r.student:<{width}}  {r.status:<11}  {r.seconds:>7.1f}  {r.detail}")
    bad = [r for r in results if not r.ok]
    line = f"{what}: {len(results) - len(bad)} of {len(results)} ok"
    for status in (FAILED, REFUSED, INTERRUPTED):
        names = [r.student for r in bad if r.status == status]
        if names:
            line += f"; {status}: " + ", ".join(names)
    say(line)
