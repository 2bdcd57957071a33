"""Waiting for the swarm after a command: a service at N/N replicas, or a task replaced.

A replacement is proved by a task ID that was not running before the step's command, with
the service back at N/N: the count alone is no proof, because right after a container is
killed the swarm may not have noticed yet and still reports N/N. (Waiting for a command's
checks to pass, `for: success`, re-runs the command, so the runner does it.)
"""

from __future__ import annotations

import time

from ..waits import wait_until
from .cluster import Cluster
from .model import Wait
from .results import FAILED, PASSED, CheckResult

POLL_SECONDS = 0.5


class Waiter:
    def __init__(self, cluster: Cluster, wait: Wait):
        self.cluster = cluster
        self.wait = wait
        self.before_ids: set[str] = set()

    @property
    def label(self) -> str:
        if self.wait.kind == "replicas":
            return f"{self.wait.service} at N/N replicas"
        return f"a task of {self.wait.service} replaced"

    def before(self) -> None:
        """Called before the step's command: remember which tasks were running."""
        if self.wait.kind == "replacement":
            self.before_ids = {t.id for t in self.cluster.tasks(self.wait.service) if t.running}

    def finish(self) -> CheckResult:
        """Poll until the condition holds or the timeout passes."""
        start = time.monotonic()
        done, last = wait_until(self._look, timeout=self.wait.timeout, interval=POLL_SECONDS,
                                what=self.label, done=lambda seen: seen[0], error=None)
        if done:
            return CheckResult(self.label, PASSED, f"{last} after {time.monotonic() - start:.1f} s",
                               where=str(self.wait.where))
        error = self.cluster.last_task_error(self.wait.service)
        because = f"; the latest task error: {error}" if error else ""
        return CheckResult(
            self.label,
            FAILED,
            f"timed out after {self.wait.timeout} s (last seen: {last}){because}",
            where=str(self.wait.where),
        )

    def _look(self) -> tuple[bool, str]:
        service = self.wait.service
        counts = self.cluster.replicas(service)
        if counts is None:
            return False, f"no service {service}"
        running, desired = counts
        at = f"{running}/{desired}"
        converged = desired > 0 and running == desired
        if self.wait.kind == "replicas":
            return converged, at
        fresh = [
            t for t in self.cluster.tasks(service) if t.running and t.id not in self.before_ids
        ]
        if fresh and converged:
            return True, f"{fresh[0].name} running on {fresh[0].node}, {at}"
        return False, f"{at}, no new task yet"
