"""already-in-swarm: a node joined twice, and a manager that leaves with --force.

The seed's students ran `docker swarm join` on a manager that was already in: Docker says
"This node is already part of a swarm" and points at `docker swarm leave`; on one of two
managers that gives the Raft quorum warning, which points at --force; and `leave --force`
takes the swarm's quorum with it. That last state is the break: a swarm with no leader and
a manager outside it, as a class would leave it.
"""

from __future__ import annotations

import shlex
from typing import Any

from .. import swarm
from ..context import Lab
from ..doctor.text import Text
from ..remote import Node
from ..waits import wait_until
from .base import Explanation, Failure
from .show import Show
from .swarmops import drop_stale, join, joined, restore_quorum, token, wait_for_leader

ALREADY = "This node is already part of a swarm"
QUORUM_WARNING = "Without a Raft quorum your swarm will be inaccessible"
LEFT = "Node left the swarm"
NO_LEADER = "The swarm does not have a leader"
LEADERLESS_WAIT = 60


class AlreadyInSwarm(Failure):
    name = "already-in-swarm"
    title = "A node joined twice, and a manager that leaves with --force"
    teaches = (
        "Docker refuses a second join; `docker swarm leave` on one of two managers warns that"
        " the swarm loses its Raft quorum; --force does it anyway. Out of a swarm and back in:"
        " demote, leave, node rm, join."
    )
    explanation = Explanation(
        cause=Text(
            "The node was already in the swarm, so `docker swarm join` failed with \"This node"
            " is already part of a swarm\". Following the message, `docker swarm leave` on a"
            " manager warns that Raft loses its quorum (1 manager out of 2 left); `--force`"
            " leaves anyway, and the remaining manager cannot lead alone: \"The swarm does not"
            " have a leader\". Nothing in the swarm can change until the quorum is back.",
            "该节点本来就在 swarm 中，所以 `docker swarm join` 报错 \"This node is already part of"
            " a swarm\"。按提示在管理节点执行 `docker swarm leave`，Docker 警告 Raft 将失去法定人数"
            "（2 个管理节点只剩 1 个）；加上 `--force` 强行离开后，剩下的管理节点无法单独成为 leade"
            "r："
            "\"The swarm does not have a leader\"。在法定人数恢复之前，swarm 无法做任何变更。",
        ),
        fix=Text(
            "Seed's way: `docker swarm leave -f` on the node and join again; with two managers"
            " the quorum is gone by then, so the remaining manager first needs `docker swarm"
            " init --force-new-cluster --advertise-addr ADDR`, and the old entry `docker node rm"
            " --force`. Safe way, which keeps the quorum: on a manager `docker node demote NODE`,"
            " on the node `docker swarm leave`, on a manager `docker node rm NODE`, then join it"
            " again with the manager token. A node already in the swarm needs no join at all:"
            " check with `docker info` or `docker node ls` first.",
            "原方案：在该节点执行 `docker swarm leave -f` 后重新加入；但两个管理节点时法定人数已丢"
            "失，"
            "必须先在剩下的管理节点执行 `docker swarm init --force-new-cluster --advertise-addr"
            " ADDR`，并 `docker node rm --force` 旧记录。安全方案（全程保持法定人数）：在管理节点"
            " `docker node demote NODE`，在该节点 `docker swarm leave`，在管理节点"
            " `docker node rm NODE`，再用管理节点令牌重新加入。已经在 swarm 中的节点根本不需要再次"
            "加入：先用 `docker info` 或 `docker node ls` 确认。",
        ),
    )

    def refusal(self, lab: Lab) -> str | None:
        if len(lab.spec.managers) != 2:
            return (f"needs exactly two managers (the seed's manager1 and manager2), for the"
                    f" quorum warning to appear; lab {lab.spec.name} has"
                    f" {len(lab.spec.managers)}")
        return None

    def _pair(self, lab: Lab, record: dict[str, Any]) -> tuple[Node, Node]:
        first, second = lab.spec.managers
        return (lab.node(record.get("survivor", first.name)),
                lab.node(record.get("node", second.name)))

    def do_break(self, lab: Lab, show: Show) -> None:
        survivor, node = self._pair(lab, {})
        self.note(lab, node=node.name, survivor=survivor.name)
        leader = wait_for_leader(lab)
        show.say(f"{node.name} is already a manager of the lab's swarm. Join it again, as the"
                 " seed's students did:")
        result = join(lab, show, node, survivor, "manager", token(leader, "manager"))
        show.expect(result, ALREADY, "Docker refuses: the node is already part of a swarm")
        show.say('Docker says to use "docker swarm leave". On one of two managers:')
        result = show.run(node, "docker swarm leave")
        show.expect(result, QUORUM_WARNING, "Docker warns: the swarm would lose its Raft quorum")
        show.say("The warning says --force suppresses it; the seed's fix starts with exactly that:")
        result = show.run(node, "docker swarm leave --force")
        show.expect(result, LEFT, f"{node.name} left the swarm")
        show.say(f"{survivor.name} is now 1 of 2 Raft members, not a majority; in about half a"
                 " minute it stops leading:")
        # Asked again quietly until the election gives up; shown once, as it ends.
        show.prompt(survivor, "docker node ls")
        quiet = wait_until(
            lambda: survivor.run("docker node ls", timeout=60), timeout=LEADERLESS_WAIT,
            interval=2, what=f"{survivor.name} to lose its leader",
            done=lambda result: NO_LEADER in result.output, error=None,
        )
        show.output(quiet)
        show.expect(quiet, NO_LEADER, "the swarm has no leader")

    def do_fix(self, lab: Lab, show: Show, way: str, record: dict[str, Any]) -> None:
        survivor, node = self._pair(lab, record)
        if way == "seed":
            self._seed(lab, show, survivor, node)
        else:
            self._safe(lab, show, survivor, node)

    def _seed(self, lab: Lab, show: Show, survivor: Node, node: Node) -> None:
        show.say("The seed's fix: leave with --force, then join again.")
        if swarm.info(node).state != "inactive":
            show.run(node, "docker swarm leave --force")
        leader = restore_quorum(lab, show, survivor)
        show.say(f"{node.name}'s old entry stays behind as a manager that never answers;"
                 " remove it, then join.")
        drop_stale(lab, show, leader, force=True)
        self._rejoin(lab, show, node, leader)

    def _safe(self, lab: Lab, show: Show, survivor: Node, node: Node) -> None:
        show.say("The safe way keeps the quorum: demote, leave, node rm, join.")
        leader = restore_quorum(lab, show, survivor)
        state = swarm.info(node)
        if state.state == "active" and state.control:
            show.run(leader, f"docker node demote {shlex.quote(node.name)}")
        if state.state != "inactive":
            show.say(f"{node.name} is a worker now: it leaves without a quorum warning.")
            show.run(node, "docker swarm leave", timeout=120)
        drop_stale(lab, show, leader, force=False)
        self._rejoin(lab, show, node, leader)

    def _rejoin(self, lab: Lab, show: Show, node: Node, leader: Node) -> None:
        result = join(lab, show, node, leader, "manager", token(leader, "manager"))
        joined(lab, show, node, result, f"{node.name} joined as a manager")
