"""The local provider end to end, through the real CLI: real dockerd, sshd, Fabric and swarm."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.spec import PROVIDER_RELEASES
from tests.conftest import NODE_RUNS, LabHandle, containers, lab_fixture, run_cli, write_lab

OS, DOCKER = NODE_RUNS[PROVIDER_RELEASES["local"][0]]

pytestmark = pytest.mark.local


def docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True)


def assert_ready(lab: LabHandle) -> dict:
    status = lab.status()
    assert [(n["name"], n["role"], n["ready"]) for n in status["nodes"]] == [
        (n["name"], n["role"], True) for n in lab.nodes
    ]
    return status


def test_up_gives_a_ready_swarm_with_a_table(shared_lab: LabHandle) -> None:
    status = assert_ready(shared_lab)
    for node, wanted in zip(status["nodes"], shared_lab.nodes, strict=True):
        assert node["address"] == wanted["address"]
        assert node["os"].startswith(OS)
        assert node["docker"].startswith(DOCKER)
        assert node["swarm_role"] == wanted["role"]
    # Every node advertises its lab address, as the swarm itself reports it.
    out = shared_lab.invoke("lab.exec", "manager1",
                            "docker node ls -q | xargs docker node inspect"
                            " --format '{{.Description.Hostname}} {{.Status.Addr}}'")
    assert out.code == 0, out.output
    seen = dict(line.split() for line in out.stdout.splitlines())
    assert seen == {n["name"]: n["address"] for n in shared_lab.nodes}


def test_nodes_run_containers_and_services(shared_lab: LabHandle) -> None:
    # The nested dockerd needs writable cgroups: a node where it cannot start a container
    # would still join a swarm, so this is checked on its own.
    for node in shared_lab.nodes:
        ran = shared_lab.invoke("lab.exec", node["name"],
                                "docker run --rm swarmlab/busybox:latest echo ran-here")
        assert ran.code == 0 and "ran-here" in ran.stdout, ran.output
        failed = shared_lab.invoke("lab.exec", node["name"], "systemctl --failed --no-legend")
        assert failed.stdout.strip() == "", failed.output


def test_rerun_on_a_converged_lab_changes_nothing(shared_lab: LabHandle) -> None:
    result = shared_lab.invoke("lab.up")
    assert result.code == 0, result.output
    assert "nothing changed: the lab was already up" in result.stdout
    assert "create: ok" in result.stdout and "swarm: ok" in result.stdout
    assert "changed" not in result.stdout.replace("nothing changed", "")
    # The closing table's "reach with" reaches this very lab, not the default one.
    assert f"invoke -f {shared_lab.file} lab.ssh manager1" in result.stdout


def test_status_table_says_how_to_reach_each_node(shared_lab: LabHandle) -> None:
    result = shared_lab.invoke("lab.status")
    assert result.code == 0, result.output
    for node in shared_lab.nodes:
        assert f"invoke -f {shared_lab.file} lab.ssh {node['name']}" in result.stdout
    assert "Ready manager" in result.stdout and "Ready worker" in result.stdout


def test_lab_exec_reaches_every_node_over_ssh(shared_lab: LabHandle) -> None:
    result = shared_lab.invoke("lab.exec", "all", "hostname")
    assert result.code == 0, result.output
    assert sorted(result.stdout.split()) == sorted(
        [f"[{n['name']}]" for n in shared_lab.nodes] + [n["name"] for n in shared_lab.nodes]
    )
    failing = shared_lab.invoke("lab.exec", "worker1", "exit 3")
    assert failing.code != 0 and "failed" in failing.stderr


def test_lab_ssh_uses_the_pinned_host_key(shared_lab: LabHandle) -> None:
    from lab.config import load_spec
    from lab.context import Lab
    from lab.tasks.lab_tasks import ssh_argv

    spec = load_spec(None, lab_file=str(shared_lab.file))
    with Lab(spec, log=lambda line: None) as lab:
        argv = ssh_argv(lab.node("worker1").target)
    done = subprocess.run([*argv, "-o", "BatchMode=yes", "hostname"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "worker1"


def test_join_tokens_never_reach_output_or_state(shared_lab: LabHandle) -> None:
    token = shared_lab.invoke("lab.exec", "manager1", "docker swarm join-token -q worker")
    # lab.exec redacts tokens too: the secret part must not appear.
    assert "SWMTKN-1-<redacted>" in token.stdout
    state = shared_lab.state_file.read_text()
    assert "SWMTKN" not in state
    up = shared_lab.invoke("lab.up")
    assert "SWMTKN-1-" not in up.output.replace("SWMTKN-1-<redacted>", "")


def test_swarm_status_and_a_node_in_another_swarm(shared_lab: LabHandle) -> None:
    result = shared_lab.invoke("swarm.status")
    assert result.code == 0, result.output
    assert "problems: none" in result.stdout


@pytest.fixture
def side_lab(images: None, tmp_path: Path) -> Iterator[LabHandle]:
    yield from lab_fixture(tmp_path, "t-side", 11)


def test_node_removed_behind_the_tools_back_is_rebuilt(side_lab: LabHandle) -> None:
    assert docker("rm", "-f", f"swarmlab-{side_lab.name}-worker1").returncode == 0
    gone = side_lab.status()
    assert [n["power"] for n in gone["nodes"] if n["name"] == "worker1"] == ["absent"]
    result = side_lab.invoke("lab.up")
    assert result.code == 0, result.output
    assert "worker1 created" in result.stdout
    assert "worker1 joined as worker" in result.stdout
    assert_ready(side_lab)
    # The dead node's old entry was removed, not left Down beside the new one.
    listing = side_lab.invoke("lab.exec", "manager1", "docker node ls --format '{{.Hostname}}'")
    assert sorted(listing.stdout.split()) == ["manager1", "manager2", "worker1"]


def test_a_node_in_another_swarm_needs_force(side_lab: LabHandle) -> None:
    side_lab.invoke("lab.exec", "worker1", "docker swarm leave --force")
    made = side_lab.invoke("lab.exec", "worker1",
                           "docker swarm init --advertise-addr 10.201.11.13")
    assert made.code == 0, made.output
    refused = side_lab.invoke("lab.up")
    assert refused.code != 0
    assert "worker1: is in another swarm" in refused.stderr
    assert "This node is already part of a swarm" in refused.stderr
    assert "Traceback" not in refused.output
    forced = side_lab.invoke("lab.up", "--force")
    assert forced.code == 0, forced.output
    assert_ready(side_lab)


def test_two_labs_side_by_side_and_down_removes_only_its_own(
    shared_lab: LabHandle, images: None, tmp_path: Path
) -> None:
    # Something of the user's that carries no lab label: it must survive every lab.down.
    docker("network", "create", "t-bystander-net")
    docker("run", "-d", "--name", "t-bystander", "--network", "t-bystander-net",
           "swarmlab/busybox:latest", "sleep", "600")
    try:
        other = write_lab(tmp_path, "t-other", 12)
        other.invoke("lab.down")
        up = other.invoke("lab.up")
        assert up.code == 0, up.output
        assert_ready(other)
        assert_ready(shared_lab)
        assert other.state_file.exists()
        down = other.invoke("lab.down")
        assert down.code == 0, down.output
        assert containers("swarmlab.lab=t-other") == []
        for kind in ("volume", "network"):
            left = docker(kind, "ls", "-q", "--filter", "label=swarmlab.lab=t-other").stdout
            assert left.strip() == "", kind
        assert not other.state_file.exists()
        assert docker("inspect", "t-bystander").returncode == 0
        assert docker("network", "inspect", "t-bystander-net").returncode == 0
        assert_ready(shared_lab)
    finally:
        docker("rm", "-f", "t-bystander")
        docker("network", "rm", "t-bystander-net")


def test_skip_swarm_leaves_prepared_nodes(images: None, tmp_path: Path) -> None:
    lab = write_lab(tmp_path, "t-skip", 13, nodes=2)
    lab.invoke("lab.down")
    try:
        result = lab.invoke("lab.up", "--skip-swarm")
        assert result.code == 0, result.output
        assert "swarm: skipped (--skip-swarm)" in result.stdout
        status = lab.status()
        assert [n["swarm_state"] for n in status["nodes"]] == ["inactive", "inactive"]
        assert all(n["docker"].startswith(DOCKER) for n in status["nodes"])
        assert not any(n["ready"] for n in status["nodes"])
        built = lab.invoke("swarm.join")
        assert built.code == 0, built.output
        assert all(n["ready"] for n in lab.status()["nodes"])
        left = lab.invoke("swarm.leave")
        assert left.code == 0, left.output
        assert not any(n["ready"] for n in lab.status()["nodes"])
    finally:
        lab.invoke("lab.down")


def test_prepare_installs_docker_over_ssh_where_the_image_lacks_it(
    images: None, tmp_path: Path
) -> None:
    lab = write_lab(tmp_path, "t-nodocker", 14, nodes=2,
                    local={"image": "swarmlab/node-nodocker:bookworm"})
    lab.invoke("lab.down")
    try:
        before = docker("run", "--rm", "--entrypoint", "sh", "swarmlab/node-nodocker:bookworm",
                        "-c", "command -v dockerd || echo missing")
        assert before.stdout.strip() == "missing"
        result = lab.invoke("lab.up", timeout=1200)
        assert result.code == 0, result.output
        assert result.stdout.count("docker    changed  installed") == 2, result.stdout
        assert_ready(lab)
        again = lab.invoke("lab.up")
        assert "nothing changed" in again.stdout
    finally:
        lab.invoke("lab.down")


def test_a_node_that_dies_during_prepare_is_named_and_a_rerun_finishes(
    images: None, tmp_path: Path
) -> None:
    lab = write_lab(tmp_path, "t-dies", 15, nodes=2)
    lab.invoke("lab.down")
    try:
        killer_done = threading.Event()

        def kill_when_preparing() -> None:
            state = lab.state_file
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                steps = json.loads(state.read_text())["steps"] if state.exists() else {}
                if steps.get("create", {}).get("ok"):
                    break
                time.sleep(0.05)
            docker("kill", f"swarmlab-{lab.name}-manager2")
            killer_done.set()

        killer = threading.Thread(target=kill_when_preparing)
        killer.start()
        first = lab.invoke("lab.up")
        killer.join()
        assert killer_done.is_set()
        assert first.code != 0
        assert "manager2" in first.stderr and "Traceback" not in first.output
        assert len(first.stderr.strip().splitlines()) == 1, first.stderr
        state = json.loads(lab.state_file.read_text())
        assert set(state["machines"]) == {"manager1", "manager2"}
        second = lab.invoke("lab.up")
        assert second.code == 0, second.output
        assert "manager2 started" in second.stdout
        assert_ready(lab)
    finally:
        lab.invoke("lab.down")


def test_ssh_refused_is_one_line_naming_the_node(shared_lab: LabHandle) -> None:
    stop = docker("exec", f"swarmlab-{shared_lab.name}-worker1", "systemctl", "stop",
                  "ssh.service")
    assert stop.returncode == 0, stop.stderr
    try:
        result = shared_lab.invoke("lab.exec", "worker1", "true")
        assert result.code != 0
        assert "worker1: SSH to 10.201.10.13:22 failed" in result.stderr
        assert "Traceback" not in result.output
    finally:
        docker("exec", f"swarmlab-{shared_lab.name}-worker1", "systemctl", "start", "ssh.service")


def test_no_docker_engine_is_one_line(tmp_path: Path) -> None:
    lab = write_lab(tmp_path, "t-noengine", 16)
    result = lab.invoke("lab.up", env={"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"})
    assert result.code != 0
    assert "no Docker engine answers" in result.stderr
    assert "make docker" in result.stderr
    assert "Traceback" not in result.output


def test_subnet_overlapping_a_host_route_is_refused(shared_lab: LabHandle, tmp_path: Path) -> None:
    clash = write_lab(tmp_path, "t-clash", 10)  # the shared lab's subnet
    result = clash.invoke("lab.up")
    assert result.code == 2
    assert "subnet 10.201.10.0/24 overlaps the host's route" in result.stderr
    assert containers("swarmlab.lab=t-clash") == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: [unclosed", "line 1"),
        ("- just\n- a list\n", "must be a mapping"),
        ("provider: kvm\n", "provider is 'kvm'; allowed: local, vagrant, vmware, incus"),
        ("nodes:\n  - {name: a1, role: manager, address: 10.77.0.11}\n"
         "  - {name: a2, role: worker, address: 10.77.0.11}\n",
         "nodes[1].address 10.77.0.11 is also the address of a1"),
    ],
)
def test_bad_lab_files_get_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = run_cli("-f", str(path), "lab.up")
    assert result.code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


def test_missing_lab_file_and_unknown_provider(tmp_path: Path) -> None:
    missing = run_cli("-f", str(tmp_path / "nope.yaml"), "lab.status")
    assert missing.code != 0 and "Traceback" not in missing.output
    assert "nope.yaml" in missing.stderr
    unknown = run_cli("lab.status", "--provider", "hyperv")
    assert unknown.code == 2
    assert "provider is 'hyperv'; allowed: local, vagrant, vmware, incus" in unknown.stderr


def test_env_variables_override_the_lab_file(tmp_path: Path) -> None:
    result = run_cli("lab.status", env={"LAB_PROVIDER": "hyperv"})
    assert result.code == 2
    assert "provider is 'hyperv'" in result.stderr
