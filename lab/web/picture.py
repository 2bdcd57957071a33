"""A swarm as a picture: what `docker node ls`, `service ls`, `service ps` and `network ls`
say on a manager, drawn as SVG by the server (no image library, no script on the page).

One box per node of the lab file (role, whether SSH reaches it, its swarm status), the tasks
running on it inside, the services with their replicas below, and the overlay networks as
bars. A node the swarm does not list (never joined, or left) is drawn dashed.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

SEPARATOR = "--swarmlab-picture--"
# One SSH command on one manager: four listings, JSON lines each, split by a marker line.
# `service ps` lists the running tasks only (the history of a replaced task is noise here).
COMMAND = (
    "docker node ls --format '{{json .}}'; echo " + SEPARATOR + ";"
    " docker service ls --format '{{json .}}'; echo " + SEPARATOR + ";"
    " ids=$(docker service ls -q); [ -z \"$ids\" ] || docker service ps $ids"
    " --filter desired-state=running --format '{{json .}}'; echo " + SEPARATOR + ";"
    " docker network ls --filter driver=overlay --format '{{json .}}'"
)


@dataclass
class NodeView:
    name: str
    role: str  # as the lab file says
    reachable: bool
    local_state: str  # the node's own word: active, inactive, pending, error...
    listed: bool = False  # in the manager's `docker node ls`
    status: str = ""  # Ready, Down
    availability: str = ""
    manager_status: str = ""  # Leader, Reachable, Unreachable, ""
    tasks: list[str] = field(default_factory=list)


@dataclass
class SwarmView:
    nodes: list[NodeView]
    services: list[dict[str, str]] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    seen_from: str = ""  # the manager that answered, "" when none did
    error: str = ""

    def summary(self) -> dict[str, Any]:
        """The few facts the instructor's board shows per student."""
        up = sum(node.reachable for node in self.nodes)
        ready = sum(node.listed and node.status == "Ready" for node in self.nodes)
        if not self.seen_from:
            swarm = "none"
        elif ready == len(self.nodes):
            swarm = "ok"
        else:
            swarm = "partial"
        return {"nodes_up": up, "nodes_total": len(self.nodes), "swarm": swarm,
                "ready": ready, "services": len(self.services), "error": self.error}


def _lines(text: str) -> list[dict[str, str]]:
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def parse(view: SwarmView, output: str, manager: str) -> SwarmView:
    """Fill `view` from COMMAND's output on `manager`."""
    parts = ([*output.split(SEPARATOR), "", "", "", ""])[:4]
    listed, services, tasks, networks = (_lines(part) for part in parts)
    by_host = {entry.get("Hostname", ""): entry for entry in listed}
    for node in view.nodes:
        entry = by_host.get(node.name)
        if entry is None:
            continue
        node.listed = True
        node.status = entry.get("Status", "")
        node.availability = entry.get("Availability", "")
        node.manager_status = entry.get("ManagerStatus", "")
    names = {node.name: node for node in view.nodes}
    for task in tasks:
        where = names.get(task.get("Node", ""))
        if where is not None:
            where.tasks.append(task.get("Name", "?"))
    view.services = [{"name": s.get("Name", "?"), "replicas": s.get("Replicas", ""),
                      "mode": s.get("Mode", ""), "ports": s.get("Ports", "")} for s in services]
    view.networks = sorted(n.get("Name", "?") for n in networks if n.get("Name") != "ingress") \
        + (["ingress"] if any(n.get("Name") == "ingress" for n in networks) else [])
    view.seen_from = manager
    return view


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


BOX_W, BOX_GAP, TOP = 190, 20, 10
LINE = 16


def svg(view: SwarmView) -> str:
    """The picture; every text is escaped (names come from the nodes, not from us)."""
    rows = max([len(node.tasks) for node in view.nodes] + [1])
    box_h = 70 + rows * LINE
    width = max(len(view.nodes) * (BOX_W + BOX_GAP) + BOX_GAP, 420)
    parts: list[str] = []
    for index, node in enumerate(view.nodes):
        x = BOX_GAP + index * (BOX_W + BOX_GAP)
        if not node.reachable:
            state, colour = f"down ({node.local_state})" if node.local_state else "down", \
                "#c62828"
        elif node.listed and node.status == "Ready":
            state, colour = node.manager_status or "Ready", "#2e7d32"
        elif node.listed:
            state, colour = node.status or "?", "#ef6c00"
        elif node.local_state in ("inactive", ""):
            state, colour = f"not in the swarm ({node.local_state or '?'})", "#757575"
        else:
            # Its own word (active, pending, error...): no manager answering lists it.
            state, colour = f"{node.local_state}; unlisted", "#757575"
        dash = "" if node.listed else ' stroke-dasharray="6 4"'
        parts.append(
            f'<g class="node" data-node="{_e(node.name)}" data-state="{_e(state)}">'
            f'<rect x="{x}" y="{TOP}" width="{BOX_W}" height="{box_h}" rx="8" fill="#fafafa"'
            f' stroke="{colour}" stroke-width="2"{dash}/>'
            f'<text x="{x + 10}" y="{TOP + 22}" font-weight="bold">{_e(node.name)}</text>'
            f'<text x="{x + 10}" y="{TOP + 40}" font-size="12">{_e(node.role)}</text>'
            f'<text x="{x + 10}" y="{TOP + 56}" font-size="12" fill="{colour}">{_e(state)}'
            "</text>")
        for row, task in enumerate(node.tasks):
            parts.append(f'<text class="task" x="{x + 14}" y="{TOP + 76 + row * LINE}"'
                         f' font-size="12" font-family="monospace">▪ {_e(task)}</text>')
        parts.append("</g>")
    y = TOP + box_h + 28
    if view.services:
        parts.append(f'<text x="{BOX_GAP}" y="{y}" font-weight="bold">services</text>')
        for service in view.services:
            y += LINE + 2
            words = f"{service['name']}  {service['replicas']} {service['mode']}"
            if service["ports"]:
                words += f"  {service['ports']}"
            parts.append(f'<text class="service" x="{BOX_GAP + 10}" y="{y}" font-size="13"'
                         f' data-service="{_e(service["name"])}">{_e(words)}</text>')
        y += 24
    if view.networks:
        parts.append(f'<text x="{BOX_GAP}" y="{y}" font-weight="bold">overlay networks</text>')
        for network in view.networks:
            y += 24
            parts.append(f'<rect x="{BOX_GAP}" y="{y - 15}" width="{width - 2 * BOX_GAP}"'
                         ' height="20" rx="4" fill="#e3f2fd" stroke="#1565c0"/>'
                         f'<text class="network" x="{BOX_GAP + 8}" y="{y}" font-size="12">'
                         f"{_e(network)}</text>")
        y += 12
    if not view.seen_from:
        y += LINE
        why = view.error or "no manager answers `docker node ls`: no swarm yet"
        # Cut to the picture's width; the whole sentence is the text's tooltip.
        room = (width - 2 * BOX_GAP) // 7
        shown = why if len(why) <= room else why[: room - 1] + "…"
        parts.append(f'<text class="error" x="{BOX_GAP}" y="{y}" font-size="12" fill="#555">'
                     f"<title>{_e(why)}</title>{_e(shown)}</text>")
    height = y + 12
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="swarm" width="{width}"'
            f' height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">'
            + "".join(parts) + "</svg>")
