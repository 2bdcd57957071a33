"""The vmware provider's real code against vcsim: settings, preflight, the VM life cycle.

These labs are plain simulated VMs (no containers, no SSH): fast, and they show what
vSphere itself is asked to do. Faults are in test_vsphere_faults.py, container-backed labs
ending in a swarm in test_vsphere_e2e.py.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from pyVmomi import vim

from lab.container_node import run_args
from lab.errors import NodeError, SpecError
from lab.spec import parse_spec
from lab.vsphere import clone, simulator
from lab.vsphere.settings import parse_settings
from tests.vsphere_fixtures import *  # noqa: F403 (the lane's fixtures: __all__)
from tests.vsphere_fixtures import (
    FAKE_HOST_KEY,
    find_vms,
    lab_spec,
    provider_for,
)

pytestmark = pytest.mark.vsphere

BASE = {"vcenter": "vc.example.org", "user": "u", "datacenter": "DC", "cluster": "C",
        "datastore": "DS", "network": "N", "template": "T"}


def settings_of(**vmware: object) -> object:
    section = {**BASE, **vmware}
    section = {k: v for k, v in section.items() if v is not None}
    return parse_settings(parse_spec({"name": "t-set", "provider": "vmware", "vmware": section}))


@pytest.mark.parametrize(("change", "message"), [
    ({"vcenter": None}, "vmware.vcenter is missing"),
    ({"vcenter": "vc:99999"}, "vmware.vcenter port 99999"),
    ({"password": "x"}, "vmware.password is not allowed"),
    ({"colour": "red"}, "vmware.colour is unknown"),
    ({"cluster": None}, "needs cluster, resource_pool or both"),
    ({"cpus": 0}, "vmware.cpus is 0"),
    ({"memory_mb": "lots"}, "vmware.memory_mb is 'lots'"),
    ({"linked_clone": "yes"}, "vmware.linked_clone is 'yes'"),
    ({"folder": "a//b"}, "vmware.folder is 'a//b'"),
    ({"netmask": "255.0.255.0"}, "vmware.netmask is '255.0.255.0'"),
    ({"dns": ["8.8.8.x"]}, "vmware.dns[0] is '8.8.8.x'"),
    ({"nodes": {"nosuch": {}}}, "vmware.nodes.nosuch names no node"),
    ({"nodes": {"worker1": {"mtu": 9000}}}, "vmware.nodes.worker1 is"),
    ({"password_env": "not a name"}, "vmware.password_env is 'not a name'"),
    ({"ca_file": "/nonexistent.pem"}, "vmware.ca_file '/nonexistent.pem' is not a readable"),
    ({"simulator_container_image": "swarmlab/node:bookworm"}, "needs vmware.simulator: true"),
])
def test_every_bad_field_is_one_line_naming_it(change: dict, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        settings_of(**change)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_settings_defaults_and_per_node_network() -> None:
    settings = settings_of(gateway="10.77.0.254", dns=["10.77.0.53"],
                           nodes={"worker1": {"netmask": "255.255.0.0", "dns": []}})
    assert settings.endpoint == "vc.example.org:443"
    assert settings.password_env == "SWARMLAB_VSPHERE_PASSWORD"
    assert settings.folder == ("swarmlab-t-set",)
    assert settings.insecure is False
    manager = settings.networks["manager1"]
    assert (manager.address, manager.netmask, manager.gateway, manager.dns) == (
        "10.77.0.11", "255.255.255.0", "10.77.0.254", ("10.77.0.53",))
    worker = settings.networks["worker1"]
    assert (worker.netmask, worker.gateway, worker.dns) == ("255.255.0.0", "10.77.0.254", ())


def test_clone_spec_carries_customization_nic_marks_and_linked_disks() -> None:
    settings = settings_of(linked_clone=True, cpus=3, memory_mb=3072, domain="lab.example.org")
    nic = vim.vm.device.VirtualVmxnet3(key=4000)
    backing = vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName="N")
    snapshot = vim.vm.Snapshot("snapshot-1")
    placement = clone.Placement(folder=None, pool=None, datastore=None, template=None,
                                template_nic=nic, network_backing=backing,
                                snapshot=snapshot)
    spec = clone.clone_spec(settings, placement, lab="t-set", node="worker1",
                            extra_config={"RUN.container": "[]"})
    assert spec.powerOn is False and spec.template is False
    assert spec.location.diskMoveType == "createNewChildDiskBacking"
    assert spec.snapshot == snapshot
    assert (spec.config.numCPUs, spec.config.memoryMB) == (3, 3072)
    extra = {o.key: o.value for o in spec.config.extraConfig}
    assert extra == {"swarmlab.lab": "t-set", "swarmlab.node": "worker1", "RUN.container": "[]"}
    change = spec.config.deviceChange[0]
    assert change.operation == "edit" and change.device.connectable.startConnected is True
    assert change.device.backing is backing
    custom = spec.customization
    assert custom.identity.hostName.name == "worker1"
    assert custom.identity.domain == "lab.example.org"
    adapter = custom.nicSettingMap[0].adapter
    assert (adapter.ip.ipAddress, adapter.subnetMask, adapter.gateway) == (
        "10.77.0.13", "255.255.255.0", ["10.77.0.1"])


def test_container_vms_get_the_container_node_flags_shell_quoted(tmp_path: Path) -> None:
    spec = lab_spec(tmp_path, "t-h11-vcflags", 44, "https://127.0.0.1:1/sdk", containers=True,
                    simulator_container_image="swarmlab/node:bookworm")
    node = spec.node("worker1")
    args = simulator.run_args(spec, node, "swarmlab/node:bookworm", tmp_path / "keys")
    # vcsim's /sys workaround first, then the local provider's flags, nothing looser.
    assert args[:2] == ["--tmpfs", "/sys"] and args[2:2 + len(run_args())] == run_args()
    assert "--device-cgroup-rule" not in args and "--privileged" not in args
    assert not any("systempaths" in arg for arg in args)
    assert args[args.index("--ip") + 1] == node.address and args[-1] == "swarmlab/node:bookworm"
    # vcsim runs them through /bin/sh: each one comes back as one word.
    quoted = json.loads(simulator.extra_config(spec, node, "swarmlab/node:bookworm",
                                               tmp_path / "keys")[simulator.RUN_CONTAINER])
    assert shlex.split(" ".join(quoted)) == args


def test_vmxnet3_fix_is_a_persisted_udev_rule_and_valid_shell(tmp_path: Path) -> None:
    spec = lab_spec(tmp_path, "t-vs-nic", 9, "127.0.0.1:1")
    command = provider_for(spec).node_setup_commands(spec.nodes[0])[0]
    assert "tx-checksum-ip-generic off" in command
    assert "/etc/udev/rules.d/70-swarmlab-vmxnet3.rules" in command
    assert subprocess.run(["sh", "-n", "-c", command]).returncode == 0


def test_life_cycle_clone_power_customize_snapshot_revert_destroy(
    vcsim, password_env, no_ssh, service, tmp_path: Path
) -> None:
    lines: list[str] = []
    spec = lab_spec(tmp_path, "t-vs-life", 1, vcsim.endpoint)
    provider = provider_for(spec, lines.append)
    try:
        report = provider.preflight()
        assert report[0].startswith("vCenter VMware vCenter Server")
        assert "linked clones from its current snapshot" in report[1]
        assert report[2] == "folder swarmlab-t-vs-life: 0 of 3 VMs exist"

        assert provider.create() == {"manager1": "created", "manager2": "created",
                                     "worker1": "created"}
        assert any("guest addresses: 3/3" in line for line in lines)
        vms = {vm.name: vm for vm in find_vms(service, "t-vs-life-")}
        assert sorted(vms) == ["t-vs-life-manager1", "t-vs-life-manager2", "t-vs-life-worker1"]
        for node in spec.nodes:
            vm = vms[f"t-vs-life-{node.name}"]
            extra = {o.key: o.value for o in vm.props["config.extraConfig"]}
            assert extra["swarmlab.lab"] == "t-vs-life" and extra["swarmlab.node"] == node.name
            assert vm.props["runtime.powerState"] == "poweredOn"
            # The customization spec was taken: vcsim applies its host name and fixed address.
            assert vm.props["guest.hostName"] == node.name
            assert vm.props["guest.ipAddress"] == node.address
            assert vm.props["parent"].name == "swarmlab-t-vs-life"
        machines = provider.state.machines
        assert {n: m["vm"] for n, m in machines.items()} == {
            n.name: f"t-vs-life-{n.name}" for n in spec.nodes}
        assert provider.state.resources["folder"] == {"path": "swarmlab-t-vs-life",
                                                      "created": True}
        known = (provider.lab_dir / "known_hosts").read_text()
        assert known.count(FAKE_HOST_KEY.split()[1]) == 3

        # A rerun finds the VMs by folder and name and clones nothing.
        rerun = provider_for(spec)
        assert set(rerun.create().values()) == {"ok"}
        assert len(find_vms(service, "t-vs-life-")) == 3

        status = {m.name: m for m in rerun.status()}
        assert status["worker1"].power == "poweredOn" and status["worker1"].running
        assert status["worker1"].address == "127.77.1.13"

        rerun.snapshot("clean")
        rerun.snapshot("clean")  # taken again: replaced, not doubled
        rerun.snapshot("later")
        assert rerun.list_snapshots() == ["clean", "later"]
        rerun.revert("clean")
        with pytest.raises(NodeError, match="has no snapshot 'nosuch'"):
            rerun.revert("nosuch")

        # A powered-off VM is started by a rerun, not cloned again.
        vm = vms["t-vs-life-worker1"].obj
        vm.PowerOffVM_Task()
        assert provider_for(spec).create()["worker1"] == "started"
    finally:
        removed = provider_for(spec).destroy()
    assert sorted(removed) == ["VM folder swarmlab-t-vs-life", "VM t-vs-life-manager1",
                               "VM t-vs-life-manager2", "VM t-vs-life-worker1"]
    assert find_vms(service, "t-vs-life-") == []
    after = provider_for(spec)
    assert after.state.machines == {} and "folder" not in after.state.resources
    assert [m.exists for m in after.status()] == [False, False, False]


def test_parallel_bound_one_still_makes_every_vm(vcsim, password_env, no_ssh, service,
                                                 tmp_path: Path) -> None:
    spec = lab_spec(tmp_path, "t-vs-one", 2, vcsim.endpoint, parallel=1, linked_clone=False,
                    folder="swarmlab-t-vs-one")
    provider = provider_for(spec)
    try:
        assert set(provider.create().values()) == {"created"}
    finally:
        provider.destroy()
    assert find_vms(service, "t-vs-one-") == []


def test_destroy_leaves_a_folder_it_did_not_make_and_other_vms(
    vcsim, password_env, no_ssh, service, tmp_path: Path
) -> None:
    content = service.RetrieveContent()
    datacenter = content.rootFolder.childEntity[0]
    folder = datacenter.vmFolder.CreateFolder("t-vs-shared")
    spec = lab_spec(tmp_path, "t-vs-keep", 3, vcsim.endpoint, folder="t-vs-shared")
    provider = provider_for(spec)
    try:
        provider.create()
        removed = provider_for(spec).destroy()
        assert "VM folder t-vs-shared" not in removed
        assert len([r for r in removed if r.startswith("VM ")]) == 3
        assert [f.name for f in datacenter.vmFolder.childEntity].count("t-vs-shared") == 1
    finally:
        folder.Destroy_Task()


def test_vmxnet3_fix_touches_only_vmxnet3_nics(images, tmp_path: Path) -> None:
    """The command in a node container, over a made-up /sys/class/net and a stub ethtool."""
    drivers = tmp_path / "drivers"
    for nic, driver in (("ens192", "vmxnet3"), ("eth1", "e1000"), ("lo", None)):
        (tmp_path / "net" / nic).mkdir(parents=True)
        (drivers / (driver or "none")).mkdir(parents=True, exist_ok=True)
        if driver:
            (tmp_path / "net" / nic / "device").mkdir()
            (tmp_path / "net" / nic / "device" / "driver").symlink_to(f"/fakedrivers/{driver}")
    stub = tmp_path / "ethtool"
    stub.write_text('#!/bin/sh\necho "$@" >> /out/calls\n')
    stub.chmod(0o755)
    (tmp_path / "out").mkdir()
    spec = lab_spec(tmp_path, "t-vs-nic", 9, "127.0.0.1:1")
    command = provider_for(spec).node_setup_commands(spec.nodes[0])[0]
    done = subprocess.run(
        ["docker", "run", "--rm", "--label", "swarmlab.lab=t-vs-nic",
         "-v", f"{tmp_path / 'net'}:/sys/class/net:ro", "-v", f"{drivers}:/fakedrivers:ro",
         "-v", f"{stub}:/usr/local/sbin/ethtool:ro", "-v", f"{tmp_path / 'out'}:/out",
         "--entrypoint", "sh", "swarmlab/node:bookworm", "-c", command + "\ncat " + (
             "/etc/udev/rules.d/70-swarmlab-vmxnet3.rules")],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert 'DRIVERS=="vmxnet3"' in done.stdout
    assert (tmp_path / "out" / "calls").read_text() == "-K ens192 tx-checksum-ip-generic off\n"
