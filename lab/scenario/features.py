"""Optional kernel features some checks need, probed on the lab's nodes before step 1.

IPVS carries swarm's service VIPs and the ingress routing mesh. dockerd loads the ip_vs
module itself (`modprobe -va ip_vs`) the first time it needs a load balancer, so on a fresh
VM the module may simply not be loaded yet: the probe loads it the same way before looking.
Once loaded (or built in), every network namespace has /proc/net/ip_vs. Where it stays
absent, dockerd logs "Could not get ipvs family information from the kernel" and VIPs and
the mesh do not answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..context import Lab
from ..errors import NodeError
from ..remote import Node, run_parallel
from .model import FEATURES

IPVS_PROBE = (
    "modprobe -q ip_vs 2>/dev/null; if test -e /proc/net/ip_vs; then echo present;"
    " else echo absent; fi"
)


@dataclass
class FeatureState:
    name: str
    available: bool
    absent_on: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def reason(self) -> str:
        return FEATURES[self.name]


def probe_ipvs(lab: Lab) -> FeatureState:
    """IPVS counts as available only if every node has it: mesh traffic crosses nodes."""

    def look(node: Node) -> str:
        return node.run(IPVS_PROBE, timeout=30, check=True).stdout.strip()

    outcomes = run_parallel(lab.nodes(), look, parallel=lab.spec.ssh.parallel, deadline=60)
    # A node the probe could not reach is a broken node (exit 1), not a kernel without IPVS
    # (exit 3, "could not run here"): the probe's own failure never reads as the feature's.
    broken = sorted(name for name, o in outcomes.items() if not o.ok)
    if broken:
        name = broken[0]
        said = (outcomes[name].error or "no answer").removeprefix(f"{name}: ")
        raise NodeError(name, f"the IPVS probe could not run: {said}")
    absent = [name for name, o in outcomes.items() if o.value != "present"]
    if not absent:
        return FeatureState("ipvs", True, detail="present on every node")
    detail = "no /proc/net/ip_vs after `modprobe ip_vs` on " + ", ".join(absent)
    return FeatureState("ipvs", False, absent, detail)


PROBES = {"ipvs": probe_ipvs}
