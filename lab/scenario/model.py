"""A scenario as plain data: what the lab must be, the steps, their waits and checks.

Everything here has already been validated by the loader, and every piece remembers where
it came from (file and line) so that a fault at run time can still point into the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Optional kernel features a check may need; where absent the check is "unavailable".
FEATURES: dict[str, str] = {"ipvs": "no IPVS in this kernel"}


@dataclass(frozen=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        # Line 0: a step the runner made for the scenario (its cleanup by label).
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Target:
    """Where a step runs: `kind` node, manager, every-node, task, node-of or node-without;
    `name` is the node (kind node) or the service (task, node-of, node-without)."""

    kind: str
    name: str = ""

    def __str__(self) -> str:
        return {
            "node": self.name,
            "manager": "a manager",
            "every-node": "every node",
            "task": f"task:{self.name}",
            "node-of": f"node-of:{self.name}",
            "node-without": f"node-without:{self.name}",
        }[self.kind]


@dataclass(frozen=True)
class Check:
    """One expectation about a command's result; `kind` says which.

    exit: `code` is an int, "any" or "nonzero". match/no_match: `pattern` is a regular
    expression (multi-line). contains: `text` is words that must each appear. capture:
    `pattern`'s first group (every match with `all`) goes into variable `name`.
    distinct: `pattern`'s first group takes at least `minimum` different values.
    """

    kind: str
    where: Where
    code: int | str = 0
    pattern: str = ""
    text: str = ""
    name: str = ""
    all: bool = False
    minimum: int = 1
    label: str = ""
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Wait:
    """After the command, wait for `kind`: replicas (the service at N/N), replacement (a task
    of the service replaced) or success (the step's checks pass)."""

    kind: str
    where: Where
    timeout: int
    service: str = ""


@dataclass(frozen=True)
class Step:
    name: str
    where: Where
    target: Target
    run: str = ""
    say: str = ""
    timeout: int = 60
    wait: Wait | None = None
    checks: tuple[Check, ...] = ()
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Requirements:
    """What the lab must be before step 1."""

    where: Where
    swarm_nodes: int = 0  # at least this many Ready swarm nodes; 0: no swarm needed
    images: tuple[str, ...] = ()  # keys of the lab's `images` setting, on every node


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    title: str
    teaches: str
    requires: Requirements
    variables: dict[str, str] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()
    cleanup: tuple[Step, ...] = ()
    image_keys: tuple[str, ...] = ()  # every `{{images.KEY}}` the steps use

    def features(self) -> set[str]:
        """The optional features some check of this scenario needs."""
        found: set[str] = set()
        for step in self.steps + self.cleanup:
            found.update(step.needs)
            for check in step.checks:
                found.update(check.needs)
        return found

    def nodes_named(self) -> set[str]:
        return {
            step.target.name for step in self.steps + self.cleanup if step.target.kind == "node"
        }


def slowed(scenario: Scenario, factor: float) -> Scenario:
    """The scenario with every command and wait timeout multiplied by `factor`, for machines
    whose CPUs are emulated (a task that starts in 5 s on KVM takes a minute under TCG)."""
    if factor == 1:
        return scenario

    def slow(step: Step) -> Step:
        wait = step.wait and replace(step.wait, timeout=int(step.wait.timeout * factor))
        return replace(step, timeout=int(step.timeout * factor), wait=wait)

    return replace(scenario, steps=tuple(map(slow, scenario.steps)),
                   cleanup=tuple(map(slow, scenario.cleanup)))
