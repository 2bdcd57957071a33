"""The doctor's parts that need no lab: the probe's parsing, firewall rules read in order,
certificate dates, each check's judgement on made-up facts, and the language.

The doctor on a real lab (healthy, and recognising each failure) is in test_failures.py.
"""

from __future__ import annotations

import datetime
import io
import json
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from lab.doctor import exit_code
from lab.doctor.certs import parse_cert
from lab.doctor.checks import (
    certificates,
    clock,
    firewall,
    ipvs,
    membership,
    networks,
    overlay,
    ports,
)
from lab.doctor.finding import ERROR, OK, SKIPPED, UNAVAILABLE, WARNING, Finding
from lab.doctor.report import as_json, show
from lab.doctor.survey import LocalNetwork, NodeFacts, Survey, parse_probe
from lab.doctor.text import Text, language
from lab.errors import LabError, SpecError
from lab.scenario.display import Console
from lab.spec import parse_spec
from lab.swarm import SwarmMember

pytestmark = [pytest.mark.failure, pytest.mark.unit]

SPEC = parse_spec({"name": "t-fail-unit", "subnet": "10.201.31.0/24", "nodes": [
    {"name": "manager1", "role": "manager", "address": "10.201.31.11"},
    {"name": "manager2", "role": "manager", "address": "10.201.31.12"},
    {"name": "worker1", "role": "worker", "address": "10.201.31.13"},
]})
NOW = 1_800_000_000.0
CLUSTER = "clusterA"


def fake_lab(provider: str = "local") -> SimpleNamespace:
    """What checks read of a Lab: its spec and whether its provider's nodes own their clocks."""
    return SimpleNamespace(spec=replace(SPEC, provider=provider),
                           provider=SimpleNamespace(owns_clock=provider != "local"))


def active(name: str, manager: bool, **swarm: object) -> NodeFacts:
    node = SPEC.node(name)
    facts = NodeFacts(name, node.role, node.address, addresses=["127.0.0.1", node.address],
                      clock=NOW, skew=0.01, ipvs=True, selinux="absent",
                      firewalld={"state": "absent"}, iptables=["-P INPUT ACCEPT"])
    facts.swarm = {"LocalNodeState": "active", "NodeID": f"id-{name}", "NodeAddr": node.address,
                   "ControlAvailable": manager, "Error": "",
                   "Cluster": {"ID": CLUSTER} if manager else None,
                   "RemoteManagers": [{"Addr": "10.201.31.11:2377"}, {"Addr": "10.201.31.12:2377"}]}
    facts.swarm.update(swarm)
    return facts


def healthy_nodes() -> dict[str, NodeFacts]:
    return {"manager1": active("manager1", True), "manager2": active("manager2", True),
            "worker1": active("worker1", False)}


def member(name: str, status: str = "Ready", leader: str = "") -> SwarmMember:
    manager = {"manager1": "Leader", "manager2": "Reachable"}.get(name, "")
    return SwarmMember(f"id-{name}", name, status, "Active", leader or manager)


def survey(nodes: dict[str, NodeFacts], members: list[SwarmMember] | None = None,
           leader: bool = True, provider: str = "local") -> Survey:
    found = Survey(fake_lab(provider), nodes)  # type: ignore[arg-type]
    if leader:
        found.leader = SimpleNamespace(name="manager1")  # type: ignore[assignment]
        found.members = members if members is not None else [member(n) for n in nodes]
    else:
        found.members_error = "The swarm does not have a leader"
    return found


def severities(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.severity, f.node) for f in findings]


def test_probe_output_is_parsed_into_facts() -> None:
    output = "\n".join([
        "@@swarm", json.dumps({"LocalNodeState": "active", "NodeID": "n1", "NodeAddr": "10.0.0.1",
                               "ControlAvailable": True, "Cluster": {"ID": "c1"}}),
        "@@addresses", "127.0.0.1/8", "10.0.0.1/24",
        "@@firewalld", "state=running", "ports=2377/tcp", "services=ssh",
        "@@selinux", "Enforcing",
        "@@iptables", "-P INPUT ACCEPT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
        "@@ipvs", "absent",
        "@@clock", "1800000000",
        "@@cert swarm-node.crt", "notBefore=Nov 27 03:26:00 2026 GMT",
        "notAfter=Feb 25 03:26:00 2027 GMT",
        "@@cert swarm-root-ca.crt", "missing",
        "@@networks", "lesson-net|bridge|0",
    ])
    facts = parse_probe(NodeFacts("manager1", "manager", "10.0.0.1"), output)
    assert (facts.state, facts.node_id, facts.cluster_id, facts.is_manager) == (
        "active", "n1", "c1", True)
    assert facts.addresses == ["127.0.0.1", "10.0.0.1"]
    assert facts.firewalld == {"state": "running", "ports": "2377/tcp", "services": "ssh"}
    assert facts.selinux == "Enforcing" and facts.ipvs is False and facts.clock == NOW
    assert len(facts.iptables) == 2
    assert list(facts.certs) == ["swarm-node.crt"]
    assert facts.certs["swarm-node.crt"].not_before == datetime.datetime(
        2026, 11, 27, 3, 26, tzinfo=datetime.UTC).timestamp()
    assert facts.local_networks == [LocalNetwork("lesson-net", "bridge", 0)]


def test_a_dockerd_that_does_not_answer_is_an_unknown_state() -> None:
    facts = parse_probe(NodeFacts("worker1", "worker", "10.0.0.3"),
                        "@@swarm\nCannot connect to the Docker daemon\n@@clock\n1")
    assert facts.state == "unknown" and "Cannot connect" in facts.swarm_error


@pytest.mark.parametrize(("rules", "proto", "port", "blocked"), [
    (["-P INPUT ACCEPT"], "tcp", 2377, False),
    (["-P INPUT ACCEPT", "-A INPUT -p tcp -m tcp --dport 2377 -m conntrack --ctstate NEW"
      " -j REJECT --reject-with icmp-host-prohibited"], "tcp", 2377, True),
    # An ACCEPT ahead of the reject opens the port: first match wins.
    (["-A INPUT -p tcp -m tcp --dport 2377 -j ACCEPT",
      "-A INPUT -p tcp -m tcp --dport 2377 -j REJECT"], "tcp", 2377, False),
    (["-A INPUT -p tcp -m tcp --dport 2377 -j REJECT"], "udp", 2377, False),
    (["-A INPUT -p udp -m multiport --dports 4000:5000 -j DROP"], "udp", 4789, True),
    # Established traffic says nothing about a new connection; the policy decides.
    (["-P INPUT DROP", "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"],
     "tcp", 7946, True),
    (["-A INPUT -i lo -j REJECT"], "tcp", 2377, False),
])
def test_iptables_rules_are_read_in_order(rules: list[str], proto: str, port: int,
                                          blocked: bool) -> None:
    assert (firewall.deciding_rule(rules, proto, port) is not None) is blocked


def make_cert(not_before: datetime.datetime, days: int) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "swarm-ca")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(not_before)
            .not_valid_after(not_before + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.PEM).decode()


def test_certificates_are_judged_by_each_nodes_own_clock() -> None:
    nodes = healthy_nodes()
    start = datetime.datetime.fromtimestamp(NOW, datetime.UTC)
    # A CA made under a clock three hours ahead (minus swarm's hour): not yet valid here.
    ahead = parse_cert(make_cert(start + datetime.timedelta(hours=2), 365))
    fine = parse_cert(make_cert(start - datetime.timedelta(hours=1), 90))
    for facts in nodes.values():
        facts.certs = {"swarm-node.crt": fine, "swarm-root-ca.crt": fine}
    assert severities(certificates.check(survey(nodes))) == [(OK, "")]
    nodes["worker1"].certs["swarm-root-ca.crt"] = ahead
    found = certificates.check(survey(nodes))
    assert severities(found) == [(ERROR, "worker1")]
    assert "not yet valid" in found[0].saw("en") and "尚未生效" in found[0].saw("zh")
    assert "docker swarm ca --rotate" in found[0].fix("en")


def test_clock_skew_over_an_hour_is_an_error_and_drift_a_warning() -> None:
    nodes = healthy_nodes()
    assert severities(clock.check(survey(nodes))) == [(OK, "")]
    nodes["worker1"].skew = 45.0
    assert severities(clock.check(survey(nodes))) == [(WARNING, "worker1")]
    nodes["manager1"].skew = 3 * 3600.0
    found = severities(clock.check(survey(nodes)))
    assert (ERROR, "manager1") in found and (ERROR, "") in found  # and between nodes


def test_a_swarm_without_leader_and_a_node_outside_it() -> None:
    nodes = healthy_nodes()
    nodes["manager2"].swarm = {"LocalNodeState": "inactive", "ControlAvailable": False}
    nodes["manager1"].swarm["Error"] = "rpc error: The swarm does not have a leader."
    found = membership.check(survey(nodes, leader=False))
    assert severities(found) == [(ERROR, "manager2"), (ERROR, "")]
    assert "in no swarm" in found[0].saw("en")
    assert "no leader" in found[1].saw("en") and "--force-new-cluster" in found[1].fix("en")


def test_a_lost_quorum_shows_before_the_last_manager_gives_up() -> None:
    nodes = healthy_nodes()
    nodes["manager2"].swarm = {"LocalNodeState": "inactive", "ControlAvailable": False}
    listed = [member("manager1"), member("manager2", leader="Unreachable"), member("worker1")]
    found = membership.check(survey(nodes, listed))
    quorum = [f for f in found if f.node == ""]
    assert [f.severity for f in quorum] == [ERROR]
    assert "lost its Raft quorum" in quorum[0].saw("en")


def test_a_node_in_another_swarm_and_a_stale_entry() -> None:
    nodes = healthy_nodes()
    nodes["manager2"].swarm["Cluster"] = {"ID": "someone-elses"}
    nodes["worker1"].swarm["NodeID"] = "id-worker1-new"
    listed = [member("manager1"), member("manager2", "Down"), member("worker1", "Down"),
              SwarmMember("id-worker1-new", "worker1", "Ready", "Active", "")]
    found = membership.check(survey(nodes, listed))
    assert (ERROR, "manager2") in severities(found)
    assert "already part of a swarm" in next(f for f in found if f.node == "manager2").cause("en")
    assert (WARNING, "worker1") in severities(found)  # the stale Down entry


def test_a_healthy_membership_says_so() -> None:
    found = membership.check(survey(healthy_nodes()))
    assert severities(found) == [(OK, "")]


def test_an_unused_local_network_on_a_manager_is_what_a_service_was_meant_for() -> None:
    nodes = healthy_nodes()
    nodes["manager1"].local_networks = [LocalNetwork("lesson-net", "bridge", 0)]
    nodes["worker1"].local_networks = [LocalNetwork("mine", "bridge", 0)]  # workers: not ours
    found = networks._unused_local(survey(nodes))
    assert severities(found) == [(WARNING, "manager1")]
    assert "No such network: lesson-net" in found[0].cause("en")


def test_ipvs_missing_is_unavailable_on_a_shared_kernel_and_a_warning_on_vms() -> None:
    nodes = healthy_nodes()
    nodes["worker1"].ipvs = False
    assert severities(ipvs.check(survey(nodes))) == [(UNAVAILABLE, "")]
    assert severities(ipvs.check(survey(nodes, provider="vagrant"))) == [(WARNING, "")]


def test_only_errors_and_warnings_fail_the_doctor() -> None:
    saw = Text("x", "x")
    assert exit_code([Finding("a", "", OK, saw), Finding("b", "", UNAVAILABLE, saw)]) == 0
    assert exit_code([Finding("a", "", WARNING, saw)]) == 1
    report = json.loads(as_json("lab", "local", [Finding("a", "n", ERROR, saw)], "zh", 1))
    assert report["findings"] == [{"check": "a", "node": "n", "severity": "error", "saw": "x",
                                   "cause": "", "fix": ""}]
    assert report["counts"]["error"] == 1 and report["exit_code"] == 1


def test_the_report_reads_in_chinese_with_problems_first() -> None:
    stream = io.StringIO()
    findings = [Finding("clock", "", OK, Text("fine", "正常的")),
                Finding("ports", "worker1", ERROR, Text("blocked", "被拦截"),
                        Text("firewall", "防火墙"), Text("open it", "放行"))]
    show(Console(stream), "lab", "local", findings, "zh", 1)
    lines = stream.getvalue().splitlines()
    assert lines[1].split()[1:] == ["错误", "ports", "worker1"]  # after the mark
    assert lines[2:5] == ["    现象: 被拦截", "    原因分析: 防火墙", "    解决方法: 放行"]
    assert lines[-1].endswith("-> exit 1")


def test_language_follows_the_locale_unless_asked() -> None:
    assert language("", {"LANG": "zh_CN.UTF-8"}) == "zh"
    assert language("", {"LANG": "zh_CN.UTF-8", "LC_ALL": "en_US.UTF-8"}) == "en"
    assert language("", {"LC_ALL": "zh_TW.UTF-8"}) == "zh"
    assert language("", {}) == "en"
    assert language("zh", {"LANG": "C"}) == "zh"
    with pytest.raises(SpecError, match="allowed: en, zh"):
        language("fr", {})


# --- look without touching, and nothing unquoted reaches a node (issue 14) -------------------
def test_a_skip_is_not_a_healthy_exit() -> None:
    # The overlay probe that could not run is not proof that overlay works.
    skipped = Finding("overlay", "", SKIPPED, Text("not proven", "未验证"))
    assert exit_code([Finding("clock", "", OK, Text("x", "x")), skipped]) == 1


@pytest.mark.parametrize(("rules", "blocked"), [
    # A DROP in a chain INPUT jumps to is as real as one in INPUT.
    (["-N SLH3", "-A INPUT -j SLH3", "-A SLH3 -p udp -m udp --dport 4789 -j DROP"], True),
    (["-N C", "-A INPUT -p tcp -j C", "-A C -p udp --dport 4789 -j DROP"], False),  # tcp only
    (["-N C", "-A INPUT -j C", "-A C -j RETURN", "-A C -p udp --dport 4789 -j DROP"], False),
    (["-P INPUT DROP", "-N C", "-A INPUT -j C", "-A C -p udp --dport 4789 -j ACCEPT"], False),
    (["-N C", "-A C -p udp --dport 4789 -j DROP"], False),  # a chain nothing jumps to
])
def test_iptables_jumps_into_the_users_chains_are_followed(rules: list[str],
                                                          blocked: bool) -> None:
    assert (firewall.deciding_rule(rules, "udp", 4789) is not None) is blocked


def test_a_stopped_dockerd_is_said_plainly_with_what_the_managers_list() -> None:
    nodes = healthy_nodes()
    # The probe asks systemd first and runs no docker command where dockerd is not active.
    nodes["worker1"] = parse_probe(NodeFacts("worker1", "worker", "10.201.31.13"),
                                   "@@dockerd\ninactive\n@@swarm\n@@clock\n1800000000")
    listed = [member("manager1"), member("manager2"), member("worker1", "Down")]
    found = membership.check(survey(nodes, listed))
    assert severities(found) == [(ERROR, "worker1")]
    assert found[0].saw("en").startswith("dockerd is not running on worker1")
    assert "the managers list it Down" in found[0].saw("en")
    assert "systemctl start docker" in found[0].fix("en")


def test_a_manager_stuck_without_a_leader_beside_a_new_swarm() -> None:
    """manager1 left and made a new swarm; manager2 is alone in the old one, no leader."""
    nodes = healthy_nodes()
    nodes["manager1"].swarm.update({"Cluster": {"ID": "clusterNew"},
                                    "RemoteManagers": [{"Addr": "10.201.31.11:2377"}]})
    nodes["manager2"].swarm.update({"Cluster": {"ID": ""}, "Error": "context deadline exceeded"})
    found = membership.check(survey(nodes, [member("manager1")]))
    stuck = [f for f in found if f.node == "manager2"]
    assert [f.severity for f in stuck] == [ERROR]
    assert "without a leader" in stuck[0].saw("en")
    assert ("docker swarm init --force-new-cluster --advertise-addr 10.201.31.12"
            in stuck[0].fix("en"))


class RecordingNode:
    """A fake node that records each command (a real one would run it) and answers nothing;
    it refuses `docker service ps`, so the overlay probe stops right after creating."""

    name = "manager1"

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, **_: object) -> SimpleNamespace:
        self.commands.append(command)
        if "docker service ps" in command:
            raise LabError("recording node: stop here")
        return SimpleNamespace(stdout="", stderr="", ok=True, exit_code=0)


def overlay_survey(images: dict[str, str]) -> tuple[Survey, RecordingNode]:
    found = survey(healthy_nodes())
    found.lab.spec = replace(SPEC, images=images)
    found.lab.provider.time_scale = 1
    node = RecordingNode()
    found.leader = node  # type: ignore[assignment]
    return found, node


def test_a_lab_file_without_busybox_is_one_overlay_finding_not_a_traceback() -> None:
    found, node = overlay_survey({"whoami": "swarmlab/whoami:latest"})
    result = overlay.check(found)
    assert severities(result) == [(ERROR, "")]
    assert "busybox" in result[0].saw("en") and "images:" in result[0].fix("en")
    assert node.commands == []  # nothing was made on the lab


def test_an_image_name_reaches_the_node_quoted() -> None:
    found, node = overlay_survey({"busybox": "$(reboot)"})
    with pytest.raises(LabError):
        overlay.check(found)
    create = next(c for c in node.commands if "docker service create" in c)
    assert "'$(reboot)'" in create and "$(reboot)" in shlex.split(create)


def test_a_port_probe_address_never_runs_as_a_command(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    command = ports.probe_command(["127.0.0.1", f"$(touch {marker})"])
    subprocess.run(["bash", "-c", command], capture_output=True, timeout=30)
    assert not marker.exists()


def test_a_leaderless_manager_that_no_longer_claims_control_is_not_told_to_promote() -> None:
    nodes = healthy_nodes()
    nodes["manager1"].swarm = {"LocalNodeState": "inactive", "ControlAvailable": False}
    nodes["manager2"].swarm.update({"Cluster": {"ID": ""}, "ControlAvailable": False})
    found = membership.check(survey(nodes, leader=False))
    stuck = [f for f in found if f.node == "manager2"]
    assert [f.severity for f in stuck] == [ERROR]
    assert "without a leader" in stuck[0].saw("en") and "promote" not in stuck[0].fix("en")


def test_a_network_removed_during_the_survey_is_no_fault_of_the_check(tmp_path: Path) -> None:
    """Stand-in docker (the race cannot be timed on demand): `network ls` lists a network that
    is gone by its `inspect`, as the overlay probe's own network is while swarm removes it.
    Seen in a real run: 'the check could not run: ... Error: No such network: 9v7h2xtlr9cx'."""
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$1 $2" in\n'
        '  "service ls") ;;\n'
        '  "network ls") echo live1; echo gone1 ;;\n'
        '  "network inspect") [ "$5" = live1 ] || { echo "Error: No such network: $5" >&2;'
        " exit 1; }; echo 'live1|ingress|overlay|swarm' ;;\n"
        "esac\n")
    fake.chmod(0o755)
    done = subprocess.run(["sh", "-c", networks.QUERY], capture_output=True, text=True,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("@@networks")[1].split() == ["live1|ingress|overlay|swarm"]
