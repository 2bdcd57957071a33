"""`invoke lab.up --provider vmware` end to end: vcsim's container-backed VMs of the local node
image become real nodes, and the shared prepare and swarm code makes them a swarm over SSH.

Everything goes through the real CLI in a subprocess, as a user would type it; the vCenter
password travels only in the environment and must never show up in output or state.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import CLIResult, run_cli
from tests.container_flags import hardening_gaps
from tests.vsphere_fixtures import *  # noqa: F403 (the lane's fixtures: __all__)
from tests.vsphere_fixtures import TEMPLATE, USER, find_vms

pytestmark = pytest.mark.vsphere

NODE_IMAGE = "swarmlab/node:bookworm"


def labelled(kind: str, lab: str) -> list[str]:
    out = subprocess.run(["docker", kind, "ls", "-q", "--filter", f"label=swarmlab.lab={lab}"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def test_up_gives_a_swarm_of_simulated_vms_and_down_removes_them(
    vcsim, service, images, tmp_path: Path
) -> None:
    name = "t-vs-e2e"
    prefix = "10.201.240"
    lab_file = tmp_path / f"{name}.yaml"
    lab_file.write_text(yaml.safe_dump({
        "name": name,
        "provider": "local",  # the flag below picks vmware, as the instructors' command does
        "subnet": f"{prefix}.0/24",
        "state_dir": str(tmp_path / "state"),
        "nodes": [
            {"name": "manager1", "role": "manager", "address": f"{prefix}.11"},
            {"name": "manager2", "role": "manager", "address": f"{prefix}.12"},
            {"name": "worker1", "role": "worker", "address": f"{prefix}.13"},
        ],
        "vmware": {
            "vcenter": vcsim.endpoint, "user": USER, "datacenter": "DC0", "cluster": "DC0_C0",
            "datastore": "LocalDS_0", "network": "DC0_DVPG0", "template": TEMPLATE,
            "linked_clone": True, "cpus": 1, "memory_mb": 1024, "simulator": True,
            "simulator_container_image": NODE_IMAGE,
            # Generous: on a busy 2-core machine nine other containers may be booting too.
            "guest_timeout": 300,
        },
    }))
    env = {"SWARMLAB_VSPHERE_PASSWORD": vcsim.password}
    outputs: list[CLIResult] = []

    def cli(*args: str, insecure: bool = True) -> CLIResult:
        # lab.exec talks SSH only, never to vCenter: it has no --insecure.
        flags = ["--provider", "vmware", *(["--insecure"] if insecure else [])]
        result = run_cli("-f", str(lab_file), *args, *flags, env=env, timeout=600)
        outputs.append(result)
        return result

    cli("lab.down")  # leftovers of an interrupted earlier run: this lab's only
    try:
        up = cli("lab.up")
        assert up.code == 0, up.output
        assert "cloning 3 VMs from swarmlab-template" in up.stdout
        assert "guest addresses: 3/3" in up.stdout

        status = cli("lab.status", "--json")
        assert status.code == 0, status.output
        nodes = json.loads(status.stdout)["nodes"]
        assert [(n["name"], n["power"], n["ready"], n["swarm_role"]) for n in nodes] == [
            ("manager1", "poweredOn", True, "manager"), ("manager2", "poweredOn", True, "manager"),
            ("worker1", "poweredOn", True, "worker")]
        assert [n["address"] for n in nodes] == [f"{prefix}.11", f"{prefix}.12", f"{prefix}.13"]
        assert len(labelled("container", name)) == 3
        # vcsim's container VMs are container nodes with the local provider's flags.
        inspected = json.loads(subprocess.run(
            ["docker", "inspect", *labelled("container", name)], capture_output=True, text=True,
            check=True).stdout)
        assert {c["Name"]: hardening_gaps(c) for c in inspected} == {
            c["Name"]: [] for c in inspected}
        assert len(find_vms(service, f"{name}-")) == 3

        rerun = cli("lab.up")
        assert rerun.code == 0, rerun.output
        assert "nothing changed: the lab was already up" in rerun.stdout
        assert "cloning" not in rerun.stdout

        rule = cli("lab.exec", "manager1", "cat /etc/udev/rules.d/70-swarmlab-vmxnet3.rules",
                   insecure=False)
        assert rule.code == 0 and "tx-checksum-ip-generic off" in rule.stdout, rule.output

        snap = cli("lab.snapshot", "clean")
        assert snap.code == 0, snap.output
        reset = cli("lab.reset", "--to", "clean")
        assert reset.code == 0 and "reset to clean" in reset.stdout, reset.output
        again = json.loads(cli("lab.status", "--json").stdout)["nodes"]
        assert all(n["ready"] for n in again)
    finally:
        down = cli("lab.down")
    assert down.code == 0, down.output
    assert "removed VM folder swarmlab-t-vs-e2e" in down.stdout
    assert labelled("container", name) == [] and labelled("network", name) == []
    assert labelled("volume", name) == []
    assert find_vms(service, f"{name}-") == []
    for result in outputs:
        assert vcsim.password not in result.output
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert vcsim.password not in path.read_text(errors="replace")
