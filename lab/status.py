"""What the lab looks like now: the provider's view and each node's, as a table or JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import swarm
from .context import Lab
from .errors import LabError
from .prepare.timesync import measure_skew
from .remote import Node, run_parallel

NODE_PROBE = (
    ". /etc/os-release 2>/dev/null; echo \"os=${PRETTY_NAME:-unknown}\";"
    " echo \"docker=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo none)\";"
    " echo \"swarm=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null"
    " || echo unknown)\""
)


@dataclass
class NodeStatus:
    name: str
    role: str
    address: str
    power: str
    reachable: bool
    os: str = ""
    docker: str = ""
    swarm_state: str = ""
    swarm_status: str = ""  # Ready/Down as the lab's leader sees it
    swarm_role: str = ""
    ready: bool = False
    clock_skew: float | None = None  # node clock minus controller clock, seconds
    ssh: str = ""
    error: str = ""


LEADER_WAIT_SECONDS = 15


def collect(lab: Lab) -> dict[str, Any]:
    machines = {m.name: m for m in lab.provider.status()}
    rows: dict[str, NodeStatus] = {}
    reachable: list[Node] = []
    for spec_node in lab.spec.nodes:
        machine = machines.get(spec_node.name)
        rows[spec_node.name] = NodeStatus(
            name=spec_node.name,
            role=spec_node.role,
            address=lab.provider.advertise_address(spec_node),
            power=machine.power if machine else "absent",
            reachable=False,
            ssh=f"invoke lab.ssh {spec_node.name}",
        )
        if machine and machine.running and spec_node.name in lab.state.machines:
            reachable.append(lab.node(spec_node.name))

    # Emulated CPUs (time_scale) answer a busy moment's probe minutes late, not seconds.
    scale = lab.provider.time_scale

    def probe(node: Node) -> dict[str, str]:
        result = node.run(NODE_PROBE, timeout=30 * scale, shown="status probe")
        found = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        found["skew"] = str(measure_skew(node))
        return found

    outcomes = run_parallel(reachable, probe, parallel=lab.spec.ssh.parallel, deadline=60 * scale)
    for name, outcome in outcomes.items():
        row = rows[name]
        if outcome.ok:
            row.reachable = True
            row.os = outcome.value.get("os", "")
            row.docker = outcome.value.get("docker", "")
            row.swarm_state = outcome.value.get("swarm", "")
            row.clock_skew = round(float(outcome.value["skew"]), 3)
        else:
            row.error = outcome.error or ""
    leader = None
    for name in (n.name for n in lab.spec.managers):
        if rows[name].reachable and rows[name].swarm_state == "active":
            try:
                if swarm.info(lab.node(name)).control:
                    leader = lab.node(name)
                    break
            except Exception:
                continue
    current: list[swarm.SwarmMember] = []
    if leader is not None:
        try:
            # Two managers on busy emulated CPUs can be between leaders for a moment (seen
            # right after lab.reset): that is given a while before it reads as "no leader".
            current = swarm.members(leader, wait_for_leader=LEADER_WAIT_SECONDS * scale)
        except LabError:  # a manager that lost its quorum between the two questions
            leader = None
    for member in current:
        row = rows.get(member.hostname)
        if row is None or (row.swarm_status == "Ready" and member.status != "Ready"):
            continue
        row.swarm_status = member.status
        row.swarm_role = member.role
        row.ready = member.status == "Ready"
    skews = [row.clock_skew for row in rows.values() if row.clock_skew is not None]
    return {
        "lab": lab.spec.name,
        "clock_spread_seconds": round(max(skews) - min(skews), 3) if skews else None,
        "provider": lab.spec.provider,
        "leader": leader.name if leader else None,
        "nodes": [asdict(row) for row in rows.values()],
        "broken": sorted(lab.state.broken),
        "steps": {k: {"ok": v.get("ok"), "at": v.get("at")}
                  for k, v in lab.state.data["steps"].items()},
    }


def table(status: dict[str, Any]) -> str:
    headers = ["node", "role", "address", "power", "os", "docker", "swarm", "reach with"]
    rows = []
    for node in status["nodes"]:
        if node["ready"]:
            swarm_word = f"Ready {node['swarm_role']}"
        elif node["swarm_status"]:
            swarm_word = node["swarm_status"]
        else:
            swarm_word = node["swarm_state"] or ("-" if not node["reachable"] else "inactive")
        rows.append([
            node["name"], node["role"], node["address"], node["power"], node["os"] or "-",
            node["docker"] or "-", swarm_word, node["ssh"],
        ])
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    footer = f"lab {status['lab']} ({status['provider']})"
    if status.get("broken"):
        footer += "; broken on purpose: " + ", ".join(status["broken"])
    return "\n".join([*lines, footer])
