"""The vagrant provider end to end: the real vagrant binary, its docker provider, the local
node image, and the shared prepare and swarm code, through the real CLI.

What this does not prove: VirtualBox or libvirt VMs booting (see test_vagrant_provider.py
and the vm lane), nor snapshots (Vagrant's docker provider has none).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import INVOKE, ROOT, CLIResult, LabHandle, containers, write_lab
from tests.container_flags import hardening_gaps

pytestmark = pytest.mark.vagrant

@pytest.fixture(autouse=True, scope="module")
def vagrant_installed() -> None:
    """Vagrant is installable here (as docker is): its absence fails the lane, never skips it."""
    if not shutil.which("vagrant"):
        pytest.fail("vagrant is not installed: run `sudo scripts/install-vagrant`")


DOCKER_MACHINES = {"provider": "docker"}
BYSTANDER = "vagrant_network_t-vag-bystander"


def docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True)


def labelled(kind: str, lab: str) -> list[str]:
    """Names of Docker objects of `kind` (volume, network) carrying the lab's label."""
    out = docker(kind, "ls", "-q", "--filter", f"label=swarmlab.lab={lab}").stdout
    return sorted(out.split())


@pytest.fixture(scope="module")
def vagrant_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Vagrant's own home for these tests: its machine index and locks stay out of ~/.vagrant.d."""
    return {"VAGRANT_HOME": str(tmp_path_factory.mktemp("vagrant.d"))}


def invoke(lab: LabHandle, *args: str, env: dict[str, str], timeout: int = 600) -> CLIResult:
    return lab.invoke(*args, env=env, timeout=timeout)


def project_dir(lab: LabHandle) -> Path:
    return lab.state_dir / lab.name / "vagrant"


def assert_gone(lab: LabHandle) -> None:
    assert containers(f"swarmlab.lab={lab.name}") == []
    assert labelled("volume", lab.name) == []
    assert labelled("network", lab.name) == []
    assert not project_dir(lab).exists()


@pytest.fixture(scope="module")
def vag_lab(
    images: None, tmp_path_factory: pytest.TempPathFactory, vagrant_env: dict[str, str]
) -> Iterator[tuple[LabHandle, CLIResult]]:
    lab = write_lab(tmp_path_factory.mktemp("vag"), "t-vag", 40, provider="vagrant",
                    vagrant=DOCKER_MACHINES)
    invoke(lab, "lab.down", env=vagrant_env)  # leftovers of an interrupted earlier run
    # Something that is not the lab's, named like the networks Vagrant's docker provider
    # removes on destroy when unused: lab.down must leave it alone.
    docker("network", "rm", BYSTANDER)
    made = docker("network", "create", "--subnet", "10.201.47.0/24",
                  "--label", "swarmlab.lab=t-vag-bystander", BYSTANDER)
    assert made.returncode == 0, made.stderr
    started = time.monotonic()
    up = invoke(lab, "lab.up", env=vagrant_env)
    print(f"t-vag lab.up: {time.monotonic() - started:.1f} s")
    yield lab, up
    invoke(lab, "lab.down", env=vagrant_env)
    docker("network", "rm", BYSTANDER)


def test_up_ends_with_a_three_node_swarm_on_the_lab_addresses(
    vag_lab: tuple[LabHandle, CLIResult], vagrant_env: dict[str, str]
) -> None:
    lab, up = vag_lab
    assert up.code == 0, up.output
    assert "provider docker" in up.stdout and "    vagrant 2." in up.stdout
    assert "create: changed" in up.stdout and "swarm: changed" in up.stdout
    status = json.loads(invoke(lab, "lab.status", "--json", env=vagrant_env).stdout)
    assert status["provider"] == "vagrant"
    assert [(n["name"], n["address"], n["ready"], n["swarm_role"]) for n in status["nodes"]] == [
        (n["name"], n["address"], True, n["role"]) for n in lab.nodes
    ]
    # The swarm advertises the lab file's addresses, as the swarm itself reports them.
    seen = invoke(lab, "lab.exec", "manager1", "docker node ls -q | xargs docker node inspect"
                  " --format '{{.Description.Hostname}} {{.Status.Addr}}'", env=vagrant_env)
    assert seen.code == 0, seen.output
    assert dict(line.split() for line in seen.stdout.splitlines()) == {
        n["name"]: n["address"] for n in lab.nodes
    }


def test_machines_are_labelled_containers_with_no_power_over_the_host(
    vag_lab: tuple[LabHandle, CLIResult],
) -> None:
    lab, _ = vag_lab
    names = [f"swarmlab-t-vag-{n['name']}" for n in lab.nodes]
    assert containers("swarmlab.lab=t-vag") == sorted(names)
    inspected = json.loads(docker("inspect", *names).stdout)
    for container, node in zip(inspected, lab.nodes, strict=True):
        host = container["HostConfig"]
        # The local provider's flags (lab/container_node.py), as the engine applied them.
        assert hardening_gaps(container) == [], container["Name"]
        assert not host["Privileged"] and host["CgroupnsMode"] == "private"
        network = container["NetworkSettings"]["Networks"]["swarmlab-t-vag"]
        assert network["IPAMConfig"]["IPv4Address"] == node["address"]
        # SSH is published on the loopback only.
        assert {b["HostIp"] for b in container["NetworkSettings"]["Ports"]["22/tcp"]} == {
            "127.0.0.1"
        }
    assert len(labelled("volume", "t-vag")) == 3 and len(labelled("network", "t-vag")) == 1


def test_ssh_goes_to_the_forwarded_port_with_the_host_key_pinned_by_machine_name(
    vag_lab: tuple[LabHandle, CLIResult],
) -> None:
    lab, _ = vag_lab
    state = json.loads(lab.state_file.read_text())
    known = (lab.state_dir / lab.name / "known_hosts").read_text().split("\n")
    for node in lab.nodes:
        machine = state["machines"][node["name"]]
        assert machine["ssh_host"] == "127.0.0.1" and machine["ssh_port"] > 1024
        assert any(line.startswith(f"swarmlab-t-vag-{node['name']} ssh-ed25519 ")
                   for line in known)
    assert all(line.split()[0].startswith("swarmlab-t-vag-") for line in known if line)


def test_rerun_on_a_converged_lab_changes_nothing(
    vag_lab: tuple[LabHandle, CLIResult], vagrant_env: dict[str, str]
) -> None:
    lab, _ = vag_lab
    again = invoke(lab, "lab.up", env=vagrant_env)
    assert again.code == 0, again.output
    assert "nothing changed: the lab was already up" in again.stdout
    assert "create: ok" in again.stdout


def test_snapshots_are_refused_in_one_line_for_docker_machines(
    vag_lab: tuple[LabHandle, CLIResult], vagrant_env: dict[str, str]
) -> None:
    lab, _ = vag_lab
    for args in (("lab.snapshot", "clean"), ("lab.reset",)):
        result = invoke(lab, *args, env=vagrant_env)
        assert result.code == 1, result.output
        assert result.stderr.strip().splitlines() == [
            "error: vagrant's docker provider cannot take snapshots; use vagrant.provider"
            " virtualbox or libvirt, or rebuild with `invoke lab.down` then `invoke lab.up`"
        ]


def test_halted_machine_is_started_by_a_rerun_and_reached_with_its_pinned_key(
    vag_lab: tuple[LabHandle, CLIResult], vagrant_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab, _ = vag_lab
    from lab.config import load_spec
    from lab.context import Lab

    for key, value in vagrant_env.items():
        monkeypatch.setenv(key, value)
    spec = load_spec(None, lab_file=str(lab.file))
    with Lab(spec, log=lambda line: None) as opened:
        opened.provider.halt(spec.node("worker1"))  # checks vagrant's state after the call
    machines = json.loads(lab.state_file.read_text())["machines"]
    assert [machines[name]["power"] for name in ("manager1", "manager2", "worker1")] == [
        "running", "running", "stopped"]
    running = docker("inspect", "-f", "{{.State.Running}}", "swarmlab-t-vag-worker1")
    assert running.stdout.strip() == "false"
    back = invoke(lab, "lab.up", env=vagrant_env)
    assert back.code == 0, back.output
    assert "worker1 started" in back.stdout
    status = json.loads(invoke(lab, "lab.status", "--json", env=vagrant_env).stdout)
    assert all(node["ready"] for node in status["nodes"]), status
    # Docker publishes SSH anew at each start: the port was read again, and the key pinned
    # under the machine's name still held.
    machines = json.loads(lab.state_file.read_text())["machines"]
    published = docker("port", "swarmlab-t-vag-worker1", "22/tcp").stdout.split(":")[-1]
    assert machines["worker1"]["ssh_port"] == int(published)


def test_down_leaves_nothing_of_the_lab_and_nothing_else(
    vag_lab: tuple[LabHandle, CLIResult], vagrant_env: dict[str, str]
) -> None:
    lab, _ = vag_lab
    down = invoke(lab, "lab.down", env=vagrant_env)
    assert down.code == 0, down.output
    assert "removed docker machine manager1" in down.stdout
    assert_gone(lab)
    assert docker("network", "inspect", BYSTANDER).returncode == 0
    again = invoke(lab, "lab.down", env=vagrant_env)
    assert again.code == 0, again.output


def test_interrupted_up_then_rerun_finishes_the_job(
    images: None, tmp_path: Path, vagrant_env: dict[str, str]
) -> None:
    lab = write_lab(tmp_path, "t-vag-int", 41, provider="vagrant", vagrant=DOCKER_MACHINES)
    env = {**os.environ, **vagrant_env}
    invoke(lab, "lab.down", env=vagrant_env)
    try:
        # Ctrl-C as a terminal sends it: SIGINT to invoke and vagrant alike, once the first
        # machine exists and the others are on their way.
        running = subprocess.Popen([*INVOKE, "-f", str(lab.file), "lab.up"], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        deadline = time.monotonic() + 120
        while not containers("swarmlab.lab=t-vag-int") and time.monotonic() < deadline:
            assert running.poll() is None, running.communicate()
            time.sleep(0.2)
        os.killpg(running.pid, signal.SIGINT)
        _, stderr = running.communicate(timeout=120)
        assert running.returncode == 130, stderr
        assert "rerun the same command to finish the job" in stderr
        rerun = invoke(lab, "lab.up", env=vagrant_env)
        assert rerun.code == 0, rerun.output
        assert "3 nodes Ready with the right roles" in rerun.stdout
    finally:
        down = invoke(lab, "lab.down", env=vagrant_env)
    assert down.code == 0, down.output
    assert_gone(lab)


def test_machine_that_fails_to_boot_is_one_line_and_a_rerun_after_the_fix_finishes(
    images: None, tmp_path: Path, vagrant_env: dict[str, str]
) -> None:
    # An image with no init and no sshd: the container stops at once, SSH never answers.
    broken = {**DOCKER_MACHINES, "image": "swarmlab/busybox:latest", "boot_timeout": 10}
    lab = write_lab(tmp_path, "t-vag-boot", 42, nodes=1, provider="vagrant", vagrant=broken)
    try:
        result = invoke(lab, "lab.up", env=vagrant_env)
        assert result.code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        # Vagrant says either that the container stopped or that SSH timed out, by timing.
        assert lines[0].startswith("error: manager1 did not come up: `vagrant up` failed: ")
        assert "full log: " in lines[0] and "rerun `invoke lab.up`" in lines[0]
        # The fix: the node image. The machine never finished its first up, so the rerun
        # makes it anew from the fixed lab file.
        write_lab(tmp_path, "t-vag-boot", 42, nodes=1, provider="vagrant",
                  vagrant=DOCKER_MACHINES)
        fixed = invoke(lab, "lab.up", env=vagrant_env)
        assert fixed.code == 0, fixed.output
        assert "manager1 created" in fixed.stdout
        assert "1 nodes Ready with the right roles" in fixed.stdout
    finally:
        down = invoke(lab, "lab.down", env=vagrant_env)
    assert down.code == 0, down.output
    assert_gone(lab)
