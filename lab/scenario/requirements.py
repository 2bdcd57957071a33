"""What the lab must be before step 1: its nodes, a swarm of N Ready nodes, images in place.

Checked in order from the cheapest (the lab file alone) to the dearest (every node over
SSH); the first one unmet stops the check with one line naming it and the command that
gets the lab there.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from ..context import Lab
from ..errors import LabError
from ..remote import Node, run_parallel
from ..waits import wait_until
from .cluster import Cluster
from .errors import LabNotReady
from .model import Scenario
from .results import PASSED, CheckResult

# Seconds (times the provider's time scale) a swarm with a node briefly Down gets to recover.
READY_WAIT_SECONDS = 30


def check(
    scenario: Scenario, lab: Lab, cluster: Cluster, fix: str, report: Callable[[CheckResult], None]
) -> None:
    """Report each requirement as it is met; raise LabNotReady at the first unmet one."""
    where = str(scenario.requires.where)
    spec = lab.spec

    def met(label: str, detail: str = "") -> None:
        report(CheckResult(label, PASSED, detail, where=where))

    unknown_nodes = sorted(scenario.nodes_named() - {n.name for n in spec.nodes})
    if unknown_nodes:
        raise LabNotReady(
            f"the scenario runs steps on {', '.join(unknown_nodes)}, which lab {spec.name!r}"
            f" does not have (nodes: {', '.join(n.name for n in spec.nodes)}); use a lab file"
            " with those nodes"
        )
    unknown_images = [key for key in scenario.image_keys if key not in spec.images]
    if unknown_images:
        raise LabNotReady(
            f"the lab file has no images.{unknown_images[0]} (it has: "
            f"{', '.join(sorted(spec.images)) or 'none'}); add it under `images:`"
        )
    if not lab.state.machines:
        raise LabNotReady(f"lab {spec.name!r} has no machines; run `{fix}`")

    wanted = scenario.requires.swarm_nodes
    if wanted:
        try:
            # A node busy enough to miss its heartbeats (emulated CPUs after a scenario) is
            # Down for a moment, then Ready again: it gets a while before the run gives up.
            # More nodes than the lab has never come: no wait. At the bound the last answer
            # comes back and the line below says what it lacks.
            ready = wait_until(
                cluster.ready_nodes, timeout=READY_WAIT_SECONDS * lab.provider.time_scale,
                interval=5, what=f"{wanted} Ready nodes",
                done=lambda nodes: not len(nodes) < wanted <= len(lab.spec.nodes), error=None)
        except LabError as exc:
            raise LabNotReady(f"a swarm is needed, but {exc}; run `{fix}`") from None
        if len(ready) < wanted:
            raise LabNotReady(
                f"a swarm with {wanted} Ready nodes is needed, it has {len(ready)}"
                f" ({', '.join(ready) or 'none'}); run `{fix}`"
            )
        met(f"a swarm with {wanted} Ready nodes", f"Ready: {', '.join(ready)}")

    images = [spec.images[key] for key in scenario.requires.images]
    if images:
        missing = _missing_images(lab, images, fix)
        if missing:
            node, names = next(iter(missing.items()))
            raise LabNotReady(
                f"image {names} missing on {node}"
                + (f" (and on {len(missing) - 1} more node(s))" if len(missing) > 1 else "")
                + f"; run `{fix}`, which loads the lab's images onto every node"
            )
        met(f"images {', '.join(images)} on every node")


def _missing_images(lab: Lab, images: list[str], fix: str) -> dict[str, str]:
    """node -> the images it lacks."""
    command = " ".join(
        f"docker image inspect --format . {shlex.quote(image)} >/dev/null 2>&1"
        f" || echo {shlex.quote(image)};"
        for image in images
    )

    def look(node: Node) -> str:
        return node.run(command, timeout=60).stdout.strip()

    outcomes = run_parallel(lab.nodes(), look, parallel=lab.spec.ssh.parallel, deadline=120)
    missing = {}
    for name, outcome in outcomes.items():
        if not outcome.ok:
            raise LabNotReady(f"{outcome.error}; run `{fix}`")
        if outcome.value:
            missing[name] = ", ".join(outcome.value.split())
    return missing
