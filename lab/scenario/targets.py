"""Where a step runs: a node, a manager, every node, or inside a task wherever swarm put it.

A step's target becomes one or more Places: the node to SSH to, the prompt a teacher's
terminal would show, and the command exactly as it runs there. A command for a task runs
as `docker exec <container> sh -c '...'` on the task's node, and is shown that way, so a
student can type the same thing.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..errors import LabError
from ..remote import Node
from ..waits import wait_until
from .cluster import Cluster, Task
from .model import Target

# Tasks are often between states right after a scale or a restart: look again for a while.
FIND_TASK_SECONDS = 20


@dataclass(frozen=True)
class Place:
    node: Node
    prompt: str
    command: str


def resolve(cluster: Cluster, target: Target, command: str) -> list[Place]:
    lab = cluster.lab
    if target.kind == "node":
        return [Place(lab.node(target.name), target.name, command)]
    if target.kind == "manager":
        manager = cluster.manager()
        return [Place(manager, manager.name, command)]
    if target.kind == "every-node":
        return [Place(node, node.name, command) for node in lab.nodes()]
    if target.kind == "task":
        node, container = _task_container(cluster, target.name)
        return [Place(node, node.name, in_task(container, command))]
    node = _node_by_tasks(cluster, target)
    return [Place(node, node.name, command)]


def in_task(container: str, command: str) -> str:
    """`command` run inside a container; the container's name comes from `docker ps`, so it
    is quoted like any other value read from a node."""
    return f"docker exec {shlex.quote(container)} sh -c {shlex.quote(command)}"


def _running(cluster: Cluster, service: str) -> list[Task]:
    return [task for task in cluster.tasks(service) if task.running]


def _in_lab_order(cluster: Cluster, tasks: list[Task]) -> list[Task]:
    """Tasks on the lab's nodes, in the lab file's node order: the same pick every time."""
    order = [node.name for node in cluster.lab.spec.nodes]
    placed = [task for task in tasks if task.node in order]
    return sorted(placed, key=lambda task: (order.index(task.node), task.name))


def _task_container(cluster: Cluster, service: str) -> tuple[Node, str]:
    def first_container() -> tuple[Node, str] | None:
        for task in _in_lab_order(cluster, _running(cluster, service)):
            node = cluster.lab.node(task.node)
            container = cluster.container_of(node, task)
            if container:
                return node, container
        return None

    found = wait_until(first_container, timeout=FIND_TASK_SECONDS, interval=1,
                       what=f"a running task of service {service} to run in",
                       last_seen=lambda _: "none on the lab's nodes",
                       hint=f"see `docker service ps {service}`")
    assert found is not None  # wait_until returns only a value that is done
    return found


def _node_by_tasks(cluster: Cluster, target: Target) -> Node:
    """node-of: the first node (lab file order) running a task of the service;
    node-without: the first node with no task of it at all."""
    if target.kind == "node-of":
        placed = wait_until(lambda: _in_lab_order(cluster, _running(cluster, target.name)),
                            timeout=FIND_TASK_SECONDS, interval=1,
                            what=f"a node running a task of service {target.name} (for {target})",
                            last_seen=lambda _: "none")
        return cluster.lab.node(placed[0].node)
    # Any task the swarm wants running counts, even one still starting there.
    busy = {task.node for task in cluster.tasks(target.name)}
    free = [node.name for node in cluster.lab.spec.nodes if node.name not in busy]
    if not free:
        raise LabError(f"every node runs a task of {target.name}: none is left for {target}")
    return cluster.lab.node(free[0])
