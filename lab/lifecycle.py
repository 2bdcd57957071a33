"""A lab's lifecycle: up as named steps (preflight, create, prepare, swarm, verify), down,
and the revert to a snapshot that lab.reset and class.reset share.

Each step is reported as it runs, and the state file records what it made and what
converged, so a rerun after a fault finishes the job and a rerun on a converged lab changes
nothing and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import swarm
from .context import Lab
from .errors import LabError, NodeError
from .prepare import prepare_nodes
from .prepare.timesync import make_time_right
from .remote import Node, first_error, run_parallel
from .waits import wait_until

Log = Callable[[str], None]
STEPS = ("preflight", "create", "prepare", "swarm", "verify")
# After a revert, the managers boot and hold a Raft election before the swarm answers: on
# emulated CPUs (time_scale) that takes minutes, not seconds.
SETTLE_SECONDS = 120


@dataclass
class StepReport:
    name: str
    status: str  # ok, changed, skipped, failed
    seconds: float
    detail: str = ""


@dataclass
class UpReport:
    steps: list[StepReport] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(step.status == "changed" for step in self.steps)

    def timings(self) -> dict[str, float]:
        return {step.name: round(step.seconds, 3) for step in self.steps}


class Step:
    """Times a step, prints its outcome, and records a failure in the state file."""

    def __init__(self, lab: Lab, report: UpReport, name: str, log: Log):
        self.lab, self.report, self.name, self.log = lab, report, name, log
        self.status = "ok"
        self.detail = ""

    def __enter__(self) -> Step:
        self.start = time.monotonic()
        self.log(f"==> {self.name}")
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, tb: object) -> None:
        seconds = time.monotonic() - self.start
        if error is not None:
            self.status = "failed"
            self.detail = str(error)
            self.lab.state.record_step(self.name, self.lab.spec.digest(), False, error=str(error))
        else:
            self.lab.state.record_step(self.name, self.lab.spec.digest(), True,
                                       seconds=round(seconds, 3))
        self.report.steps.append(StepReport(self.name, self.status, seconds, self.detail))
        detail = f" - {self.detail}" if self.detail else ""
        self.log(f"    {self.name}: {self.status} ({seconds:.1f} s){detail}")


def up(
    lab: Lab, *, skip_swarm: bool = False, force: bool = False, discard_services: bool = False,
    log: Log = print,
) -> UpReport:
    report = UpReport()
    spec = lab.spec
    lab.state.data["provider"] = spec.provider
    lab.state.data["spec_digest"] = spec.digest()
    lab.state.save()

    with Step(lab, report, "preflight", log) as step:
        for line in lab.provider.preflight():
            log(f"    {line}")

    with Step(lab, report, "create", log) as step:
        made = lab.provider.create()
        fresh = [name for name, what in made.items() if what != "ok"]
        if fresh:
            step.status = "changed"
            step.detail = ", ".join(f"{name} {made[name]}" for name in fresh)
            lab.forget_connections()
        else:
            step.detail = "all machines exist and run"

    with Step(lab, report, "prepare", log) as step:
        outcomes = prepare_nodes(lab, lab.nodes(), log)
        error = first_error(outcomes)
        for name, outcome in outcomes.items():
            if outcome.ok:
                lab.state.record_machine(
                    name, os=outcome.value.facts.os, docker=outcome.value.fact("version")
                )
        if error:
            raise LabError(f"prepare failed: {error}; fix it and rerun `invoke lab.up`")
        changed = [name for name, outcome in outcomes.items() if outcome.value.changed]
        if changed:
            step.status = "changed"
            step.detail = "changed on " + ", ".join(changed)
        else:
            step.detail = "every node already as wanted"
        lab.state.record_step("prepare", spec.digest(), True)

    if skip_swarm:
        report.steps.append(StepReport("swarm", "skipped", 0.0, "--skip-swarm"))
        log("==> swarm: skipped (--skip-swarm): the nodes are prepared, build the swarm by hand")
    else:
        with Step(lab, report, "swarm", log) as step:
            done = swarm.converge(lab, log=log, force=force, discard_services=discard_services)
            acted = {name: what for name, what in done.items() if what != "ok"}
            if acted:
                step.status = "changed"
                step.detail = ", ".join(f"{name} {what}" for name, what in acted.items())
            else:
                step.detail = "already built; nothing to do"

    with Step(lab, report, "verify", log) as step:
        if not skip_swarm:
            leader = swarm.find_leader(lab)
            if leader is None:
                raise LabError("no manager answers as a swarm leader; run `invoke lab.doctor`")
            swarm.verify(lab, leader, seconds=30)
            step.detail = f"{len(spec.nodes)} nodes Ready with the right roles"
        else:
            step.detail = "prepared, no swarm"
    lab.state.record_step("up", spec.digest(), True, skip_swarm=skip_swarm)
    return report


def down(lab: Lab, log: Log = print) -> list[str]:
    lab.close()
    removed = lab.provider.destroy()
    for line in removed:
        log(f"  removed {line}")
    lab.state.remove()
    return removed


def require_up(lab: Lab) -> None:
    if not lab.state.machines:
        raise LabError(f"lab {lab.spec.name!r} has no machines; run `invoke lab.up` first")


def make_clocks_right(lab: Lab, log: Log) -> str:
    """Step every node's clock where nodes own one; containers share the host's."""
    if not lab.provider.owns_clock:
        return "clocks: shared with the host"
    log("==> clocks")
    skews = on_nodes(lab, lab.nodes(), make_time_right, "making clocks right")
    for name, skew in skews.items():
        log(f"  {name}: clock skew {skew:+.3f} s")
    worst = max(abs(skew) for skew in skews.values())
    return f"clocks right (worst skew {worst:.3f} s)"


DOCKER_STOP = "systemctl stop docker.socket docker.service"
DOCKER_START = "systemctl start docker.socket docker.service"


def on_nodes(lab: Lab, nodes: list[Node], work: Callable[[Node], Any], what: str) -> dict[str, Any]:
    """Each node's result of `work`, run in parallel; the first node's fault stops it all."""
    outcomes = run_parallel(nodes, work, parallel=lab.spec.ssh.parallel,
                            deadline=lab.spec.ssh.command_timeout)
    error = first_error(outcomes)
    if error:
        raise LabError(f"{what}: {error}")
    return {name: outcome.value for name, outcome in outcomes.items()}


def _systemctl(lab: Lab, nodes: list[Node], command: str, what: str) -> None:
    on_nodes(lab, nodes, lambda node: node.run(command, timeout=300, check=True), what)


def snapshot(lab: Lab, name: str, log: Log = print) -> None:
    """Snapshot every machine, with the swarm's managers' Docker stopped for it.

    Machines are saved one after another. Managers whose Raft logs were saved moments apart
    can come back unable to ever elect a leader (seen on VMs: no leader eight minutes after
    lab.reset), so the managers' Docker is stopped first: every Raft log is then on disk and
    consistent with the others. Workers keep running; the managers' tasks restart after.
    """
    managers = [node for node in lab.managers() if swarm.info(node).state == "active"]
    if managers:
        log(f"==> docker stopped on {', '.join(n.name for n in managers)} for a consistent"
            " snapshot of the swarm's Raft log")
        _systemctl(lab, managers, DOCKER_STOP, "stopping Docker for the snapshot")
    try:
        log(f"==> snapshot {name}")
        lab.provider.snapshot(name)
    finally:
        if managers:
            log("==> docker started again")
            lab.forget_connections()
            _systemctl(lab, managers, DOCKER_START, "starting Docker after the snapshot")
    if managers:
        _swarm_back(lab, managers[0], log)


def revert(lab: Lab, snapshot: str, log: Log = print) -> str:
    """Revert every machine to a snapshot and give the lab back only once it works.

    A reverted guest wakes with the snapshot's clock and swarm certificates tolerate an hour,
    so time is put right before anything talks to the swarm; then, if the snapshot held a
    swarm, its managers are given time to elect a leader and every node to be Ready again.
    """
    log(f"==> revert to {snapshot}")
    lab.provider.revert(snapshot)
    lab.forget_connections()
    clocks = make_clocks_right(lab, log)
    lab.state.invalidate_steps()
    # A snapshot of a swarm holds its managers with Docker stopped (see snapshot above).
    _systemctl(lab, lab.nodes(), DOCKER_START, "starting Docker after the revert")
    timeout = SETTLE_SECONDS * lab.provider.time_scale
    in_swarm = _swarm_managers(lab, deadline=time.monotonic() + timeout)
    if not in_swarm:
        return f"{clocks}; no swarm in this snapshot"
    log("==> swarm")
    ready = _swarm_back(lab, in_swarm[0], log)
    return f"{clocks}; swarm has a leader, {ready} nodes Ready"


def _swarm_back(lab: Lab, manager: Node, log: Log) -> int:
    """After managers' Docker restarted together: every node Ready in its role, and a leader
    that stays (swarm.hold). The number of Ready nodes."""
    current = swarm.verify(lab, manager, seconds=SETTLE_SECONDS)
    swarm.hold(lab, manager)
    log(f"  a leader that held {swarm.LEADER_HOLD_SECONDS} s, {len(current)} nodes Ready"
        " with the right roles")
    return len(current)


def _swarm_managers(lab: Lab, deadline: float) -> list[Node]:
    """The managers that are in a swarm, once each one's dockerd answers (it may still be
    starting on a guest that has just woken from a snapshot)."""
    found = []
    for node in lab.managers():
        # Until the deadline a dockerd that does not answer yet is not an error; past it,
        # its NodeError is raised as it came.
        state = wait_until(lambda node=node: swarm.info(node),
                           timeout=max(0.0, deadline - time.monotonic()), interval=3,
                           what=f"dockerd on {node.name}", retry_on=(NodeError,), error=None)
        if state.state == "active":
            found.append(node)
    return found
