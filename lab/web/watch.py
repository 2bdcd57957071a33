"""Looking at each lab for the pages: at most once per period per lab, whatever the number of
pages open on it, and only while someone looks.

A look is one `docker info` per node (is it up, is it in a swarm) and one listing on the
first manager that answers (picture.COMMAND), run in a thread: SSH through lab.remote is
blocking. Pages never SSH themselves; they wait for the next version of the picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from ..context import Lab
from ..errors import LabError
from ..remote import Node, run_parallel
from . import doctor, picture
from .room import Seat

PERIOD = 5.0  # seconds between two looks at one lab, at least
LINGER = 30.0  # keep looking this long after the last page asked
NODE_DEADLINE = 8.0  # a node that does not answer by then is drawn down
SLOW = "dockerd does not answer"
DOCTOR_EVERY = 30.0  # the doctor looks after each change of the picture, and this often


def doctor_summary(found: list[dict[str, Any]]) -> dict[str, Any]:
    first = found[0] if found else None
    where = f" {first['node']}" if first and first["node"] else ""
    return {"doctor": len(found),
            "doctor_first": f"{first['check']}{where}: {first['en']['saw']}" if first else ""}


def _quiet(line: str) -> None:
    """A look logs nothing: it is not something the user asked for."""


def plain(said: str) -> str:
    """Docker's sentence without the wrappers around it (they vary between versions)."""
    for wrapper in ("Error response from daemon: ", "rpc error: code = Unknown desc = "):
        said = said.replace(wrapper, "")
    return said


class Watch:
    def __init__(self, seat: Seat, pool: Executor, period: float = PERIOD,
                 look: Callable[[], picture.SwarmView] | None = None):
        self.seat = seat
        self.pool = pool
        self.period = period
        self.viewers = 0
        self.looks = 0  # how many looks were taken (the bench counts SSH rounds with it)
        self.shortest_gap = float("inf")  # between two looks' starts: never below period
        self._last_start = 0.0
        self.version = 0
        self.view: picture.SwarmView | None = None
        self.svg = ""
        self.summary: dict[str, Any] = {}
        self._asked = 0.0
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._lab: Lab | None = None
        self.doctor: list[dict[str, Any]] = []  # failing findings, words in en and zh
        self._doctor_at = 0.0
        self._look = look or self.look_now
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await asyncio.get_running_loop().run_in_executor(self.pool, self._forget)

    def ask(self) -> None:
        """A page wants fresh pictures for a while (the instructor's board asks this way)."""
        self._asked = time.monotonic()
        self._wake.set()

    def _wanted(self) -> bool:
        return self.viewers > 0 or time.monotonic() - self._asked < LINGER

    async def next_version(self, seen: int, timeout: float) -> int:
        """Wait until the picture is newer than `seen` (or the timeout); the current version."""
        if self.version == seen:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
        return self.version

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._wanted():
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            started = time.monotonic()
            if self._last_start:
                self.shortest_gap = min(self.shortest_gap, started - self._last_start)
            self._last_start = started
            try:
                view = await loop.run_in_executor(self.pool, self._look)
            except Exception as exc:  # a fault of one lab's look must not end the watch
                view = picture.SwarmView([], error=f"{type(exc).__name__}: {exc}")
            self.looks += 1
            changed = self._publish(view)
            if changed or time.monotonic() - self._doctor_at > DOCTOR_EVERY:
                # After each change (a break shows at once) and now and then: a fault the
                # picture cannot show (a clock, a firewall) shows here.
                self._doctor_at = time.monotonic()
                found = await loop.run_in_executor(self.pool, self._examine, view)
                if found != self.doctor:
                    self.doctor = found
                    self.summary = {**self.summary, **doctor_summary(found)}
                    self._bump()
            await asyncio.sleep(max(0.0, self.period - (time.monotonic() - started)))

    def _publish(self, view: picture.SwarmView) -> bool:
        """Keep the new picture; True when it differs from the last one."""
        drawn = picture.svg(view)
        summary = {**view.summary(), **doctor_summary(self.doctor)}
        self.view = view
        if drawn == self.svg and summary == self.summary and self.version:
            return False
        self.svg, self.summary = drawn, summary
        self._bump()
        return True

    def _bump(self) -> None:
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _examine(self, view: picture.SwarmView) -> list[dict[str, Any]]:
        """The doctor's findings (blocking); none while no node answers: the picture says
        that already, and the survey would only wait for the same timeouts again."""
        if self._lab is None or not any(node.reachable for node in view.nodes):
            return []
        try:
            return doctor.findings(self._lab)
        except Exception as exc:  # the doctor's fault must not end the watch
            said = f"the doctor could not look: {type(exc).__name__}: {exc}"
            return [{"check": "doctor", "node": "", "severity": "error",
                     "en": {"saw": said, "cause": "", "fix": ""},
                     "zh": {"saw": said, "cause": "", "fix": ""}}]

    def _forget(self) -> None:
        if self._lab is not None:
            with contextlib.suppress(Exception):
                self._lab.close()
            self._lab = None

    def look_now(self) -> picture.SwarmView:
        """One look at the lab (blocking; runs in the pool)."""
        spec = self.seat.spec
        if self._lab is None:
            self._lab = Lab(spec, log=_quiet)
        lab = self._lab
        views = [picture.NodeView(n.name, n.role, False, "") for n in spec.nodes]
        try:
            nodes = lab.nodes()
            # The provider knows a stopped machine at once; SSH would wait for its timeout.
            machines = {machine.name: machine for machine in lab.provider.status()}
        except LabError as exc:
            # Not up, or torn down under the page: a fresh Lab next time reads the new state.
            self._forget()
            return picture.SwarmView(views, error=str(exc))
        for view in views:
            machine = machines.get(view.name)
            if machine is None or not machine.running:
                view.local_state = machine.power if machine else "absent"
        nodes = [node for node in nodes if machines.get(node.name) and
                 machines[node.name].running]

        def state(node: Node) -> str:
            return node.run("docker info --format '{{.Swarm.LocalNodeState}}'",
                            timeout=NODE_DEADLINE).stdout.strip()

        outcomes = run_parallel(nodes, state, deadline=NODE_DEADLINE + 2)
        for view in views:
            outcome = outcomes.get(view.name)
            if outcome is None:
                continue
            if outcome.ok:
                view.reachable, view.local_state = True, outcome.value
            elif "did not finish" in (outcome.error or ""):
                # SSH works, dockerd does not answer (a manager without quorum can hang):
                # the node is up, and asking it for the swarm's lists would only wait again.
                view.reachable, view.local_state = True, SLOW
            else:
                view.local_state = "no answer"
        found = picture.SwarmView(views)
        managers = [v.name for v in views if v.reachable and v.role == "manager"
                    and v.local_state != SLOW]
        others = [v.name for v in views if v.reachable and v.local_state == "active"
                  and v.name not in managers]
        for name in managers + others:
            try:
                result = lab.node(name).run(picture.COMMAND, timeout=NODE_DEADLINE)
            except LabError:
                continue
            # A worker answers the command too, with an error for `node ls`: not a view.
            if "Hostname" in result.stdout.split(picture.SEPARATOR)[0]:
                return picture.parse(found, result.stdout, name)
            said = result.stderr.strip().splitlines()
            if said and not found.error:
                # Docker's own words teach best ("The swarm does not have a leader").
                found.error = f"{name}: {plain(said[0])}"
        return found
