"""firewall-blocks-join: the manager's firewall turns away 2377/tcp, and a join fails.

Where firewalld runs (or is installed) the break uses it: started if it was stopped, 2377
taken out of its runtime configuration. Where it cannot run (nodes as containers) its
iptables equivalent goes into the manager's own network namespace, over SSH on the node,
never on the controller: a REJECT with icmp-host-prohibited, which is firewalld's answer,
and for NEW connections only, as firewalld lets established ones through. So the managers'
Raft connections stay up and only the join meets the wall: "connect: no route to host".
"""

from __future__ import annotations

from typing import Any

from .. import swarm
from ..context import Lab
from ..doctor.text import Text
from ..prepare.firewall import SWARM_PORTS, firewalld_state
from ..prepare.selinux import mode as selinux_mode
from ..remote import Node
from .base import Explanation, Failure
from .show import Show
from .swarmops import drop_stale, join, joined, token, wait_for_leader

NO_ROUTE = "connect: no route to host"
RULE = ("INPUT -p tcp --dport 2377 -m conntrack --ctstate NEW"
        " -j REJECT --reject-with icmp-host-prohibited")
PORTS = ("2377/tcp",)  # what the break closes in firewalld


class FirewallBlocksJoin(Failure):
    name = "firewall-blocks-join"
    title = "A firewall on the manager blocks the join"
    teaches = (
        "A swarm needs 2377/tcp to the managers and 7946/tcp+udp, 4789/udp between all nodes;"
        " firewalld rejects what it was not told to open, and Docker reports it as 'no route"
        " to host'. Open the ports rather than switch the firewall off."
    )
    explanation = Explanation(
        cause=Text(
            "firewalld on the manager rejects every port it was not told to open, answering"
            " with icmp-host-prohibited; the joining node's dockerd reports that as \"dial tcp"
            " MANAGER:2377: connect: no route to host\" although the route is fine. Swarm needs"
            " 2377/tcp (cluster management) to the managers, 7946/tcp+udp (gossip) and"
            " 4789/udp (overlay data) between all nodes.",
            "管理节点上的 firewalld 会拒绝所有未放行的端口，并回应 icmp-host-prohibited；加入方的"
            " dockerd 因此报 \"dial tcp MANAGER:2377: connect: no route to host\"，尽管路由本身没有"
            "问题。swarm 需要管理节点开放 2377/tcp（集群管理），所有节点之间开放 7946/tcp+udp"
            "（gossip）和 4789/udp（overlay 数据）。",
        ),
        fix=Text(
            "Seed's way: `systemctl disable --now firewalld` and SELinux permissive (`setenforce"
            " 0`, SELINUX=permissive in /etc/selinux/config) on every node: it works, and leaves"
            " the nodes unprotected. Better: keep the firewall and open the swarm's ports:"
            " `firewall-cmd --permanent --add-port=2377/tcp --add-port=7946/tcp"
            " --add-port=7946/udp --add-port=4789/udp && firewall-cmd --reload`. Then join again.",
            "原方案：在所有节点执行 `systemctl disable --now firewalld` 并将 SELinux 设为 permissiv"
            "e"
            "（`setenforce 0`，/etc/selinux/config 中 SELINUX=permissive）：可行，但节点失去防护。"
            "更好的做法：保留防火墙，只放行 swarm 端口：`firewall-cmd --permanent"
            " --add-port=2377/tcp --add-port=7946/tcp --add-port=7946/udp --add-port=4789/udp &&"
            " firewall-cmd --reload`。然后重新加入。",
        ),
    )

    def refusal(self, lab: Lab) -> str | None:
        if not lab.spec.workers:
            return f"needs a worker to join; lab {lab.spec.name} has none"
        return None

    def _pair(self, lab: Lab, record: dict[str, Any]) -> tuple[Node, Node]:
        return (lab.node(record.get("manager", lab.spec.first_manager.name)),
                lab.node(record.get("worker", lab.spec.workers[0].name)))

    def do_break(self, lab: Lab, show: Show) -> None:
        manager, worker = self._pair(lab, {})
        firewalld = firewalld_state(manager)
        self.note(lab, manager=manager.name, worker=worker.name,
                  mode="iptables" if firewalld == "absent" else "firewalld")
        secret = token(wait_for_leader(lab), "worker")  # while the managers still answer
        show.say(f"{worker.name} leaves the swarm, to join again through a firewall.")
        show.run(worker, "docker swarm leave", timeout=120)
        if firewalld == "absent":
            show.say(f"{manager.name} has no firewalld; its iptables equivalent, in the node's own"
                     " network namespace: reject new connections to 2377 as firewalld does.")
            # On top of the chain, even above the ACCEPTs an earlier safe fix left: an old
            # copy further down would be shadowed by them.
            manager.run(f"while iptables -C {RULE} 2>/dev/null; do iptables -D {RULE}; done",
                        timeout=30)
            show.run(manager, f"iptables -I {RULE}", timeout=30)
        else:
            if firewalld != "running":
                show.run(manager, "systemctl start firewalld", timeout=60)
            for port in PORTS:
                if manager.run(f"firewall-cmd --query-port={port}", timeout=30).ok:
                    show.run(manager, f"firewall-cmd --remove-port={port}", timeout=30)
            if manager.run("firewall-cmd --query-service=docker-swarm", timeout=30).ok:
                show.run(manager, "firewall-cmd --remove-service=docker-swarm", timeout=30)
        result = join(lab, show, worker, manager, "worker", secret, timeout=90)
        show.expect(result, NO_ROUTE, "Docker's error: connect: no route to host")

    def do_fix(self, lab: Lab, show: Show, way: str, record: dict[str, Any]) -> None:
        manager, worker = self._pair(lab, record)
        # The recorded manager, and any node holding the rule (a break interrupted elsewhere).
        walled = {manager.name: manager}
        walled.update({n.name: n for n in lab.nodes()
                       if n.run(f"iptables -C {RULE}", timeout=30).ok})
        for node in walled.values():
            if way == "seed":
                self._seed(show, node)
            else:
                self._safe(show, node)
        leader = wait_for_leader(lab)
        state = swarm.info(worker).state
        if state not in ("inactive", "active"):
            show.run(worker, "docker swarm leave --force", timeout=120)
        drop_stale(lab, show, leader, force=False)
        if swarm.info(worker).state == "inactive":
            result = join(lab, show, worker, manager, "worker", token(leader, "worker"))
            joined(lab, show, worker, result, f"{worker.name} joined as a worker")

    def _seed(self, show: Show, node: Node) -> None:
        show.say(f"The seed's way on {node.name}: the firewall off, SELinux permissive.")
        if firewalld_state(node) == "absent":
            while node.run(f"iptables -C {RULE}", timeout=30).ok:
                show.run(node, f"iptables -D {RULE}", timeout=30)
        else:
            show.run(node, "systemctl disable --now firewalld", timeout=60)
        current = selinux_mode(node)
        if current == "Enforcing":
            show.run(node, "setenforce 0", timeout=30)
            show.run(node, "sed -i 's/^SELINUX=enforcing/SELINUX=permissive/'"
                           " /etc/selinux/config", timeout=30)
        else:
            show.say(f"SELinux on {node.name}: {current}; nothing to set.")

    def _safe(self, show: Show, node: Node) -> None:
        show.say(f"The better way on {node.name}: keep the firewall, open the swarm's ports.")
        if firewalld_state(node) == "absent":
            for item in reversed(SWARM_PORTS):
                number, _, proto = item.partition("/")
                accept = f"INPUT -p {proto} --dport {number} -j ACCEPT"
                if not node.run(f"iptables -C {accept}", timeout=30).ok:
                    show.run(node, f"iptables -I {accept}", timeout=30)
            show.run(node, "iptables -S INPUT", timeout=30)
            return
        if firewalld_state(node) != "running":
            show.run(node, "systemctl start firewalld", timeout=60)
        adds = " ".join(f"--add-port={port}" for port in SWARM_PORTS)
        show.run(node, f"firewall-cmd --permanent {adds} && firewall-cmd --reload", timeout=60)
