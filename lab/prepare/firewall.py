"""The firewall: firewalld disabled (the seed's way) or the swarm ports opened (the safer way)."""

from __future__ import annotations

from ..remote import Node
from .result import Change

# 2377/tcp cluster management (managers), 7946/tcp+udp gossip, 4789/udp VXLAN data path.
SWARM_PORTS = ("2377/tcp", "7946/tcp", "7946/udp", "4789/udp")


def firewalld_state(node: Node) -> str:
    """'absent', 'running' or 'not running'."""
    if not node.run("command -v firewall-cmd", timeout=30).ok:
        return "absent"
    state = node.run("firewall-cmd --state", timeout=30).output
    return "running" if state == "running" else "not running"


def converge(node: Node, policy: str) -> Change:
    state = firewalld_state(node)
    if state == "absent":
        return Change("firewall", "absent", "no firewalld", {"firewalld": state})
    if policy == "disable":
        if state == "running" or node.run("systemctl is-enabled --quiet firewalld", timeout=30).ok:
            node.run("systemctl disable --now firewalld", timeout=60, check=True)
            return Change("firewall", "changed", "firewalld stopped and disabled",
                          {"firewalld": "not running"})
        return Change("firewall", "ok", "firewalld disabled", {"firewalld": state})
    if state != "running":
        return Change("firewall", "ok", "firewalld not running; nothing blocks swarm ports",
                      {"firewalld": state})
    missing = [
        port for port in SWARM_PORTS
        if not node.run(f"firewall-cmd --permanent --query-port={port}", timeout=30).ok
    ]
    if not missing:
        return Change("firewall", "ok", "swarm ports open", {"firewalld": state})
    ports = " ".join(f"--add-port={port}" for port in missing)
    node.run(f"firewall-cmd --permanent {ports} && firewall-cmd --reload", timeout=60, check=True)
    return Change("firewall", "changed", "opened " + ", ".join(missing), {"firewalld": state})
