"""Running a scenario: requirements, steps with their checks and waits, and cleanup that
always runs.

The order of a run:
1. what the lab must be (requirements.py); unmet -> one line with the fix, exit 4;
2. the names and ports the steps will take (ownership.py): held by something without the
   scenario's label -> one line naming it and the command that frees it, exit 4; with
   --clean, steps that free them, shown;
3. quietly, removal of what carries the scenario's label: what an earlier, interrupted run
   left behind;
4. probes of the optional features the scenario's checks need (features.py);
5. the steps, in order; the first failed step stops them;
6. once a step has started, the file's cleanup steps and the removal by label, shown,
   whatever happened before (a failure, a timeout, Ctrl-C).

Every value put into a command (images, vars, captures) is shell-quoted: a captured
`$(reboot)` reaches the node as a word, never as a command.
"""

from __future__ import annotations

import io
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..context import Lab
from ..errors import LabError
from ..remote import Node, run_parallel
from ..waits import wait_until
from . import errors, ownership, requirements, template
from .checks import judge, unavailable_reason
from .cluster import Cluster
from .display import Console
from .features import PROBES
from .model import Scenario, Step, Where, slowed
from .results import (
    FAILED,
    IN_THE_WAY,
    INTERRUPTED,
    LAB_NOT_READY,
    NOT_RUN,
    PASSED,
    UNAVAILABLE,
    CheckResult,
    CommandRecord,
    RunRecord,
    StepRecord,
)
from .targets import Place, resolve
from .template import Value
from .waits import Waiter

RETRY_PAUSE_SECONDS = 1.0


class StopRequested(Exception):
    """The teacher answered q at a --step pause."""


@dataclass
class Options:
    step_mode: bool = False  # pause before each step
    pause: Callable[[str], str] = input  # how a pause asks; returns the answer
    fix: str = "invoke lab.up"  # the command that makes the lab what scenarios need
    clean: bool = False  # remove what holds a name or port the scenario needs, first


class Runner:
    def __init__(self, scenario: Scenario, lab: Lab, console: Console, options: Options):
        self.scenario = slowed(scenario, lab.provider.time_scale)
        self.lab = lab
        self.console = console
        self.options = options
        self.cluster = Cluster(lab)
        self.missing: dict[str, str] = {}  # absent feature -> probe detail
        self.current: StepRecord | None = None  # the step running now
        self.values: dict[str, Value] = {f"images.{k}": v for k, v in lab.spec.images.items()}
        self.values["lab.name"] = lab.spec.name
        for name, raw in scenario.variables.items():
            self.values[name] = template.render(raw, self.values)
        self.started = False  # a step has begun: from then on the run has things to remove
        # What the steps create, read from their commands with the values known now.
        later = _Later(self.values)
        self.creates = ownership.creations(
            template.render(step.run, later, shlex.quote) for step in self.scenario.steps
        )
        self.sweep = ownership.sweep(scenario.name, self.creates.kinds, Where(scenario.path, 0))
        self.record = RunRecord(
            scenario=scenario.name,
            title=scenario.title,
            path=scenario.path,
            lab=lab.spec.name,
            provider=lab.spec.provider,
            started=time.time(),
        )

    # --- the whole run ---------------------------------------------------------------------
    def run(self) -> RunRecord:
        start = time.monotonic()
        spec = self.lab.spec
        self.console.heading(
            self.scenario, f"{spec.name} ({spec.provider}, {len(spec.nodes)} nodes)"
        )
        if self.lab.provider.time_scale != 1:
            self.console.note(f"timeouts x{self.lab.provider.time_scale:g}: this lab's CPUs are"
                              " emulated (QEMU without KVM)")
        try:
            try:
                requirements.check(
                    self.scenario, self.lab, self.cluster, self.options.fix, self._requirement
                )
                self._claim()
                self._pre_clean()
                self._probe_features()
                self._steps()
            except errors.Occupied as exc:
                self._finish(IN_THE_WAY, errors.EXIT_LAB_NOT_READY, str(exc))
            except errors.LabNotReady as exc:
                self._finish(LAB_NOT_READY, errors.EXIT_LAB_NOT_READY,
                             f"the lab is not ready: {exc}")
            except LabError as exc:
                # Preparation itself failed (a probe lost its node, SSH dropped): the run
                # failed, and the summary must say so rather than "passed".
                self._finish(FAILED, errors.EXIT_FAILED, f"failed: {exc}")
            except KeyboardInterrupt:
                self._interrupted("interrupted (Ctrl-C): cleanup ran")
            except StopRequested:
                self._interrupted("stopped at a --step pause: cleanup ran")
        finally:
            self._cleanup()
            self._settle()
            self.record.seconds = time.monotonic() - start
            self.record.variables = dict(self.values)
            self.console.summary(self.record)
        return self.record

    def _interrupted(self, message: str) -> None:
        if self.current is not None and self.current.status == NOT_RUN:
            self.current.status = INTERRUPTED
        self._finish(INTERRUPTED, errors.EXIT_INTERRUPTED, message)

    def _finish(self, outcome: str, code: int, message: str) -> None:
        self.record.outcome = outcome
        self.record.exit_code = code
        self.record.message = message

    def _settle(self) -> None:
        """The outcome and exit status from what happened (see scenarios/README.md)."""
        if self.record.outcome != NOT_RUN:
            return
        statuses = {c.status for c in self.record.checks()}
        failed = [s for s in self.record.steps + self.record.cleanup if s.status == FAILED]
        if failed:
            first = failed[0]
            bad = [c for c in first.checks if c.status == FAILED]
            what = f"{bad[0].label}: {bad[0].detail}" if bad else first.error
            where = bad[0].where if bad else first.where
            phase = "cleanup step" if first.phase == "cleanup" else "step"
            self._finish(FAILED, errors.EXIT_FAILED,
                         f"failed: {phase} {first.index} ({first.name}, {where}): {what}")
        elif UNAVAILABLE in statuses:
            reasons = sorted({c.detail for c in self.record.checks() if c.status == UNAVAILABLE})
            count = sum(c.status == UNAVAILABLE for c in self.record.checks())
            self._finish(UNAVAILABLE, errors.EXIT_UNAVAILABLE,
                         f"passed, but {count} check(s) could not run here: {'; '.join(reasons)}")
        else:
            self._finish(PASSED, errors.EXIT_PASSED, "")

    # --- before step 1 ----------------------------------------------------------------------
    def _requirement(self, result: CheckResult) -> None:
        self.record.requirements.append(result)
        self.console.check(result)

    def _claim(self) -> None:
        """Stop before step 1 if a name or port the steps need is held by something the
        scenario did not make; with --clean, free them first and show how."""
        if not (self.creates.names or self.creates.ports):
            return
        try:
            manager = self.cluster.manager()
            listing = self.cluster.ask(ownership.probe_command(self.creates))
            found = ownership.in_the_way(listing, self.creates, self.scenario.name)
            if self.creates.ports:
                found += self._containers_in_the_way()
        except LabError as exc:
            raise errors.LabNotReady(
                f"the scenario creates swarm objects, but {exc}; run `{self.options.fix}`"
            ) from None
        if not found:
            return
        if not self.options.clean:
            raise errors.Occupied(ownership.refusal(found, manager.name))
        self.console.note("--clean: removing what is in the way: "
                          + ", ".join(way.what for way in found))
        steps = ownership.clearing(found, Where(self.scenario.path, 0))
        for index, step in enumerate(steps, start=1):
            record = StepRecord("clean", index, step.name, str(step.where), str(step.target))
            self.record.pre_clean.append(record)
            self._run_step(step, record, len(steps))
            if record.status == FAILED:
                bad = [c for c in record.checks if c.status == FAILED]
                raise errors.Occupied(
                    f"--clean could not free {', '.join(way.what for way in found)}: "
                    + (f"{bad[0].label}: {bad[0].detail}" if bad else record.error)
                )

    def _containers_in_the_way(self) -> list[ownership.InTheWay]:
        """Plain containers on any node that publish a port the scenario needs."""

        def look(node: Node) -> str:
            return node.run(ownership.CONTAINERS, timeout=self.cluster.query_timeout,
                            check=True).stdout

        outcomes = run_parallel(self.lab.nodes(), look, parallel=self.lab.spec.ssh.parallel,
                                deadline=2 * self.cluster.query_timeout)
        found = []
        for node in self.lab.spec.nodes:  # in the lab file's order, every run the same
            outcome = outcomes[node.name]
            if not outcome.ok:
                raise LabError(outcome.error or f"{node.name}: docker ps failed")
            found += ownership.containers_in_the_way(outcome.value, node.name, self.creates)
        return found

    def _pre_clean(self) -> None:
        """Remove quietly what carries the scenario's label, so that leftovers of an
        interrupted run cannot clash. Never the file's own cleanup steps: they may name
        things, and the user may have made things of those names.

        Its results are recorded but never judged: failing to remove what is not there is
        the normal case.
        """
        shown, self.console = self.console, Console(io.StringIO())
        try:
            steps = self.sweep
            for index, step in enumerate(steps, start=1):
                record = StepRecord("pre-clean", index, step.name, str(step.where),
                                    str(step.target))
                self.record.pre_clean.append(record)
                self._run_step(step, record, len(steps))
        finally:
            self.console = shown

    def _probe_features(self) -> None:
        for feature in sorted(self.scenario.features()):
            state = PROBES[feature](self.lab)
            self.record.features[feature] = {
                "available": state.available,
                "absent_on": state.absent_on,
                "detail": state.detail,
            }
            if not state.available:
                self.missing[feature] = state.detail
            self.console.feature(state)

    # --- steps ------------------------------------------------------------------------------
    def _steps(self) -> None:
        steps = self.scenario.steps
        records = [
            StepRecord("step", i, s.name, str(s.where), str(s.target))
            for i, s in enumerate(steps, start=1)
        ]
        self.record.steps.extend(records)
        self.started = True
        for step, record in zip(steps, records, strict=True):
            if self.options.step_mode:
                self._pause(record.index, len(steps))
            self._run_step(step, record, len(steps))
            if record.status == FAILED:
                self.console.note("an earlier step failed: the remaining steps are not run")
                break

    def _pause(self, number: int, total: int) -> None:
        try:
            answer = self.options.pause(f"-- Enter runs step {number}/{total}, q stops -- ")
        except EOFError:
            # No one at the keyboard (input from a pipe that ended): stop pausing, go on.
            self.options.step_mode = False
            self.console.note("no more input: running the rest without pauses")
            return
        if answer.strip().lower() in ("q", "quit"):
            raise StopRequested

    def _run_step(self, step: Step, record: StepRecord, total: int) -> None:
        self.current = record
        self.console.step(record.index, total, step, record.phase)
        start = time.monotonic()
        try:
            waiter = None
            if step.wait is not None and step.wait.kind != "success":
                waiter = Waiter(self.cluster, step.wait)
                waiter.before()
            if step.run:
                self._command(step, record)
            if waiter is not None and FAILED not in {c.status for c in record.checks}:
                self.console.note(f"waiting for {waiter.label} (up to {step.wait.timeout} s)")
                result = waiter.finish()
                record.checks.append(result)
                self.console.check(result)
        except LabError as exc:
            # The step could not run at all: no such task, SSH lost, a command timed out.
            record.error = str(exc)
            self.console.check(CheckResult("the step ran", FAILED, str(exc)))
        record.seconds = time.monotonic() - start
        record.settle()

    def _command(self, step: Step, record: StepRecord) -> None:
        # Labelled before the values go in, so that no value can add or hide a label.
        command = template.render(ownership.labelled(step.run, self.scenario.name),
                                  self.values, shlex.quote)
        places = resolve(self.cluster, step.target, command)
        unavailable = self._unavailable(step)
        retry = step.wait is not None and step.wait.kind == "success" and not unavailable
        if retry:
            self.console.note(f"run until its checks pass (up to {step.wait.timeout} s):")
        if len(places) == 1:
            # Shown before it runs, so the class knows what it is waiting for.
            self.console.line(f"{places[0].prompt}$ " + places[0].command.replace("\n", "\n> "))
        attempts = 0

        def attempt() -> tuple[list[CommandRecord], list[CheckResult], dict[str, Value]]:
            nonlocal attempts
            attempts += 1
            commands = self._execute(places, step.timeout)
            return (commands, *self._judge(step, commands, unavailable))

        # Once, or (a `success` wait) again until its checks pass; at the bound the last
        # attempt's checks are the step's, failures and all.
        commands, checks, captured = wait_until(
            attempt, timeout=step.wait.timeout if retry and step.wait else 0,
            interval=RETRY_PAUSE_SECONDS, what="the step's checks to pass",
            done=lambda seen: not retry or FAILED not in {c.status for c in seen[1]},
            error=None)
        for item in commands:
            item.attempts = attempts
            if len(places) > 1:
                self.console.line(f"{item.prompt}$ " + item.command.replace("\n", "\n> "))
            if item.output:
                self.console.line(item.output)
        if attempts > 1:
            self.console.note(f"ran {attempts} times")
        for check in checks:
            self.console.check(check)
        record.commands = commands
        record.checks.extend(checks)
        if FAILED not in {c.status for c in checks}:
            self.values.update(captured)

    def _unavailable(self, step: Step) -> str:
        """Why nothing in the step can be judged here ('' if something can)."""
        judged = [c for c in step.checks if not (c.kind == "exit" and c.code == "any")]
        reasons = [unavailable_reason(step.needs + c.needs, self.missing) for c in judged]
        return reasons[0] if reasons and all(reasons) else ""

    def _execute(self, places: list[Place], timeout: int) -> list[CommandRecord]:
        """Run on each place at once; a place that cannot run gets its error recorded."""
        by_node = {place.node.name: place for place in places}

        def one(node: Node) -> CommandRecord:
            place = by_node[node.name]
            start = time.monotonic()
            result = place.node.run(place.command, timeout=timeout)
            return CommandRecord(
                node=place.node.name,
                prompt=place.prompt,
                command=place.command,
                exit_code=result.exit_code,
                stdout=result.stdout,
                stderr=result.stderr,
                seconds=time.monotonic() - start,
            )

        if len(places) == 1:
            # In this thread, so that Ctrl-C interrupts the command itself, not a pool's wait.
            try:
                return [one(places[0].node)]
            except LabError as exc:
                place = places[0]
                return [CommandRecord(place.node.name, place.prompt, place.command, error=str(exc))]
        outcomes = run_parallel(
            [place.node for place in places], one, parallel=self.lab.spec.ssh.parallel
        )
        done = []
        for place in places:
            outcome = outcomes[place.node.name]
            done.append(
                outcome.value
                if outcome.ok
                else CommandRecord(place.node.name, place.prompt, place.command,
                                   error=outcome.error or "failed", seconds=outcome.seconds)
            )
        return done

    def _judge(
        self, step: Step, commands: list[CommandRecord], unavailable: str
    ) -> tuple[list[CheckResult], dict[str, Value]]:
        results: list[CheckResult] = []
        captured: dict[str, Value] = {}
        several = len(commands) > 1
        for item in commands:
            node = item.node if several else ""
            if item.error:
                # Where nothing could be judged anyway, a command that could not finish
                # (a VIP that never answers) is part of the same unavailability.
                if unavailable:
                    result = CheckResult("the command ran", UNAVAILABLE,
                                         f"{unavailable} ({item.error})")
                else:
                    result = CheckResult("the command ran", FAILED, item.error)
                result.node, result.where = node, str(step.where)
                results.append(result)
                continue
            for check in step.checks:
                judgement = judge(
                    check,
                    item.exit_code if item.exit_code is not None else -1,
                    item.output,
                    self.values,
                    node=node,
                    missing=self.missing,
                    step_needs=step.needs,
                )
                if judgement.result is not None:
                    results.append(judgement.result)
                captured.update(judgement.captured)
        return results, captured

    # --- cleanup ----------------------------------------------------------------------------
    def _cleanup(self) -> None:
        """The file's cleanup steps, then the removal of what carries the scenario's label."""
        if not self.started:
            # Nothing ran, so nothing of this run is there to remove; and what holds the
            # scenario's names belongs to someone else.
            self.console.note("cleanup not needed: no step ran")
            return
        steps = self.scenario.cleanup + self.sweep
        records = [
            StepRecord("cleanup", i, s.name, str(s.where), str(s.target))
            for i, s in enumerate(steps, start=1)
        ]
        self.record.cleanup.extend(records)
        if steps and not self.lab.state.machines:
            # A lab with no machines holds nothing to clean; trying would only print errors.
            self.console.note("cleanup not needed: the lab has no machines")
            return
        try:
            for step, record in zip(steps, records, strict=True):
                self._run_step(step, record, len(steps))
        except KeyboardInterrupt:
            # A second Ctrl-C: the user insists. What is left is cleared by the next
            # run's quiet cleanup before its step 1.
            self.console.note("cleanup interrupted; the next run of this scenario clears it")
            self._finish(INTERRUPTED, errors.EXIT_INTERRUPTED,
                         "interrupted (Ctrl-C), cleanup interrupted too; the next run clears"
                         " leftovers")


class _Later(dict):  # type: ignore[type-arg]
    """Values known before step 1; a capture's `{{name}}` stays as it is for now."""

    def __missing__(self, key: str) -> str:
        return "{{" + key + "}}"
