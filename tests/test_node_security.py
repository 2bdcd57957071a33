"""What root inside a local node can no longer do to the host, and what it still must do.

Checked inside a real node of a real lab: opening a block device of the host, writing a
host-wide kernel setting (kernel.core_pattern and the rest of /proc/sys but net), reading
masked host files; and that nested Docker, an overlay network and a swarm service across
both nodes still work. Writes are made harmless: a setting is written with the value it
already has, and /proc/sysrq-trigger is only asked whether it could be written.
What stays open (root keeps SYS_ADMIN) is said in lab/providers/local.py and the README.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LabHandle, lab_fixture
from tests.container_flags import hardening_gaps

pytestmark = [pytest.mark.local, pytest.mark.security]

LAB = "t-h5-s"
MANAGER = f"swarmlab-{LAB}-manager1"


@pytest.fixture(scope="module")
def lab(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    yield from lab_fixture(tmp_path_factory.mktemp("security"), LAB, 142, nodes=2)


def in_node(script: str, container: str = MANAGER) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", container, "sh", "-c", script],
                          capture_output=True, text=True, timeout=120)


def host_block_device() -> tuple[str, str]:
    """A block device (name, major:minor) that root on this host can open for reading, so
    that the node being refused it means something (this host refuses root its own disk,
    so it is usually a loop device)."""
    for entry in sorted(Path("/sys/block").iterdir()):
        device = Path("/dev") / entry.name
        try:
            os.close(os.open(device, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            continue
        return entry.name, (entry / "dev").read_text().strip()
    pytest.skip("no block device that this host's root can open: nothing to compare with")


def test_the_engine_shows_the_container_node_flags(lab: LabHandle) -> None:
    inspected = json.loads(subprocess.run(["docker", "inspect", MANAGER], capture_output=True,
                                          text=True, check=True).stdout)[0]
    assert hardening_gaps(inspected) == []
    # Through the API a node's own net tree stays writable; every other tree is read-only.
    assert "/proc/sys/net" not in inspected["HostConfig"]["ReadonlyPaths"]


def test_a_node_cannot_open_a_block_device_of_the_host(lab: LabHandle) -> None:
    name, numbers = host_block_device()
    major, minor = numbers.split(":")
    # Docker lets every container (so every nested one, whose parent must allow it too)
    # make device nodes; the device cgroup is what keeps the node from using them.
    # In /root, not /tmp: trixie mounts /tmp as a nodev tmpfs, whose EACCES would hide what
    # the device cgroup does.
    tried = in_node(f"rm -f /root/h5-blk; mknod /root/h5-blk b {major} {minor};"
                    " dd if=/root/h5-blk of=/dev/null bs=512 count=1; echo read=$?;"
                    " (exec 3<>/root/h5-blk) ; echo write=$?; rm -f /root/h5-blk")
    print(f"{name} ({numbers}) from inside {MANAGER}: {tried.stdout} {tried.stderr}")
    assert "read=0" not in tried.stdout and "write=0" not in tried.stdout, tried
    assert "Operation not permitted" in tried.stderr or "No such file" in tried.stderr, tried


@pytest.mark.parametrize("setting", ["kernel/core_pattern", "kernel/panic", "vm/swappiness",
                                     "fs/file-max"])
def test_host_wide_kernel_settings_are_read_only(lab: LabHandle, setting: str) -> None:
    path = shlex.quote(f"/proc/sys/{setting}")
    # The value it has, written back: harmless even where the write goes through.
    tried = in_node(f"v=$(cat {path}); printf '%s\\n' \"$v\" > {path} && echo WRITTEN")
    assert "WRITTEN" not in tried.stdout
    assert "Read-only file system" in tried.stderr, tried


def test_the_nodes_own_network_settings_stay_writable(lab: LabHandle) -> None:
    tried = in_node("v=$(cat /proc/sys/net/ipv4/ip_forward);"
                    " echo $v > /proc/sys/net/ipv4/ip_forward && echo WRITTEN")
    assert "WRITTEN" in tried.stdout, tried


def test_sysrq_and_host_files_are_out_of_reach(lab: LabHandle) -> None:
    asked = in_node("test -w /proc/sysrq-trigger && echo SYSRQ-WRITABLE;"
                    " for f in /proc/kcore /proc/keys /proc/timer_list; do"
                    " [ -e $f ] && ! [ -c $f ] && echo $f-VISIBLE; done")
    assert asked.stdout.split() == [], asked


def test_nested_docker_an_overlay_and_a_swarm_service_work(lab: LabHandle) -> None:
    # Removing a file of the image's layer makes overlayfs write a whiteout (a device node).
    nested = in_node("docker run --rm swarmlab/busybox:latest sh -c 'rm /bin/true && echo ok'")
    assert nested.stdout.strip() == "ok", nested
    made = in_node(
        "docker network create -d overlay --label t-h5 t-h5-ov >/dev/null &&"
        " docker service create -q --detach --no-resolve-image --name t-h5-svc"
        " --network t-h5-ov --replicas 2 --replicas-max-per-node 1"
        " --endpoint-mode dnsrr swarmlab/busybox:latest sleep 600")
    assert made.returncode == 0, made
    try:
        deadline = time.monotonic() + 90
        while True:
            ps = in_node("docker service ps t-h5-svc --filter desired-state=running"
                         " --format '{{.Node}} {{.CurrentState}}'")
            running = sorted(line.split()[0] for line in ps.stdout.splitlines()
                             if " Running " in f" {line} ")
            if running == ["manager1", "manager2"]:
                break
            assert time.monotonic() < deadline, ps
            time.sleep(2)
        # Across the overlay: the task on manager1 reaches the one on manager2 by address.
        other = in_node("docker ps -q --filter name=t-h5-svc", f"swarmlab-{LAB}-manager2")
        address = in_node(f"docker inspect -f '{{{{range .NetworkSettings.Networks}}}}"
                          f"{{{{.IPAddress}}}} {{{{end}}}}' {other.stdout.strip()}",
                          f"swarmlab-{LAB}-manager2").stdout.split()
        mine = in_node("docker ps -q --filter name=t-h5-svc").stdout.strip()
        pinged = [in_node(f"docker exec {mine} ping -c 1 -W 3 {ip}") for ip in address]
        assert any(p.returncode == 0 for p in pinged), pinged
    finally:
        in_node("docker service rm t-h5-svc; sleep 3; docker network rm t-h5-ov")
