"""Running many vSphere tasks at once, with a bound, waited on together.

Each task is started by a callable (CloneVM_Task, PowerOnVM_Task...). Starters run in a
thread pool because vcsim runs a task to its end before answering the call that started it;
real vCenter answers at once, so the bound on tasks in flight is what limits the load there.
Completion is watched through one private property collector (WaitForUpdatesEx) rather than
task by task. Only info.state, info.error and info.result are read: pyVim's WaitForTask
reads the whole TaskInfo, whose `entity` is a Snapshot for RevertToSnapshot_Task and
RemoveSnapshot_Task on vcsim, which pyVmomi rejects with a TypeError.

Every wait is bounded by `timeout`: a starter whose call has not returned by then is left to
its thread (the session's socket timeout, connection.CONNECT_TIMEOUT, ends it) and reported,
instead of the pool's exit waiting for it.
"""

from __future__ import annotations

import contextlib
import http.client
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim, vmodl

from .connection import fault_text

PC = vmodl.query.PropertyCollector
TASK_PATHS = ["info.state", "info.error", "info.result"]
# WaitForUpdatesEx returns at the latest after this, so new tasks and the deadline are seen.
WAIT_SLICE_SECONDS = 1


@dataclass
class TaskOutcome:
    label: str
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_tasks(
    service: Any,
    starters: dict[str, Callable[[], Any]],
    *,
    bound: int,
    timeout: float,
    on_done: Callable[[TaskOutcome], None] | None = None,
) -> dict[str, TaskOutcome]:
    """Start every task (at most `bound` in flight) and wait for all; never raises a fault.

    A starter that raises a vSphere fault, a task that ends in error and a task still running
    at the deadline each give an outcome with `error` set to vSphere's own message.
    """
    content = service.RetrieveContent()
    pending = list(starters.items())
    outcomes: dict[str, TaskOutcome] = {}
    starting: dict[Future[Any], str] = {}
    watched: dict[str, tuple[str, Any]] = {}  # task moId -> (label, task)
    collector = content.propertyCollector.CreatePropertyCollector()
    filters: list[Any] = []
    deadline = time.monotonic() + timeout
    version = ""

    def finish(outcome: TaskOutcome) -> None:
        if outcome.label in outcomes:
            return
        outcomes[outcome.label] = outcome
        if on_done is not None:
            on_done(outcome)

    def settle(task_id: str, props: dict[str, Any]) -> None:
        label, _task = watched.get(task_id, (None, None))
        state = props.get("info.state")
        if label is None or state not in ("success", "error"):
            return
        del watched[task_id]
        if state == "success":
            finish(TaskOutcome(label, result=props.get("info.result")))
        else:
            error = props.get("info.error")
            # vCenter gives a LocalizedMethodFault; vcsim gives the fault itself.
            fault = error if isinstance(error, vmodl.MethodFault) else getattr(error, "fault", None)
            text = fault_text(fault) if fault is not None else "failed without a fault"
            finish(TaskOutcome(label, error=text))

    pool = ThreadPoolExecutor(max_workers=bound)
    try:
        while pending or starting or watched:
            while pending and len(starting) + len(watched) < bound:
                label, start = pending.pop(0)
                starting[pool.submit(start)] = label
            fresh: list[Any] = []
            for future in [f for f in starting if f.done()]:
                label = starting.pop(future)
                try:
                    task = future.result()
                except vmodl.MethodFault as exc:
                    finish(TaskOutcome(label, error=fault_text(exc)))
                    continue
                except (OSError, http.client.HTTPException) as exc:
                    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                    broke = f"the connection to vCenter broke: {reason}"
                    finish(TaskOutcome(label, error=broke))
                    continue
                filters.append(collector.CreateFilter(_task_filter(task), partialUpdates=False))
                watched[task._moId] = (label, task)
                fresh.append(task)
            if fresh:
                # A task that ended before its filter existed may never be reported
                # as an update (vcsim), so read the state of new tasks once directly.
                for item in _task_states(collector, fresh):
                    settle(item[0], item[1])
            if time.monotonic() > deadline:
                break
            if watched:
                options = PC.WaitOptions(maxWaitSeconds=WAIT_SLICE_SECONDS)
                update = collector.WaitForUpdatesEx(version, options)
                if update is not None:
                    version = update.version
                    for filter_set in update.filterSet or []:
                        for change in filter_set.objectSet or []:
                            props = {c.name: c.val for c in change.changeSet or []}
                            settle(change.obj._moId, _merged(collector, change.obj, props))
            elif starting:
                wait(list(starting), timeout=WAIT_SLICE_SECONDS, return_when=FIRST_COMPLETED)
    finally:
        # Not `with`: its exit would wait, without a bound, for a starter that hangs.
        pool.shutdown(wait=False, cancel_futures=True)
        _destroy(collector, filters)
    for label, _task in watched.values():
        finish(TaskOutcome(label, error=f"still running after {timeout:.0f} s"))
    for label in starting.values():
        finish(TaskOutcome(label, error=f"not started within {timeout:.0f} s: vCenter did not"
                                        " answer the call that starts it"))
    for label, _start in pending:
        finish(TaskOutcome(label, error=f"not started within {timeout:.0f} s"))
    return {label: outcomes[label] for label in starters}


def _task_filter(task: Any) -> Any:
    return PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=task, skip=False)],
        propSet=[PC.PropertySpec(type=vim.Task, pathSet=TASK_PATHS)],
    )


def _task_states(collector: Any, tasks: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=task, skip=False) for task in tasks],
        propSet=[PC.PropertySpec(type=vim.Task, pathSet=TASK_PATHS)],
    )
    result = collector.RetrievePropertiesEx([spec], PC.RetrieveOptions())
    return [
        (item.obj._moId, {p.name: p.val for p in item.propSet or []})
        for item in (result.objects if result else [])
    ]


def _merged(collector: Any, task: Any, props: dict[str, Any]) -> dict[str, Any]:
    """An update may carry only info.state: fetch error and result once the task ended."""
    if props.get("info.state") in ("success", "error") and not (
        "info.error" in props or "info.result" in props
    ):
        states = _task_states(collector, [task])
        if states:
            return {**states[0][1], **props}
    return props


def _destroy(collector: Any, filters: list[Any]) -> None:
    # Filters first: vcsim 0.24.2 panics destroying a collector that still has filters.
    # Whatever is left vanishes with the session anyway.
    with contextlib.suppress(vmodl.MethodFault, OSError, http.client.HTTPException):
        for created in filters:
            created.DestroyPropertyFilter()
        collector.DestroyPropertyCollector()
