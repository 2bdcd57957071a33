"""Read-only questions to the swarm a scenario runs on: the manager to ask, tasks, replicas.

Asked of one manager (the leader when it answers), chosen once per run so that every
`a manager` step shows the same prompt. Swarm reports nodes by hostname; a lab's hostnames
are its node names (the lab's swarm code relies on the same).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from .. import swarm
from ..context import Lab
from ..errors import LabError, NodeError
from ..remote import Node

REPLICAS_RE = re.compile(r"^(\d+)/(\d+)")


@dataclass(frozen=True)
class Task:
    id: str
    name: str  # the slot's name, e.g. whoami.2
    node: str  # the lab node (hostname) it was placed on
    running: bool  # its current state is Running (not Assigned, Preparing, Starting)


# Seconds a swarm between two leaders gets to elect one before a step counts it as broken.
LEADER_WAIT = 60
# Seconds a query may take at a real machine's speed; times the provider's time scale. A
# manager of emulated VMs on a loaded host answered `docker service ls` after more than 30 s,
# and the wait that asked failed the step although the swarm was fine.
QUERY_SECONDS = 30


class Cluster:
    def __init__(self, lab: Lab):
        self.lab = lab
        self._manager: Node | None = None

    def manager(self) -> Node:
        """A manager whose Raft works, the leader if it answers; the same one all run long."""
        if self._manager is not None:
            return self._manager
        found = swarm.find_leader(self.lab)
        if found is None:
            raise LabError("no manager of the lab answers with a working swarm")
        leaders = [m.hostname for m in swarm.members(found, wait_for_leader=LEADER_WAIT)
                   if m.manager_status == "Leader"]
        if leaders and leaders[0] != found.name and leaders[0] in self.lab.state.machines:
            leader = self.lab.node(leaders[0])
            try:
                if swarm.info(leader).control:
                    found = leader
            except LabError:
                pass  # the leader does not answer us: the manager we found will do
        self._manager = found
        return found

    @property
    def query_timeout(self) -> int:
        return int(QUERY_SECONDS * self.lab.provider.time_scale)

    def ask(self, command: str) -> str:
        """Run a query on the manager; a failure is a step fault, worded by the node."""
        return self.manager().run(command, timeout=self.query_timeout, check=True).stdout

    def tasks(self, service: str) -> list[Task]:
        """Tasks the swarm wants running (desired state running), with where they are."""
        fmt = "{{.ID}}\t{{.Name}}\t{{.Node}}\t{{.CurrentState}}"
        result = self.manager().run(
            f"docker service ps --no-trunc --filter desired-state=running"
            f" --format '{fmt}' {shlex.quote(service)}",
            timeout=self.query_timeout,
        )
        if not result.ok:
            if "no such service" in result.output.lower():
                return []
            raise NodeError(self.manager().name, f"docker service ps {service}: {result.output}")
        found = []
        for line in result.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) == 4:
                task_id, name, node, state = parts
                found.append(Task(task_id, name, node, state.startswith("Running")))
        return found

    def last_task_error(self, service: str) -> str:
        """The newest error among the service's tasks: why it does not converge."""
        result = self.manager().run(
            f"docker service ps --no-trunc --format '{{{{.Error}}}}' {shlex.quote(service)}",
            timeout=self.query_timeout,
        )
        errors = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        return errors[0] if result.ok and errors else ""

    def replicas(self, service: str) -> tuple[int, int] | None:
        """(running, desired) as `docker service ls` shows them, or None if no such service."""
        listing = self.ask(
            f"docker service ls --filter name={shlex.quote(service)}"
            " --format '{{.Name}}\t{{.Replicas}}'"
        )
        for line in listing.splitlines():
            name, _, replicas = line.partition("\t")
            found = REPLICAS_RE.match(replicas)
            if name == service and found:
                return int(found.group(1)), int(found.group(2))
        return None

    def ready_nodes(self) -> list[str]:
        members = swarm.members(self.manager(), wait_for_leader=LEADER_WAIT)
        return [m.hostname for m in members if m.status == "Ready"]

    def container_of(self, node: Node, task: Task) -> str:
        """The name of the container that runs `task` on `node` ('' if none is there yet)."""
        result = node.run(
            f"docker ps --filter {shlex.quote(f'label=com.docker.swarm.task.id={task.id}')}"
            " --format '{{.Names}}'",
            timeout=self.query_timeout,
            check=True,
        )
        names = result.stdout.split()
        return names[0] if names else ""
