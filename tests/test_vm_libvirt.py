"""Real VMs: three Debian VMs under QEMU through vagrant-libvirt, the project's slow lane.

What containers cannot show is proven here: the service VIP and the routing mesh (IPVS, which
this machine's kernel lacks but the VMs' kernels have), a swarm CA made under a clock three
hours ahead (the VMs own their clocks), and snapshot revert with the clock made right after.
The VMs are today's Debian (trixie, Docker 26.1) made like the lesson's nodes (`nodes_like:
seed`): firewalld running and SELinux enforcing until `prepare` does the seed's fix, and
failure 3 goes through that firewalld.

One lab is booted for the whole module (booting three VMs under software emulation takes
minutes); each test leaves it healthy for the next, and the last one takes it down and
checks that nothing of it is left in libvirt. Everything runs through the real CLI, the real
vagrant binary, vagrant-libvirt, libvirtd and QEMU. The lab's two libvirt networks are
isolated (no forwarding): nothing leaves this machine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lab import libvirt
from lab.box import Box, _insecure_key, added_versions
from lab.config import load_spec
from lab.context import Lab
from lab.errors import LabError
from lab.failures.clock_skew_ca import ROTATION_REFUSED, X509
from lab.tasks.lab_tasks import ssh_argv
from tests.conftest import LabHandle, write_lab

pytestmark = pytest.mark.vm

NAME = "t-vm"
OCTET = 50  # the lab's subnet 10.201.50.0/24; its management network is 10.201.51.0/24
TOKEN = re.compile(r"SWMTKN-1-(?!<redacted>)")
UP_TIMEOUT = 2400
CAPABILITIES_CACHE = "/var/cache/libvirt/qemu/capabilities"
BOX = Box("trixie", seed=True)
FIRST_UP: dict[str, str] = {}  # lab.up's output when it made the lab


def virsh(*args: str) -> str:
    return libvirt.virsh(*args).stdout


def our_domains() -> list[str]:
    return libvirt.domains(f"swarmlab-{NAME}-")


def our_networks() -> list[str]:
    return [n for n in libvirt.networks() if n in (f"swarmlab-{NAME}", f"swarmlab-{NAME}-mgmt")]


@pytest.fixture(scope="module")
def vm_lab(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    """The lane's one lab. `make test` starts libvirt and builds the box; without them this is
    a failure that says how to get them, never a skip."""
    try:
        libvirt.version()
    except LabError as exc:
        pytest.fail(f"libvirt is not running here ({exc}); `make test` starts it")
    if not added_versions(BOX):
        pytest.fail(f"the box {BOX.name} is not in Vagrant; `make box` (part of `make test`)")
    lab = write_lab(tmp_path_factory.mktemp("vm"), NAME, OCTET, provider="vagrant",
                    release="trixie", nodes_like="seed", firewall="disable",
                    vagrant={"provider": "libvirt"})
    lab.invoke("lab.down", timeout=900)  # leftovers of an interrupted run, this lab's only
    started = time.monotonic()
    result = lab.invoke("lab.up", timeout=UP_TIMEOUT)
    if result.code != 0:
        lab.invoke("lab.down", timeout=900)  # three VMs left running would load the rest
    assert result.code == 0, result.output
    print(f"\nvm lane: lab.up of three VMs took {time.monotonic() - started:.0f} s")
    print(result.stdout)
    FIRST_UP["stdout"] = result.stdout
    yield lab
    if our_domains() or our_networks():  # the last test takes it down; this is a failed run
        lab.invoke("lab.down", timeout=900)


def status(lab: LabHandle) -> dict[str, Any]:
    return lab.status()


def exec_on(lab: LabHandle, node: str, command: str, timeout: int = 300) -> str:
    result = lab.invoke("lab.exec", node, command, timeout=timeout)
    assert result.code == 0, result.output
    return result.stdout


def test_libvirt_we_start_probes_qemu_without_kvm_where_kvm_boots_no_stock_kernel() -> None:
    """Where /dev/kvm is KVM's PVM module, the libvirtd `make libvirt` starts must probe QEMU
    without KVM. A probe with KVM in it is stale at every lookup (its QEMU user cannot use
    /dev/kvm), and libvirt then probes QEMU again at every define and start: 17 s each,
    measured. Its probe is cached on disk, one file per QEMU binary."""
    driver, why = libvirt.choose_driver("auto")
    if "PVM" not in why:
        pytest.skip(f"not a PVM host ({why}): nothing to hide from libvirt")
    if not (Path(__file__).parents[1] / ".cache/libvirt/libvirtd.pid").exists():
        pytest.skip("libvirtd here is the system's, not one `make libvirt` started")
    assert driver == "qemu"
    libvirt.version()  # the probe is made by then
    probes = [f.read_text() for f in Path(CAPABILITIES_CACHE).glob("*.xml")]
    probe = [p for p in probes if "<emulator>/usr/bin/qemu-system-x86_64</emulator>" in p]
    assert probe, f"no probe of qemu-system-x86_64 in {CAPABILITIES_CACHE}"
    assert "<flag name='tcg'/>" in probe[0]
    assert "<flag name='kvm'/>" not in probe[0], "libvirtd probed QEMU with KVM"


def test_up_makes_a_swarm_of_three_vms(vm_lab: LabHandle) -> None:
    report = status(vm_lab)
    nodes = {n["name"]: n for n in report["nodes"]}
    assert {name: (n["role"], n["ready"]) for name, n in nodes.items()} == {
        "manager1": ("manager", True), "manager2": ("manager", True), "worker1": ("worker", True),
    }
    # Real VMs under libvirt, each with the lab file's address on its second NIC, which the
    # swarm advertises; the first NIC is vagrant-libvirt's management network.
    assert sorted(our_domains()) == [f"swarmlab-{NAME}-{n}" for n in sorted(nodes)]
    for name in nodes:
        assert virsh("domstate", f"swarmlab-{NAME}-{name}").strip() == "running"
    # One round trip for all three (each `lab.exec` is a CLI run and an SSH login).
    seen = exec_on(vm_lab, "all", "systemd-detect-virt; ip -4 -o addr show dev eth1")
    for name, node in nodes.items():
        lines = [line.split("] ", 1)[1] for line in seen.splitlines()
                 if line.startswith(f"[{name}] ")]
        assert lines[0] == "qemu", seen
        assert f"inet {node['address']}/24" in lines[1], seen
    advertised = exec_on(vm_lab, "manager1", "docker node ls -q | xargs docker node inspect"
                                             " --format '{{.Status.Addr}}'").split()
    assert sorted(advertised) == sorted(n["address"] for n in nodes.values())


def prepare_rows(output: str, resource: str) -> dict[str, str]:
    """node -> "status detail" of its `resource` row in lab.up's prepare output, without the
    row's time."""
    rows = {}
    for line in output.splitlines():
        words = line.split(None, 3)
        if len(words) == 4 and words[1] == resource:
            rows[words[0]] = re.sub(r" \([0-9.]+ s\)$", "", f"{words[2]} {words[3]}")
    return rows


def on_each(lab: LabHandle, command: str) -> dict[str, list[str]]:
    """Each node's output lines of one `lab.exec all` (one CLI run for the three)."""
    seen: dict[str, list[str]] = {}
    for line in exec_on(lab, "all", command).splitlines():
        name, _, said = line.partition("] ")
        seen.setdefault(name.lstrip("["), []).append(said)
    return seen


def test_prepare_did_the_seeds_fix_on_nodes_like_the_lessons(vm_lab: LabHandle) -> None:
    """The machines booted as the lesson's did, firewalld running and SELinux enforcing, and
    prepare (`firewall: disable`, `selinux: permissive`) turned both off now and at boot."""
    up = FIRST_UP["stdout"]
    names = ["manager1", "manager2", "worker1"]
    assert prepare_rows(up, "firewall") == dict.fromkeys(
        names, "changed firewalld stopped and disabled"), up
    assert prepare_rows(up, "selinux") == dict.fromkeys(
        names, "changed permissive now (was Enforcing), permissive at boot"), up
    seen = on_each(vm_lab, "getenforce; systemctl is-active firewalld || true;"
                           " systemctl is-enabled firewalld || true;"
                           " grep '^SELINUX=' /etc/selinux/config; cat /proc/cmdline;"
                           " journalctl -b -o cat | grep -c 'enforcing=0 old_enforcing=1';"
                           " journalctl -b -u firewalld -o cat | grep -c '^Started firewalld'")
    for name in names:
        now, active, enabled, config, cmdline, setenforce0, started = seen[name]
        assert (now, active, enabled, config) == (
            "Permissive", "inactive", "disabled", "SELINUX=permissive"), seen[name]
        # Before: the kernel booted with SELinux (Debian's box runs AppArmor otherwise) and
        # recorded one change from enforcing to permissive, prepare's; firewalld had started.
        assert "security=selinux" in cmdline, cmdline
        assert setenforce0 == "1" and started == "1", seen[name]


def test_the_lab_networks_are_isolated(vm_lab: LabHandle) -> None:
    assert sorted(our_networks()) == [f"swarmlab-{NAME}", f"swarmlab-{NAME}-mgmt"]
    for network in our_networks():
        xml = virsh("net-dumpxml", network)
        assert "<forward" not in xml, f"{network} forwards off this machine:\n{xml}"
    # And from inside: a VM has no route off its two lab networks.
    routes = exec_on(vm_lab, "worker1", "ip -4 route show")
    assert "default" not in routes, routes


def test_vagrants_insecure_key_logs_in_nowhere_and_the_labs_key_does(
    vm_lab: LabHandle, tmp_path: Path
) -> None:
    """The box ships Vagrant's public insecure key for `vagrant`, who has password-less sudo:
    after up it must open no VM, as vagrant or root; the lab's key opens both (Vagrant itself
    logs in as vagrant with it). Each refusal is checked beside a login that works, from the
    same host to the same address, so a network fault cannot pass for a refusal."""
    insecure = tmp_path / "insecure_private_key"
    shutil.copyfile(_insecure_key().with_suffix(""), insecure)  # Vagrant ships it readable
    insecure.chmod(0o600)  # by all; ssh would ignore the key, and prove nothing, otherwise
    spec = load_spec(None, lab_file=str(vm_lab.file))
    with Lab(spec, log=lambda line: None) as lab:
        targets = {node.name: node.target for node in lab.nodes()}
    assert sorted(targets) == ["manager1", "manager2", "worker1"]
    seen = {}
    for name, target in targets.items():
        for user in ("vagrant", "root"):
            for key in (str(insecure), target.key_filename):
                argv = ssh_argv(replace(target, user=user, key_filename=key))
                done = subprocess.run([*argv, "-o", "BatchMode=yes", "id -un"], text=True,
                                      capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
                said = done.stdout.strip() or (done.stderr.strip().splitlines() or ['-'])[-1]
                seen[(name, user, "insecure" if key == str(insecure) else "lab")] = said
    for name in targets:
        for user in ("vagrant", "root"):
            assert seen[(name, user, "lab")] == user, seen
            assert "Permission denied (publickey" in seen[(name, user, "insecure")], seen


def test_a_rerun_changes_nothing(vm_lab: LabHandle) -> None:
    before = {name: virsh("domid", name).strip() for name in our_domains()}
    result = vm_lab.invoke("lab.up", timeout=UP_TIMEOUT)
    assert result.code == 0, result.output
    assert {name: virsh("domid", name).strip() for name in our_domains()} == before
    assert "created" not in result.stdout
    for resource in ("firewall", "selinux"):
        rows = prepare_rows(result.stdout, resource)
        assert {n: r.split()[0] for n, r in rows.items()} == dict.fromkeys(
            ["manager1", "manager2", "worker1"], "ok"), result.stdout


@pytest.mark.parametrize("name", ["whoami-dns", "routing-mesh"])
def test_the_ipvs_scenarios_pass_in_full(vm_lab: LabHandle, name: str, tmp_path: Path) -> None:
    journal = tmp_path / "run.json"
    result = vm_lab.invoke("scenario.run", name, "--json", str(journal), timeout=1200)
    record = json.loads(journal.read_text())
    checks = [c for step in record["steps"] + record["cleanup"] for c in step["checks"]]
    assert result.code == 0, result.output
    assert record["features"]["ipvs"]["available"] is True
    assert [c for c in checks if c["status"] != "passed"] == [], result.output
    assert "could not run here" not in result.stdout  # (the description names UNAVAILABLE)
    assert not TOKEN.search(result.output)


def test_firewall_blocks_join_through_the_seeds_firewalld(vm_lab: LabHandle) -> None:
    """Failure 3 as the lesson had it: the manager's own firewalld, started again, turns the
    join away; the seed's fix turns it off and the worker joins."""
    broken = vm_lab.invoke("failure.break", "firewall-blocks-join", timeout=1200)
    assert broken.code == 0, broken.output
    assert "manager1$ systemctl start firewalld" in broken.stdout
    assert "iptables" not in broken.stdout
    assert "connect: no route to host" in broken.stdout
    # (The doctor naming firewalld is proven on the local seed nodes, tests/test_releases.py:
    # the same check; here it cost two minutes of the lane.)
    fixed = vm_lab.invoke("failure.fix", "firewall-blocks-join", "--way", "seed", timeout=1200)
    assert fixed.code == 0, fixed.output
    assert "manager1$ systemctl disable --now firewalld" in fixed.stdout
    assert "SELinux on manager1: Permissive; nothing to set." in fixed.stdout
    assert "joined as a worker" in fixed.stdout
    assert on_each(vm_lab, "systemctl is-active firewalld || true")["manager1"] == ["inactive"]
    assert all(n["ready"] for n in status(vm_lab)["nodes"])


def test_clock_skew_ca_end_to_end(vm_lab: LabHandle) -> None:
    broken = vm_lab.invoke("failure.break", "clock-skew-ca", timeout=1200)
    assert broken.code == 0, broken.output
    assert X509 in broken.stdout
    assert "error while validating Root CA Certificate" in broken.stdout
    assert not TOKEN.search(broken.output)

    # The doctor names the cause from the lab alone (the record of the break hidden).
    state = json.loads(vm_lab.state_file.read_text())
    kept = state["broken"]
    vm_lab.state_file.write_text(json.dumps({**state, "broken": {}}))
    try:
        doctor = vm_lab.invoke("lab.doctor", "--json", "--lang", "en", timeout=600)
    finally:
        state = json.loads(vm_lab.state_file.read_text())
        vm_lab.state_file.write_text(json.dumps({**state, "broken": kept}))
    report = json.loads(doctor.stdout)
    assert report["exit_code"] == 1 == doctor.code
    causes = [f for f in report["findings"] if f["severity"] == "error"]
    assert any("clock-skew-ca" in json.dumps(f) or "not yet valid" in json.dumps(f)
               for f in causes), causes

    cluster = exec_on(vm_lab, "manager1", "docker info --format '{{.Swarm.Cluster.ID}}'")
    fixed = vm_lab.invoke("failure.fix", "clock-skew-ca", timeout=1800)
    assert fixed.code == 0, fixed.output
    # The fix without a rebuild: under the right clocks Docker refuses the plain rotation (the
    # old root is not yet valid), the bridge root carries it, and the nodes join the same
    # swarm with fresh tokens. The bridge's key is never shown.
    rotate = fixed.stdout.index("manager1$ docker swarm ca --rotate")
    assert ROTATION_REFUSED in fixed.stdout[rotate:], fixed.stdout
    bridged = fixed.stdout.index("manager1$ docker swarm ca --rotate --quiet --ca-cert", rotate)
    assert "This node joined a swarm as a manager" in fixed.stdout[bridged:]
    assert "This node joined a swarm as a worker" in fixed.stdout[bridged:]
    assert "docker swarm init" not in fixed.stdout
    assert exec_on(vm_lab, "manager1", "docker info --format '{{.Swarm.Cluster.ID}}'") == cluster
    assert "PRIVATE KEY" not in fixed.output
    assert not TOKEN.search(fixed.output)
    assert all(n["ready"] for n in status(vm_lab)["nodes"])
    healthy = vm_lab.invoke("lab.doctor", "--json", timeout=600)
    assert healthy.code == 0, healthy.stdout


def test_snapshot_and_reset_bring_the_lab_back_with_the_clock_right(vm_lab: LabHandle) -> None:
    taken = vm_lab.invoke("lab.snapshot", "lesson-start", timeout=1200)
    assert taken.code == 0, taken.output
    # Two managers on emulated CPUs can be between leaders for a while (after the rebuild of
    # the previous test, or the snapshot's pause): the change waits for one, as scenarios do.
    exec_on(vm_lab, "manager1", "for i in $(seq 60); do docker node ls >/dev/null 2>&1 && break;"
                                " sleep 5; done; docker service create --detach --name"
                                " after-snapshot swarmlab/busybox:latest sleep 3600")
    time.sleep(20)  # the reverted guests wake with the clock of the snapshot, this far behind
    reset = vm_lab.invoke("lab.reset", timeout=1200)
    assert reset.code == 0, reset.output
    services = exec_on(vm_lab, "manager1", "docker service ls --format '{{.Name}}'")
    assert "after-snapshot" not in services.split()
    report = status(vm_lab)
    assert all(n["ready"] for n in report["nodes"]), report
    assert abs(report["clock_spread_seconds"]) < 2, report
    for node in report["nodes"]:
        assert abs(float(node["clock_skew"])) < 2, node


def test_down_leaves_nothing_in_libvirt(vm_lab: LabHandle) -> None:
    down = vm_lab.invoke("lab.down", timeout=900)
    assert down.code == 0, down.output
    assert our_domains() == []
    assert our_networks() == []
    pool = virsh("vol-list", libvirt.POOL_NAME)
    assert f"swarmlab-{NAME}-" not in pool
