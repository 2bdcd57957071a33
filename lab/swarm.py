"""The swarm: init on the first manager, join the rest, check `docker node ls`.

All of it over SSH, the same for every provider. A node is always told to advertise its lab
address (never a NAT address such as VirtualBox's 10.0.2.15). Join tokens are read from the
leader, kept in memory and never shown: commands carrying them are displayed redacted.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .context import Lab
from .errors import LabError, NodeError
from .remote import Node, run_parallel

Log = Callable[[str], None]
ALREADY_IN_SWARM = "This node is already part of a swarm"
# `docker swarm join` stops waiting after 20 s but goes on joining in the background: on a busy
# machine (emulated CPUs, a loaded CI host) a join that is merely slow ends with these words
# and a non-zero exit. Whether it joined is then the node's own state to say.
JOIN_GOES_ON = "Timeout was reached before node joined"
JOIN_WAIT_SECONDS = 60  # times the provider's time scale


@dataclass
class SwarmInfo:
    node: str
    state: str  # inactive, pending, active, error, locked
    node_id: str = ""
    cluster_id: str = ""  # only managers know it
    control: bool = False  # a manager with a working Raft
    node_addr: str = ""
    remote_managers: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class SwarmMember:
    id: str
    hostname: str
    status: str  # Ready, Down, Unknown
    availability: str
    manager_status: str  # Leader, Reachable, Unreachable, "" for workers

    @property
    def role(self) -> str:
        return "manager" if self.manager_status else "worker"


def info(node: Node) -> SwarmInfo:
    result = node.run("docker info --format '{{json .Swarm}}'", timeout=60, check=True)
    data = json.loads(result.stdout or "{}")
    return SwarmInfo(
        node=node.name,
        state=data.get("LocalNodeState", "inactive") or "inactive",
        node_id=data.get("NodeID", ""),
        cluster_id=(data.get("Cluster") or {}).get("ID", ""),
        control=bool(data.get("ControlAvailable")),
        node_addr=data.get("NodeAddr", ""),
        remote_managers=[m.get("Addr", "") for m in data.get("RemoteManagers") or []],
        error=data.get("Error", ""),
    )


# A Raft election under load (two managers on emulated CPUs miss a heartbeat) takes seconds;
# a swarm that has really lost its quorum stays leaderless.
NO_LEADER = "does not have a leader"


def members(leader: Node, wait_for_leader: float = 0) -> list[SwarmMember]:
    """The swarm's nodes as a manager lists them; with `wait_for_leader`, a swarm that is
    between leaders is given that many seconds to elect one before it counts as an error."""
    deadline = time.monotonic() + wait_for_leader
    while True:
        result = leader.run("docker node ls --format '{{json .}}'", timeout=60)
        if result.ok or NO_LEADER not in result.output or time.monotonic() > deadline:
            break
        time.sleep(2)
    if not result.ok:
        last = result.output.splitlines()[-1] if result.output else "no output"
        raise NodeError(leader.name, f"`{result.command}` exited {result.exit_code}: {last}")
    found = []
    for line in result.stdout.splitlines():
        data = json.loads(line)
        found.append(SwarmMember(
            id=data["ID"],
            hostname=data["Hostname"],
            status=data["Status"],
            availability=data["Availability"],
            manager_status=data.get("ManagerStatus", ""),
        ))
    return found


def infos(lab: Lab, nodes: list[Node]) -> dict[str, SwarmInfo]:
    outcomes = run_parallel(nodes, info, parallel=lab.spec.ssh.parallel, deadline=120)
    found: dict[str, SwarmInfo] = {}
    for name, outcome in outcomes.items():
        if not outcome.ok:
            raise LabError(outcome.error or name)
        found[name] = outcome.value
    return found


def _listen(lab: Lab, node: Node) -> tuple[str, str]:
    address = lab.provider.advertise_address(node.spec)
    return address, f"--advertise-addr {address} --listen-addr {address}:2377"


def init(lab: Lab, node: Node, log: Log, force_new_cluster: bool = False) -> SwarmInfo:
    _, flags = _listen(lab, node)
    extra = " --force-new-cluster" if force_new_cluster else ""
    command = f"docker swarm init {flags}{extra}"
    log(f"  {node.name}$ {command}")
    node.run(command, timeout=120, check=True)
    return info(node)


def join(lab: Lab, node: Node, leader: Node, role: str, log: Log) -> None:
    token = leader.run(
        f"docker swarm join-token -q {role}", timeout=60, check=True, reveal=True
    ).stdout.strip()
    _, flags = _listen(lab, node)
    target = f"{lab.provider.advertise_address(leader.spec)}:2377"
    shown = f"docker swarm join --token <{role}-token> {flags} {target}"
    log(f"  {node.name}$ {shown}")
    result = node.run(
        f"docker swarm join --token {shlex.quote(token)} {flags} {target}",
        timeout=120, shown=shown,
    )
    if not result.ok and JOIN_GOES_ON in result.output:
        log(f"  {node.name}: Docker stopped waiting for the join, which goes on in the background;"
            " watching the node's swarm state")
        wait_for_join(lab, node, shown)
    elif not result.ok:
        raise NodeError(node.name, f"`{shown}` failed: {result.output}")


def wait_for_join(lab: Lab, node: Node, shown: str) -> SwarmInfo:
    """Wait for a join Docker went on with in the background to end: active, or an error."""
    timeout = JOIN_WAIT_SECONDS * lab.provider.time_scale
    deadline = time.monotonic() + timeout
    while True:
        state = info(node)
        if state.state == "active":
            return state
        if state.state != "pending" or time.monotonic() > deadline:
            why = f": {state.error}" if state.error else ""
            raise NodeError(node.name, f"`{shown}` went on in the background and the node is"
                            f" {state.state}{why} after {timeout:.0f} s")
        time.sleep(3)


def converge(lab: Lab, log: Log = print, force: bool = False) -> dict[str, str]:
    """Make the lab's swarm match the lab file; returns node -> what was done."""
    spec = lab.spec
    nodes = {node.name: node for node in lab.nodes()}
    states = infos(lab, list(nodes.values()))
    recorded = (lab.state.data["steps"].get("swarm") or {}).get("cluster_id", "")
    done: dict[str, str] = {}

    # Which swarm is the lab's: the one recorded, else the first manager's own.
    manager_names = [n.name for n in spec.managers]
    clusters = {states[m].cluster_id for m in manager_names if states[m].cluster_id}
    cluster = recorded if recorded in clusters else ""
    first = spec.first_manager.name
    if not cluster and states[first].cluster_id:
        cluster = states[first].cluster_id
    if not cluster:
        if states[first].state == "active":
            # The first manager is a worker of some swarm: not the lab's to take over.
            if not force:
                raise NodeError(first, _foreign(states[first]))
            nodes[first].run("docker swarm leave -f", timeout=120, check=True)
            done[first] = "left a foreign swarm"
        elif states[first].state in ("pending", "error", "locked"):
            nodes[first].run("docker swarm leave -f", timeout=120)
        states[first] = init(lab, nodes[first], log)
        cluster = states[first].cluster_id
        done[first] = "initialised"

    in_cluster = [m for m in manager_names if states[m].cluster_id == cluster]
    with_control = [m for m in in_cluster if states[m].control]
    if not with_control:
        # Raft lost its quorum (a manager vanished): rebuild it from a surviving manager.
        survivor = in_cluster[0]
        log(f"  {survivor}: the swarm has no quorum; forcing a new cluster from its state")
        states[survivor] = init(lab, nodes[survivor], log, force_new_cluster=True)
        cluster = states[survivor].cluster_id
        with_control = [survivor]
        done[survivor] = "forced a new cluster"
    leader = nodes[first] if first in with_control else nodes[with_control[0]]
    known_ids = {member.id for member in members(leader)}

    for node_spec in spec.nodes:
        node = nodes[node_spec.name]
        state = states[node.name]
        if node is leader or state.cluster_id == cluster or (
            state.state == "active" and state.node_id in known_ids
        ):
            done.setdefault(node.name, "ok")
            continue
        if state.state == "active":
            if not force:
                raise NodeError(node.name, _foreign(state))
            node.run("docker swarm leave -f", timeout=120, check=True)
            log(f"  {node.name}: left a foreign swarm (--force)")
        elif state.state != "inactive":
            # pending, error or locked: an earlier join that never completed.
            node.run("docker swarm leave -f", timeout=120)
        join(lab, node, leader, node_spec.role, log)
        done[node.name] = f"joined as {node_spec.role}"

    joined = [nodes[name] for name, what in done.items() if what.startswith("joined")]
    states.update(infos(lab, joined))
    _tidy(lab, leader, {name: state.node_id for name, state in states.items()}, log, done)
    verify(lab, leader)
    lab.state.record_step("swarm", spec.digest(), True, cluster_id=cluster)
    return done


def _foreign(state: SwarmInfo) -> str:
    return (
        f"is in another swarm (node {state.node_id[:12] or '?'}, managers"
        f" {', '.join(state.remote_managers) or 'unknown'}). Docker says: {ALREADY_IN_SWARM}."
        ' Use "docker swarm leave" to leave this swarm and join another one.'
        " Rerun with --force to make it leave and join the lab's swarm"
    )


def _tidy(
    lab: Lab, leader: Node, own_ids: dict[str, str], log: Log, done: dict[str, str]
) -> None:
    """Drop the entries of machines that were replaced, and set roles as the lab file says.

    A node's own ID is what its dockerd reports; any other entry under its hostname belongs
    to a machine that no longer exists (it may still look Ready for a few heartbeats).
    """
    roles = {n.name: n.role for n in lab.spec.nodes}
    for member in members(leader):
        own = own_ids.get(member.hostname)
        if member.hostname not in roles or not own or member.id == own:
            continue
        if member.manager_status:
            leader.run(f"docker node demote {member.id}", timeout=60)
        leader.run(f"docker node rm --force {member.id}", timeout=60, check=True)
        log(f"  {member.hostname}: removed the stale swarm entry {member.id[:12]}")
    for member in members(leader):
        wanted = roles.get(member.hostname)
        if wanted and member.status == "Ready" and member.role != wanted:
            verb = "promote" if wanted == "manager" else "demote"
            leader.run(f"docker node {verb} {member.id}", timeout=60, check=True)
            done[member.hostname] = f"{verb}d to {wanted}"


def verify(lab: Lab, leader: Node, seconds: float = 60) -> list[SwarmMember]:
    """Wait until every node of the lab file is a Ready member with the right role.

    `seconds` at a real machine's speed; emulated CPUs get it times the provider's time
    scale (a worker that just joined a loaded host's VM is Down until its first heartbeat)."""
    timeout = seconds * lab.provider.time_scale
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    while True:
        current = members(leader, wait_for_leader=max(0.0, deadline - time.monotonic()))
        problems = problems_of(lab, current)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(1)
    if problems:
        raise LabError("swarm not as the lab file says: " + "; ".join(problems))
    return current


def problems_of(lab: Lab, current: list[SwarmMember]) -> list[str]:
    problems = []
    for node in lab.spec.nodes:
        entries = [m for m in current if m.hostname == node.name]
        ready = [m for m in entries if m.status == "Ready"]
        if not ready:
            state = entries[0].status if entries else "not a member"
            problems.append(f"{node.name} is {state}")
        elif ready[0].role != node.role:
            problems.append(f"{node.name} is a {ready[0].role}, not a {node.role}")
    return problems


def find_leader(lab: Lab) -> Node | None:
    """A manager of the lab whose Raft works, or None."""
    for node in lab.managers():
        try:
            if info(node).control:
                return node
        except (NodeError, LabError):
            continue
    return None


def leave(lab: Lab, names: list[str] | None, log: Log = print) -> dict[str, str]:
    """Take nodes out of the swarm: workers first, managers last (the safe order)."""
    wanted = names or [n.name for n in lab.spec.nodes]
    ordered = sorted(wanted, key=lambda name: lab.spec.node(name).role == "manager")
    done = {}
    for name in ordered:
        node = lab.node(name)
        state = info(node)
        if state.state == "inactive":
            done[name] = "not in a swarm"
            continue
        log(f"  {name}$ docker swarm leave --force")
        node.run("docker swarm leave --force", timeout=120, check=True)
        done[name] = "left"
    if set(wanted) >= {n.name for n in lab.spec.nodes}:
        lab.state.invalidate_steps("swarm")
    return done
