"""Looking at a lab never changes it, and says every way it differs from its file.

`lab.status` and `lab.doctor` on a real three-node lab, broken by hand the way a student
would: a manager demoted, dockerd stopped, a custom iptables chain dropping VXLAN, a machine
stopped, a manager left alone in a swarm without a leader. One lab serves the module; each
test puts back what it changed, and the last one (the leaderless swarm) leaves the lab to
the fixture's `lab.down`.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from lab.spec import PROVIDER_RELEASES
from tests.conftest import NODE_RUNS, LabHandle, lab_fixture

pytestmark = [pytest.mark.local, pytest.mark.failure]

NAME = "t-h3-look"
OCTET = 120


@pytest.fixture(scope="module")
def lab(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    yield from lab_fixture(tmp_path_factory.mktemp("look"), NAME, OCTET)


def on(node: str, command: str) -> subprocess.CompletedProcess:
    """A command inside a node's container, beside the tool (not through it)."""
    return subprocess.run(["docker", "exec", f"swarmlab-{NAME}-{node}", "sh", "-c", command],
                          capture_output=True, text=True, timeout=120)


def wait_for(what: str, probe: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not probe():
        assert time.monotonic() < deadline, f"still not {what} after {seconds} s"
        time.sleep(1)


def listed(node: str) -> str:
    """worker1's status as manager1 lists it (Ready, Down, Unknown)."""
    out = on("manager1", f"docker node ls --filter name={node} --format '{{{{.Status}}}}'")
    return out.stdout.strip()


def dockerd(node: str) -> str:
    return on(node, "systemctl is-active docker.service").stdout.strip()


def doctor(lab: LabHandle) -> tuple[int, dict]:
    result = lab.invoke("lab.doctor", "--json", timeout=600)
    assert result.code in (0, 1), result.output
    assert "Traceback" not in result.output, result.output
    return result.code, json.loads(result.stdout)


def findings(report: dict, check: str, node: str | None = None) -> list[dict]:
    return [f for f in report["findings"]
            if f["check"] == check and (node is None or f["node"] == node)]


def all_ready(lab: LabHandle) -> bool:
    return all(n["ready"] for n in lab.status()["nodes"])


def test_status_of_a_healthy_lab_shows_skew_and_the_lab_file(lab: LabHandle) -> None:
    result = lab.invoke("lab.status")
    assert result.code == 0, result.output
    header = result.stdout.splitlines()[0].split()
    assert "skew" in header and "docker" in header
    for node in lab.nodes:
        # The command shown reaches this lab, not the default lab file's.
        assert f"invoke -f {lab.file} lab.ssh {node['name']}" in result.stdout
    assert "differs" not in result.stdout


def test_status_reach_with_keeps_a_provider_given_on_the_command_line(lab: LabHandle) -> None:
    result = lab.invoke("lab.status", "--provider", "local")
    shown = f"invoke -f {lab.file} lab.ssh --provider local manager1"
    assert shown in result.stdout, result.output


def test_status_flags_a_demoted_manager_and_exits_non_zero(lab: LabHandle) -> None:
    assert on("manager1", "docker node demote manager2").returncode == 0
    try:
        result = lab.invoke("lab.status")
        assert result.code == 1, result.output
        assert "manager2!" in result.stdout
        assert ("manager2: a worker in the swarm; the lab file makes it a manager"
                in result.stdout), result.stdout
        assert lab.status()["differences"], "the JSON says it too"
    finally:
        on("manager1", "docker node promote manager2")
        wait_for("all Ready again", lambda: all_ready(lab))


def test_a_stopped_dockerd_is_shown_and_left_stopped(lab: LabHandle) -> None:
    on("worker1", "systemctl stop docker.service")  # docker.socket stays, as on any host
    try:
        assert dockerd("worker1") == "inactive"
        wait_for("Down to the managers", lambda: listed("worker1") == "Down")
        result = lab.invoke("lab.status")
        assert dockerd("worker1") == "inactive", "lab.status started dockerd"
        assert result.code == 1, result.output
        row = next(line for line in result.stdout.splitlines() if line.startswith("worker1"))
        version = NODE_RUNS[PROVIDER_RELEASES["local"][0]][1]
        assert "dockerd inactive" in row and version in row, row  # the version still shows
        assert "worker1: dockerd is not running" in result.stdout
        assert "the managers list it Down" in result.stdout

        code, report = doctor(lab)
        assert dockerd("worker1") == "inactive", "lab.doctor started dockerd"
        assert code == 1
        saw = [f["saw"] for f in findings(report, "membership", "worker1")]
        assert saw and saw[0].startswith("dockerd is not running on worker1"), saw
        assert "the managers list it Down" in saw[0]
        assert "template:" not in json.dumps(report)  # no raw Go template error
    finally:
        on("worker1", "systemctl start docker.service")
        wait_for("all Ready again", lambda: all_ready(lab))


def test_a_drop_in_a_custom_chain_is_found_and_overlay_names_its_ports(lab: LabHandle) -> None:
    rules = ["-N SLH3", "-A INPUT -j SLH3", "-A SLH3 -p udp --dport 4789 -j DROP"]
    for rule in rules:
        assert on("worker1", f"iptables {rule}").returncode == 0, rule
    try:
        code, report = doctor(lab)
        assert code == 1
        firewall = findings(report, "firewall", "worker1")
        assert [f["severity"] for f in firewall] == ["error"], findings(report, "firewall")
        assert "4789/udp" in firewall[0]["saw"] and "-A SLH3" in firewall[0]["saw"]
        overlay = [f for f in findings(report, "overlay") if f["severity"] == "error"]
        assert overlay, findings(report, "overlay")
        assert all("4789/udp" in f["saw"] and "7946/tcp+udp" in f["saw"] for f in overlay)
    finally:
        on("worker1", "iptables -D INPUT -j SLH3; iptables -F SLH3; iptables -X SLH3")


def test_the_doctor_asks_the_provider_before_ssh(lab: LabHandle) -> None:
    container = f"swarmlab-{NAME}-worker1"
    assert subprocess.run(["docker", "stop", "-t", "1", container]).returncode == 0
    try:
        wait_for("Down to the managers", lambda: listed("worker1") == "Down")
        start = time.monotonic()
        code, report = doctor(lab)
        seconds = time.monotonic() - start
        print(f"doctor with worker1 stopped: {seconds:.1f} s")
        assert code == 1
        saw = [f["saw"] for f in findings(report, "membership", "worker1")]
        assert saw and saw[0].startswith("worker1's machine is exited"), saw
        assert "nothing was asked over SSH" in saw[0] and "SSH to" not in saw[0]
        status = lab.invoke("lab.status")
        assert status.code == 1 and "worker1: the machine is exited" in status.stdout, status
    finally:
        subprocess.run(["docker", "start", container], check=True)
        wait_for("all Ready again", lambda: all_ready(lab), seconds=120)


def test_an_ssh_failure_in_the_ipvs_probe_is_a_broken_node(lab: LabHandle) -> None:
    """Not "no IPVS" (exit 3, could not run here): the node is broken (exit 1)."""
    from lab.config import load_spec
    from lab.context import Lab
    from lab.errors import NodeError
    from lab.scenario.features import probe_ipvs

    on("worker1", "systemctl stop ssh.socket 2>/dev/null; systemctl stop ssh.service")
    try:
        assert on("worker1", "systemctl is-active ssh.service").stdout.strip() != "active"
        with (Lab(load_spec(lab_file=str(lab.file)), log=lambda line: None) as opened,
              pytest.raises(NodeError) as raised):
            probe_ipvs(opened)
        assert raised.value.exit_code == 1
        assert str(raised.value).startswith("worker1: the IPVS probe could not run: SSH to")
    finally:
        on("worker1", "systemctl start ssh.service")


def test_a_manager_left_without_a_leader_is_found_with_its_fix(lab: LabHandle) -> None:
    """Last: the lab stays broken for the fixture's `lab.down`."""
    assert on("manager1", "docker swarm leave --force").returncode == 0
    wait_for("leaderless", lambda: '"ID":""' in on(
        "manager2", "docker info --format '{{json .Swarm.Cluster}}'").stdout, seconds=120)
    status = lab.invoke("lab.status")
    assert status.code == 1, status.output
    assert "no manager leads the swarm" in status.stdout
    fix = f"docker swarm init --force-new-cluster --advertise-addr 10.201.{OCTET}.12"

    def stuck(report: dict, node: str) -> dict:
        found = findings(report, "membership", node)
        assert found and "leader" in found[0]["saw"], report["findings"]
        assert fix in found[0]["fix"] and "invoke lab.up" in found[0]["fix"]
        return found[0]

    code, report = doctor(lab)
    assert code == 1
    assert stuck(report, "")["saw"].startswith("the swarm has no leader")  # the lab's own
    # The case the doctor missed: manager1 made a new swarm (as `lab.up` used to), so the
    # lab's managers disagree and manager2's empty cluster ID looked like nothing at all.
    assert on("manager1", f"docker swarm init --advertise-addr 10.201.{OCTET}.11").returncode == 0
    code, report = doctor(lab)
    assert code == 1
    assert "without a leader (LocalNodeState active, ControlAvailable" in stuck(
        report, "manager2")["saw"]


