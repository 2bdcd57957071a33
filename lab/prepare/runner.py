"""Run every resource on every node, in parallel, and collect a result per node."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..context import Lab
from ..remote import Node, Outcome, run_parallel
from . import docker, facts, firewall, images, selinux, timesync
from .result import Change


@dataclass
class NodePreparation:
    node: str
    facts: facts.Facts | None = None
    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(change.status == "changed" for change in self.changes)

    def fact(self, key: str) -> object:
        for change in self.changes:
            if key in change.facts:
                return change.facts[key]
        return None


def prepare_nodes(
    lab: Lab, nodes: list[Node], log: Callable[[str], None] = print
) -> dict[str, Outcome]:
    spec = lab.spec
    timeout = spec.ssh.command_timeout
    wanted_images = images.bundle(list(spec.images.values()), lab.directory / "images")

    def prepare(node: Node) -> NodePreparation:
        result = NodePreparation(node.name)
        result.facts = facts.gather(node)
        node_facts = result.facts
        for command in lab.provider.node_setup_commands(node.spec):
            node.run(command, timeout=timeout, check=True)
        steps: list[Callable[[], Change]] = [
            lambda: docker.converge(node, node_facts, timeout),
            lambda: timesync.converge(node, node_facts, lab.provider.owns_clock, spec.time_sync,
                                      timeout),
            lambda: firewall.converge(node, spec.firewall),
            lambda: selinux.converge(node, spec.selinux),
            lambda: images.converge(node, wanted_images),
        ]
        for step in steps:
            start = time.monotonic()
            change = step()
            change.seconds = time.monotonic() - start
            result.changes.append(change)
            log(f"  {node.name:<12} {change.resource:<9} {change.status:<8}"
                f" {change.detail} ({change.seconds:.1f} s)")
        return result

    return run_parallel(nodes, prepare, parallel=spec.ssh.parallel, deadline=timeout * 2)
