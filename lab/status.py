"""What the lab looks like now: the provider's view and each node's, as a table or JSON,
with every difference from what the lab file describes.

Looking never changes the lab: systemd is asked whether dockerd runs before any `docker`
command, because the CLI's connection wakes docker.socket, which starts a stopped dockerd
and hides the very fault a user came to look at.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from . import swarm
from .context import Lab
from .errors import LabError
from .prepare.timesync import measure_skew
from .remote import Node, run_parallel

# `dockerd --version` reads the installed binary and wakes nothing: the version of a stopped
# dockerd still shows.
NODE_PROBE = (
    "if command -v systemctl >/dev/null 2>&1; then d=$(systemctl is-active docker.service);"
    " else d=no-systemd; fi; echo \"dockerd=${d:-unknown}\";"
    " . /etc/os-release 2>/dev/null; echo \"os=${PRETTY_NAME:-unknown}\";"
    " case \"$d\" in active|no-systemd)"
    " echo \"docker=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo none)\";"
    " echo \"swarm=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null"
    " || echo unknown)\";;"
    " *) v=$(dockerd --version 2>/dev/null | sed -n 's/^Docker version \\([^,]*\\).*/\\1/p');"
    " echo \"docker=${v:-none}\";; esac"
)


@dataclass
class NodeStatus:
    name: str
    role: str
    address: str
    power: str
    reachable: bool
    running: bool = False  # the provider says the machine runs (power words differ by provider)
    os: str = ""
    docker: str = ""
    dockerd: str = ""  # `systemctl is-active docker.service`
    swarm_state: str = ""
    swarm_status: str = ""  # Ready/Down as the lab's leader sees it
    swarm_role: str = ""
    ready: bool = False
    clock_skew: float | None = None  # node clock minus controller clock, seconds
    ssh: str = ""
    error: str = ""
    # How this node differs from the lab file (stopped, dockerd down, Down, wrong role...).
    differences: list[str] = field(default_factory=list)


LEADER_WAIT_SECONDS = 15


def collect(lab: Lab, reach: str = "invoke lab.ssh") -> dict[str, Any]:
    """`reach` is the command that opens a shell on a node of this same lab (with its -f
    FILE and --provider when they are not the defaults); the node's name follows it."""
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
            running=bool(machine and machine.running),
            reachable=False,
            ssh=f"{reach} {spec_node.name}",
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
            row.dockerd = outcome.value.get("dockerd", "")
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
    for row in rows.values():
        row.differences = _differences(row, listed=leader is not None)
    lab_wide = [] if leader is not None or not lab.spec.managers else [
        "no manager leads the swarm (no leader: `invoke lab.doctor` says why)"]
    skews = [row.clock_skew for row in rows.values() if row.clock_skew is not None]
    return {
        "lab": lab.spec.name,
        "clock_spread_seconds": round(max(skews) - min(skews), 3) if skews else None,
        "provider": lab.spec.provider,
        "leader": leader.name if leader else None,
        "nodes": [asdict(row) for row in rows.values()],
        "broken": sorted(lab.state.broken),
        "differences": lab_wide + [f"{row.name}: {difference}" for row in rows.values()
                                   for difference in row.differences],
        "steps": {k: {"ok": v.get("ok"), "at": v.get("at")}
                  for k, v in lab.state.data["steps"].items()},
    }


def _differences(row: NodeStatus, listed: bool) -> list[str]:
    """What differs from the lab file, most basic first; `listed`: a leader answered, so
    the swarm's own list of nodes is known."""
    if row.power == "absent":
        return ["no machine (`invoke lab.up` creates it)"]
    if not row.running:
        return [f"the machine is {row.power} (`invoke lab.up` starts it)"]
    if not row.reachable:
        return [f"cannot be reached: {row.error or 'no answer'}"]
    if row.dockerd not in ("active", "no-systemd"):
        down = f"; the managers list it {row.swarm_status}" if row.swarm_status else ""
        return [f"dockerd is not running (systemd: {row.dockerd or 'unknown'}){down}"
                f" (`systemctl start docker` on {row.name})"]
    if row.swarm_state != "active":
        return [f"in no swarm ({row.swarm_state or 'unknown'}; `invoke swarm.join` joins it)"]
    found = []
    if listed and not row.swarm_status:
        found.append("not in the lab's swarm: the leader does not list it")
    elif row.swarm_status and row.swarm_status != "Ready":
        found.append(f"the managers list it {row.swarm_status}")
    if row.swarm_role and row.swarm_role != row.role:
        verb = "promote" if row.role == "manager" else "demote"
        found.append(f"a {row.swarm_role} in the swarm; the lab file makes it a {row.role}"
                     f" (`docker node {verb} {row.name}` on a manager)")
    return found


def _skew(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}s"


def reach_command(lab_file: str | None, provider: str | None) -> str:
    """`invoke lab.ssh` as the user must type it to reach this very lab."""
    return " ".join(["invoke", *(["-f", shlex.quote(lab_file)] if lab_file else []), "lab.ssh",
                     *(["--provider", shlex.quote(provider)] if provider else [])])


def table(status: dict[str, Any]) -> str:
    headers = ["node", "role", "address", "power", "os", "docker", "swarm", "skew", "reach with"]
    rows = []
    for node in status["nodes"]:
        if not node["reachable"]:
            swarm_word = "-"
        elif node.get("dockerd", "active") not in ("active", "no-systemd"):
            swarm_word = "dockerd " + (node["dockerd"] or "down")
        elif node["ready"]:
            swarm_word = f"Ready {node['swarm_role']}"
        elif node["swarm_status"]:
            swarm_word = node["swarm_status"]
        else:
            swarm_word = node["swarm_state"] or "inactive"
        # "!" marks a node that differs from the lab file; the lines below say how.
        mark = "!" if node.get("differences") else ""
        rows.append([
            node["name"] + mark, node["role"], node["address"], node["power"], node["os"] or "-",
            node["docker"] or "-", swarm_word, _skew(node["clock_skew"]), node["ssh"],
        ])
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    footer = f"lab {status['lab']} ({status['provider']})"
    if status.get("broken"):
        footer += "; broken on purpose: " + ", ".join(status["broken"])
    lines.append(footer)
    differences = status.get("differences") or []
    if differences:
        lines.append(f"! differs from the lab file ({len(differences)}):")
        lines += [f"  {difference}" for difference in differences]
    return "\n".join(lines)
