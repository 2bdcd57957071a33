"""What the doctor knows of the lab: one probe per node (in parallel) and the swarm's own
view from a manager that answers. Checks read this; only a few (ports, overlay) act further.

The doctor reads the lab alone: never the lab's record of failures broken on purpose, so
that what it finds is what a lab that broke by itself would show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import swarm
from ..context import Lab
from ..errors import LabError
from ..prepare.timesync import measure_skew
from ..remote import Node, run_parallel
from .certs import CertDates, parse_cert

CERT_DIR = "/var/lib/docker/swarm/certificates"
CERT_FILES = ("swarm-node.crt", "swarm-root-ca.crt")
# Networks every Docker host has; anything else of local scope was made by someone.
BUILTIN_LOCAL_NETWORKS = ("bridge", "host", "none", "docker_gwbridge")

# One round trip per node. Each section starts with a line "@@name"; openssl prints the
# certificate dates where the node has it, else the PEM comes back for the controller.
# systemd is asked about dockerd first, and no `docker` command runs where it is not active:
# the CLI's connection would wake docker.socket and restart the very dockerd the doctor was
# asked to look at, hiding the fault it should report.
PROBE = r"""
echo @@dockerd
if command -v systemctl >/dev/null 2>&1; then d=$(systemctl is-active docker.service 2>&1)
else d=no-systemd; fi
echo "$d"
up=false; case "$d" in active|no-systemd) up=true;; esac
echo @@swarm; if $up; then docker info --format '{{json .Swarm}}' 2>&1; fi
echo @@addresses; ip -o -4 addr show 2>/dev/null | awk '{print $4}'
echo @@firewalld
if command -v firewall-cmd >/dev/null 2>&1; then
  s=$(firewall-cmd --state 2>&1); echo "state=$s"
  if [ "$s" = running ]; then
    echo "ports=$(firewall-cmd --list-ports)"; echo "services=$(firewall-cmd --list-services)"
  fi
else echo state=absent; fi
echo @@selinux; getenforce 2>/dev/null || echo absent
echo @@iptables; iptables -S 2>&1
echo @@ipvs; modprobe -q ip_vs 2>/dev/null; test -e /proc/net/ip_vs && echo present || echo absent
echo @@clock; date +%s
for f in __CERTS__; do
  echo "@@cert $f"; p=__CERT_DIR__/$f
  if [ ! -r $p ]; then echo missing
  elif command -v openssl >/dev/null 2>&1; then openssl x509 -noout -startdate -enddate -in $p
  else cat $p; fi
done
echo @@networks
$up && docker network ls --filter scope=local --format '{{.Name}}|{{.Driver}}' 2>/dev/null |
while IFS='|' read -r name driver; do
  case "$name" in __BUILTIN__) continue;; esac
  echo "$name|$driver|$(docker network inspect -f '{{len .Containers}}' "$name")"
done
""".replace("__CERTS__", " ".join(CERT_FILES)).replace("__CERT_DIR__", CERT_DIR).replace(
    "__BUILTIN__", "|".join(BUILTIN_LOCAL_NETWORKS))


@dataclass(frozen=True)
class LocalNetwork:
    name: str
    driver: str
    containers: int


@dataclass
class NodeFacts:
    name: str
    role: str  # as the lab file says
    address: str  # the address the lab wants advertised
    error: str = ""  # the probe could not run: nothing else here is known
    stopped: str = ""  # the provider's word for a machine that is not running (no SSH tried)
    dockerd: str = "active"  # `systemctl is-active docker.service` (no-systemd: not asked)
    swarm: dict[str, Any] = field(default_factory=dict)
    addresses: list[str] = field(default_factory=list)
    firewalld: dict[str, str] = field(default_factory=dict)
    selinux: str = "absent"
    iptables: list[str] = field(default_factory=list)
    ipvs: bool = False
    clock: float = 0.0  # the node's own clock when probed (epoch seconds)
    skew: float | None = None  # node minus controller, round trip corrected
    certs: dict[str, CertDates] = field(default_factory=dict)
    local_networks: list[LocalNetwork] = field(default_factory=list)

    @property
    def reachable(self) -> bool:
        return not self.error

    @property
    def dockerd_down(self) -> bool:
        return self.reachable and self.dockerd not in ("active", "no-systemd")

    @property
    def leaderless_manager(self) -> bool:
        """A Raft member of a swarm without a leader: active, yet no cluster it can name.

        Such a manager answers `docker info` with an empty cluster ID and either value of
        ControlAvailable; it is still in its Raft (its own address is among RemoteManagers),
        which tells it apart from a worker, whose cluster is always empty.
        """
        if self.state != "active" or self.cluster_id:
            return False
        raft = {m.get("Addr", "") for m in self.swarm.get("RemoteManagers") or []}
        return self.is_manager or f"{self.node_addr}:2377" in raft

    @property
    def state(self) -> str:
        return str(self.swarm.get("LocalNodeState") or "unknown")

    @property
    def node_id(self) -> str:
        return str(self.swarm.get("NodeID") or "")

    @property
    def cluster_id(self) -> str:
        return str((self.swarm.get("Cluster") or {}).get("ID") or "")

    @property
    def is_manager(self) -> bool:
        return bool(self.swarm.get("ControlAvailable"))

    @property
    def swarm_error(self) -> str:
        return str(self.swarm.get("Error") or "")

    @property
    def node_addr(self) -> str:
        return str(self.swarm.get("NodeAddr") or "")


@dataclass
class Survey:
    lab: Lab
    nodes: dict[str, NodeFacts]
    leader: Node | None = None  # a manager whose `docker node ls` answers
    members: list[swarm.SwarmMember] = field(default_factory=list)
    members_error: str = ""  # why no manager could list the nodes

    def reachable(self) -> list[NodeFacts]:
        return [facts for facts in self.nodes.values() if facts.reachable]

    def lab_cluster(self) -> str:
        """The lab's swarm: the cluster most of its managers are in (the first one's on a tie)."""
        counts: dict[str, int] = {}
        for spec in self.lab.spec.managers:
            facts = self.nodes[spec.name]
            if facts.cluster_id:
                counts[facts.cluster_id] = counts.get(facts.cluster_id, 0) + 1
        if not counts:
            return ""
        return max(counts, key=lambda cluster: counts[cluster])


def sections(output: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("@@"):
            current = found.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    return found


def parse_probe(facts: NodeFacts, output: str) -> NodeFacts:
    parts = sections(output)
    # No section at all: an older probe that did not ask systemd; judge by docker info alone.
    facts.dockerd = (parts.get("dockerd") or ["no-systemd"])[0].strip() or "unknown"
    raw_swarm = "\n".join(parts.get("swarm", [])).strip()
    try:
        facts.swarm = json.loads(raw_swarm) if raw_swarm.startswith("{") else {}
    except ValueError:
        facts.swarm = {}
    if facts.dockerd_down:
        facts.swarm = {"LocalNodeState": "unknown",
                       "Error": f"dockerd is not running (systemd: {facts.dockerd})"}
    elif not facts.swarm:
        facts.swarm = {"LocalNodeState": "unknown", "Error": raw_swarm or "docker info failed"}
    facts.addresses = [a.split("/")[0] for a in parts.get("addresses", []) if a]
    facts.firewalld = dict(
        line.split("=", 1) for line in parts.get("firewalld", []) if "=" in line
    )
    facts.selinux = (parts.get("selinux") or ["absent"])[0].strip() or "absent"
    facts.iptables = [line for line in parts.get("iptables", []) if line.startswith("-")]
    facts.ipvs = (parts.get("ipvs") or [""])[0].strip() == "present"
    facts.clock = float((parts.get("clock") or ["0"])[0] or 0)
    for name in CERT_FILES:
        lines = parts.get(f"cert {name}", [])
        if lines and lines[0].strip() != "missing":
            facts.certs[name] = parse_cert("\n".join(lines))
    for line in parts.get("networks", []):
        name, _, rest = line.partition("|")
        driver, _, count = rest.partition("|")
        if name:
            facts.local_networks.append(
                LocalNetwork(name, driver, int(count) if count.isdigit() else 0)
            )
    return facts


def probe(lab: Lab, node: Node) -> NodeFacts:
    facts = NodeFacts(node.name, node.role, lab.provider.advertise_address(node.spec))
    facts.skew = measure_skew(node)
    result = node.run(PROBE, timeout=60, shown="doctor probe")
    return parse_probe(facts, result.stdout + result.stderr)


def take(lab: Lab) -> Survey:
    nodes: dict[str, NodeFacts] = {}
    reachable: list[Node] = []
    # The provider knows a stopped machine at once; SSH would only find out after its
    # connect timeout (34 s measured), and say less.
    machines = {machine.name: machine for machine in lab.provider.status()}
    for spec in lab.spec.nodes:
        address = lab.provider.advertise_address(spec)
        machine = machines.get(spec.name)
        if spec.name not in lab.state.machines or machine is None or not machine.exists:
            nodes[spec.name] = NodeFacts(spec.name, spec.role, address, stopped="absent",
                                         error="the lab has no such machine (run `invoke lab.up`)")
            continue
        if not machine.running:
            nodes[spec.name] = NodeFacts(
                spec.name, spec.role, address, stopped=machine.power,
                error=f"the machine is stopped (the {lab.spec.provider} provider says"
                      f" {machine.power}); nothing was asked over SSH")
            continue
        reachable.append(lab.node(spec.name))
    outcomes = run_parallel(reachable, lambda node: probe(lab, node),
                            parallel=lab.spec.ssh.parallel, deadline=120)
    for node in reachable:
        outcome = outcomes[node.name]
        nodes[node.name] = outcome.value if outcome.ok else NodeFacts(
            node.name, node.role, lab.provider.advertise_address(node.spec),
            error=outcome.error or "probe failed")
    survey = Survey(lab, {spec.name: nodes[spec.name] for spec in lab.spec.nodes})
    _find_leader(survey)
    return survey


def _find_leader(survey: Survey) -> None:
    """Ask each manager that claims control for `docker node ls` until one answers."""
    errors = []
    for facts in survey.nodes.values():
        if not (facts.reachable and facts.is_manager):
            continue
        node = survey.lab.node(facts.name)
        try:
            survey.members = swarm.members(node)
        except LabError as exc:
            errors.append(str(exc))
            continue
        survey.leader = node
        return
    survey.members_error = errors[0] if errors else "no node of the lab is a manager of a swarm"
