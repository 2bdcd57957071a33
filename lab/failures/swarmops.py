"""Swarm moves the failures share, each shown as typed: join with a token nobody sees,
find a manager that leads, get the quorum back, drop entries of nodes that left."""

from __future__ import annotations

import shlex

from .. import swarm
from ..context import Lab
from ..doctor.checks import overlay
from ..doctor.finding import OK
from ..errors import LabError
from ..remote import CommandResult, Node
from ..waits import wait_until
from .show import Show

JOINED = "This node joined a swarm"


def token(leader: Node, role: str) -> str:
    return leader.run(f"docker swarm join-token -q {shlex.quote(role)}", timeout=60,
                      check=True, reveal=True).stdout.strip()


def listen_flags(address: str) -> str:
    """`--advertise-addr A --listen-addr A:2377`, each value quoted for the shell.

    shlex.quote leaves a plain address as it is, so the lesson shows what a teacher types."""
    return (f"--advertise-addr {shlex.quote(address)}"
            f" --listen-addr {shlex.quote(f'{address}:2377')}")


def join(lab: Lab, show: Show, node: Node, target: Node, role: str, secret: str,
         timeout: int = 120) -> CommandResult:
    """`docker swarm join` on node towards target's 2377, advertising node's lab address."""
    flags = listen_flags(lab.provider.advertise_address(node.spec))
    where = shlex.quote(f"{lab.provider.advertise_address(target.spec)}:2377")
    return show.run(node, f"docker swarm join --token {shlex.quote(secret)} {flags} {where}",
                    shown=f"docker swarm join --token <{role}-token> {flags} {where}",
                    timeout=timeout)


def joined(lab: Lab, show: Show, node: Node, result: CommandResult, label: str) -> bool:
    """Mark whether the join worked. A join Docker stopped waiting for (a busy machine) goes
    on in the background: then the node's own state says, and the lesson says so."""
    if swarm.JOIN_GOES_ON not in result.output:
        return show.expect(result, JOINED, label)
    show.say("Docker stopped waiting after 20 s; the join goes on in the background, and"
             " `docker info` on the node says when it is done.")
    state = swarm.wait_for_join(lab, node, result.command)
    show.passed(label, f"the node is {state.state} in the swarm")
    return True


def leading(lab: Lab) -> Node | None:
    """A manager whose `docker node ls` answers now (a manager without quorum does not)."""
    for node in lab.managers():
        try:
            if swarm.info(node).control:
                swarm.members(node)
                return node
        except LabError:
            continue
    return None


def wait_for_leader(lab: Lab, timeout: float = 90) -> Node:
    return wait_until(
        lambda: leading(lab), timeout=timeout, interval=2,
        what=f"a manager of lab {lab.spec.name} to lead a swarm",
        last_seen=lambda found: "no manager leads one",
        hint="run `invoke lab.doctor` to see why",
    )


def quorum_lost(lab: Lab, survivor: Node) -> bool:
    """True when fewer than half and one of the survivor's Raft members are managers now.

    Decided from the members' own states rather than by waiting for an election to fail,
    so it holds even in the seconds before the remaining manager notices.
    """
    state = swarm.info(survivor)
    if not state.control:
        return False
    raft = set(state.remote_managers)
    alive = set()
    for node in lab.managers():
        other = swarm.info(node)
        if other.control and other.cluster_id == state.cluster_id:
            alive.add(f"{other.node_addr}:2377")
    return len(raft & alive) * 2 <= len(raft)


def restore_quorum(lab: Lab, show: Show, survivor: Node) -> Node:
    """The leader, after forcing a new cluster from the survivor's state if Raft lost quorum."""
    if quorum_lost(lab, survivor):
        address = lab.provider.advertise_address(survivor.spec)
        show.say("Raft has lost its quorum: no safe step is left. Only a new cluster made from"
                 f" {survivor.name}'s own state brings the swarm back (services and nodes kept).")
        show.run(survivor, f"docker swarm init --force-new-cluster {listen_flags(address)}",
                 timeout=120)
    return wait_for_leader(lab)


def own_ids(lab: Lab) -> dict[str, str]:
    """Each lab node's own swarm ID ('' when it is in no swarm)."""
    found = {}
    for node in lab.nodes():
        state = swarm.info(node)
        found[node.name] = state.node_id if state.state == "active" else ""
    return found


def drop_stale(lab: Lab, show: Show, leader: Node, *, force: bool) -> None:
    """Remove entries of lab nodes that are not the node's own current ID.

    The safe way demotes a manager's entry first and waits for the node to be Down, as
    `docker node rm` without --force insists; the seed's way removes with --force.
    """
    ids = own_ids(lab)
    for member in swarm.members(leader):
        if member.hostname not in ids or member.id == ids[member.hostname]:
            continue
        # The ID is Docker's output, read back: quoted like any value put in a command.
        member_id = shlex.quote(member.id)
        if force:
            show.run(leader, f"docker node rm --force {member_id}")
            continue
        if member.manager_status:
            show.run(leader, f"docker node demote {member_id}")
        show.prompt(leader, f"docker node rm {member_id}")
        # Refused as "not down" until the managers notice the node left.
        removal = f"docker node rm {member_id}"
        quiet = wait_until(
            lambda removal=removal: leader.run(removal, timeout=60), timeout=60,
            interval=2, what=f"{member.hostname}'s old entry to be Down",
            done=lambda result: result.ok or "not down" not in result.output, error=None,
        )
        show.output(quiet)


def healthy(lab: Lab, timeout: float = 90) -> Node:
    """Wait until every node is in the swarm with its role, and no stale entry is left."""

    def look() -> tuple[Node | None, list[str]]:
        leader = leading(lab)
        if leader is None:
            return None, ["no manager leads a swarm"]
        ids = own_ids(lab)
        current = swarm.members(leader)
        problems = swarm.problems_of(lab, current)
        problems += [f"{name} is in no swarm" for name, own in ids.items() if not own]
        problems += [f"stale entry {m.id[:12]} for {m.hostname} ({m.status})"
                     for m in current if m.hostname in ids and m.id != ids[m.hostname]]
        return leader, problems

    leader, _ = wait_until(
        look, timeout=timeout, interval=2,
        what="every node in the swarm with its role and no stale entry",
        done=lambda found: not found[1], last_seen=lambda found: "; ".join(found[1]),
    )
    assert leader is not None  # no problem is left only when a manager leads
    return leader


def overlay_proven(lab: Lab, show: Show, attempts: int = 3) -> str:
    """How the overlay was proven across nodes (the doctor's own check), or LabError.

    Tried again when it fails: after a --force-new-cluster the other nodes' gossip takes up
    to a minute to find the new cluster, and until then their tasks cannot reach each other.
    """
    for attempt in range(1, attempts + 1):
        findings = overlay.prove(lab)
        failing = [f for f in findings if f.severity != OK]
        if not failing:
            return " ".join(f.saw("en") for f in findings)
        if attempt < attempts:
            show.say("overlay traffic between nodes not proven yet (" + failing[0].saw("en")
                     + "); gossip may still be finding the others: trying again")
    raise LabError("the overlay does not work end to end: " + failing[0].saw("en"))
