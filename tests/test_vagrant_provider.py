"""The vagrant provider's checks and its Vagrantfile, with the real vagrant binary, no machines.

VirtualBox cannot run here (not in Debian, no hardware virtualisation): these tests render
the Vagrantfile for it and have vagrant parse and validate it, with a stand-in VBoxManage that
only answers `--version`. Every test whose proof stops short of a real VM says so in its name.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tarfile
import textwrap
from pathlib import Path

import pytest

from lab.container_node import CAPS_DROPPED, run_args
from lab.errors import LabError, SpecError
from lab.providers.vagrant import VagrantProvider, parse_settings
from lab.spec import parse_spec
from lab.state import LabState
from lab.vagrant_project import (
    VAGRANTFILE,
    error_summary,
    parse_snapshot_list,
    parse_ssh_config,
    vbox_allowed_ranges,
)
from tests.conftest import write_lab

pytestmark = pytest.mark.vagrant

@pytest.fixture(autouse=True, scope="module")
def vagrant_installed() -> None:
    """Vagrant is installable here (as docker is): its absence fails the lane, never skips it."""
    if not shutil.which("vagrant"):
        pytest.fail("vagrant is not installed: run `sudo scripts/install-vagrant`")


FAKE_VBOXMANAGE = """#!/bin/sh
# Stands in for VirtualBox: vagrant only asks its version before parsing a Vagrantfile.
[ "$1" = --version ] && echo 7.0.14r161095 && exit 0
echo "fake VBoxManage: $*" >&2
exit 1
"""


@pytest.fixture
def fake_vbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A PATH with the stand-in VBoxManage first and an empty VAGRANT_HOME (no boxes)."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "VBoxManage"
    script.write_text(FAKE_VBOXMANAGE)
    script.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "VAGRANT_HOME": str(tmp_path / "vagrant.d"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def provider_for(tmp: Path, name: str, octet: int, **vagrant: object) -> VagrantProvider:
    lab = write_lab(tmp, name, octet, provider="vagrant", vagrant=vagrant)
    import yaml

    spec = parse_spec(yaml.safe_load(lab.file.read_text()))
    return VagrantProvider(spec, LabState.load(spec.state_dir, spec.name), log=lambda line: None)


def allow_range(tmp: Path, octet: int) -> str:
    conf = tmp / "networks.conf"
    conf.write_text(f"# VirtualBox host-only ranges\n* 192.168.56.0/21 10.201.{octet}.0/24\n")
    return str(conf)


# --- parsing -------------------------------------------------------------------------------
def test_virtualbox_ranges_default_to_192_168_56_0_21_without_networks_conf(tmp_path: Path) -> None:
    assert [str(n) for n in vbox_allowed_ranges(tmp_path / "absent")] == ["192.168.56.0/21"]


def test_virtualbox_ranges_are_exactly_what_networks_conf_lists(tmp_path: Path) -> None:
    conf = tmp_path / "networks.conf"
    conf.write_text(
        "# comment\n* 10.0.0.0/8 192.168.0.0/16  # trailing\n* 2001::/64\nbogus 1.2.3.0/24\n"
    )
    assert [str(n) for n in vbox_allowed_ranges(conf)] == ["10.0.0.0/8", "192.168.0.0/16"]
    conf.write_text("# nothing allowed\n")
    assert vbox_allowed_ranges(conf) == []


def test_error_summary_keeps_vagrants_reason_and_drops_progress_and_wrappers() -> None:
    parallel_timeout = (
        "Bringing machine 'manager1' up with 'docker' provider...\n"
        "==> manager1: Waiting for machine to boot. This may take a few minutes...\n"
        "    manager1: SSH address: 127.0.0.1:32768\n"
        "An error occurred while executing multiple actions in parallel.\n"
        "Any errors that occurred are shown below.\n\n"
        "An error occurred while executing the action on the 'manager1'\n"
        "machine. Please handle this error then try again:\n\n"
        "Timed out while waiting for the machine to boot. This means that\n"
        "Vagrant was unable to communicate with the guest machine.\n\n"
        "If the box appears to be booting properly, you may want to increase\n"
        "the timeout.\n"
    )
    assert error_summary(parallel_timeout) == (
        "Timed out while waiting for the machine to boot. This means that Vagrant was unable"
        " to communicate with the guest machine."
    )
    backtrace = (
        "/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/lib/vagrant/machine.rb:203:in"
        " `action'\n\nVagrant exited after cleanup due to external interrupt.\n"
    )
    assert error_summary(backtrace) == "Vagrant exited after cleanup due to external interrupt."
    machine_readable = (
        "1795749539,,error-exit,Vagrant::Errors::BoxNotFound,The box 'x' could not be"
        " found%!(VAGRANT_COMMA) sorry.\\nSecond line."
    )
    assert error_summary(machine_readable) == "The box 'x' could not be found, sorry. Second line."
    assert error_summary("") == "vagrant gave no reason"


def test_ssh_config_and_snapshot_lists_are_parsed_per_machine() -> None:
    configs = parse_ssh_config(
        "Host manager1\n  HostName 127.0.0.1\n  User root\n  Port 2222\n"
        '  IdentityFile "/s p/id_ed25519"\n\nHost worker1\n  HostName 127.0.0.1\n  Port 2200\n'
    )
    assert configs["manager1"] == {"HostName": "127.0.0.1", "User": "root", "Port": "2222",
                                   "IdentityFile": "/s p/id_ed25519"}
    assert configs["worker1"]["Port"] == "2200"
    listing = (
        "1,manager1,ui,output,\n1,manager1,ui,detail,clean\n1,manager1,ui,detail,later\n"
        "1,worker1,ui,output,No snapshots have been taken yet!\n"
        "1,worker1,ui,detail,Snapshot Names are listed here\n"
    )
    assert parse_snapshot_list(listing) == {"manager1": ["clean", "later"], "worker1": []}
    # vagrant-libvirt 0.11.2's list, as printed on a real VM here: the opening line keeps
    # Vagrant's `==> NAME:` prefix.
    libvirt_listing = (
        "1795764037,manager1,metadata,provider,libvirt\n"
        "1795764037,manager1,ui,output,==> manager1: \n"
        "1795764037,manager1,ui,detail,s1\n"
    )
    assert parse_snapshot_list(libvirt_listing) == {"manager1": ["s1"]}


# --- settings --------------------------------------------------------------------------------
@pytest.mark.parametrize(("section", "words"), [
    ({"provder": "docker"}, "vagrant.provder is unknown"),
    ({"provider": "hyperv"}, "vagrant.provider is 'hyperv'; allowed: virtualbox, libvirt, docker"),
    ({"cpus": 0}, "vagrant.cpus is 0; allowed: a whole number from 1 to 64"),
    ({"memory": "lots"}, "vagrant.memory is 'lots'"),
    ({"box": ""}, "vagrant.box is empty"),
])
def test_wrong_vagrant_settings_name_the_field(section: dict, words: str) -> None:
    spec = parse_spec({"provider": "vagrant", "vagrant": section})
    with pytest.raises(SpecError, match="lab file: ") as caught:
        parse_settings(spec)
    assert words in str(caught.value)


def test_snapshots_and_clock_follow_the_vagrant_provider(tmp_path: Path) -> None:
    docker_machines = provider_for(tmp_path, "t-vag-ab", 45, provider="docker")
    assert (docker_machines.can_snapshot, docker_machines.owns_clock) == (False, False)
    with pytest.raises(LabError, match="vagrant's docker provider cannot take snapshots; use"):
        docker_machines.snapshot("clean")
    vms = provider_for(tmp_path, "t-vag-ab", 45)
    assert (vms.settings.provider, vms.can_snapshot, vms.owns_clock) == ("virtualbox", True, True)
    # Never VirtualBox's NAT address (10.0.2.15): the lab file's private network address.
    assert vms.advertise_address(vms.spec.node("worker1")) == "10.201.45.13"


def test_docker_machines_get_the_local_providers_container_flags(tmp_path: Path) -> None:
    provider = provider_for(tmp_path, "t-h11-flags", 241, provider="docker")
    provider._write_project()
    spec = json.loads(provider.project.spec_path.read_text())
    for node in spec["nodes"]:
        args = node["container_args"]
        # lab/container_node.py's flags, as the local provider has them, and nothing looser.
        assert args[:len(run_args())] == run_args()
        for cap in CAPS_DROPPED:
            assert ["--cap-drop", cap] in [args[i:i + 2] for i in range(len(args))]
        assert "--device-cgroup-rule" not in args and "--privileged" not in args
        assert not any("systempaths" in arg for arg in args)
        assert args[args.index("--ip") + 1] == node["address"]
        assert f"swarmlab.node={node['name']}" in args
        assert any(arg.startswith(f"type=volume,source={node['volume']},target=/var/lib/docker")
                   for arg in args)
    # The Vagrantfile keeps no flags of its own: it hands over the JSON's.
    text = VAGRANTFILE.read_text()
    assert 'd.create_args = node["container_args"]' in text
    assert "--cap-drop" not in text and "--security-opt" not in text and "d.privileged" not in text
    assert not (VAGRANTFILE.parent / "__init__.py").exists()


# --- the Vagrantfile, parsed by vagrant ------------------------------------------------------
def vagrant_in(
    provider: VagrantProvider, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess:
    return subprocess.run(["vagrant", *args], cwd=provider.project.directory, text=True,
                          capture_output=True, env={**provider.project.env, **env})


def test_virtualbox_vagrantfile_parses__does_not_boot_a_vm(
    tmp_path: Path, fake_vbox: dict[str, str]
) -> None:
    provider = provider_for(tmp_path, "t-vag-vbox", 43, networks_conf=allow_range(tmp_path, 43))
    provider._write_project()
    spec = json.loads(provider.project.spec_path.read_text())
    assert spec["provider"] == "virtualbox" and spec["netmask"] == "255.255.255.0"
    validated = vagrant_in(provider, "validate", env=fake_vbox)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "Vagrantfile validated successfully" in validated.stdout
    status = provider.project.status()
    assert status == {"manager1": "not_created", "manager2": "not_created",
                      "worker1": "not_created"}
    assert [m.power for m in provider.status()] == ["not_created"] * 3


def test_vagrantfile_without_the_spec_says_what_to_run(tmp_path: Path) -> None:
    (tmp_path / "Vagrantfile").write_text(f"load {json.dumps(str(VAGRANTFILE))}\n")
    done = subprocess.run(["vagrant", "status"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "SWARMLAB_SPEC": "", "VAGRANT_CHECKPOINT_DISABLE": "1",
                               "VAGRANT_HOME": str(tmp_path / "vagrant.d")})
    assert done.returncode != 0
    assert "Run `invoke lab.up` instead" in done.stderr


def test_vm_node_provisioner_sets_key_and_name_once__run_in_a_container_not_a_vm(
    images: None,
) -> None:
    text = VAGRANTFILE.read_text()
    body = text.split("NODE_SCRIPT = <<~'SH'\n", 1)[1].split("\nSH\n", 1)[0]
    script = textwrap.dedent(body) + (
        "\ncat /root/.ssh/authorized_keys; stat -c %a /root/.ssh; cat /etc/hostname;"
        " grep -c manager1 /etc/hosts; grep 127.0.1.1 /etc/hosts")
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKYGyvTCscYdsCUjMCFf t-vag-key"
    args = f"sh {shlex.quote(key)} root manager1 no"
    twice = f"sh -c {shlex.quote(script)} {args} >/dev/null; sh -c {shlex.quote(script)} {args}"
    # The container already carries the name (changing it would need SYS_ADMIN): the script
    # still writes /etc/hostname and its /etc/hosts line, once however often it runs.
    run = ["docker", "run", "--rm", "--label", "swarmlab.lab=t-vag-key", "--hostname",
           "manager1", "--entrypoint", "sh", "swarmlab/node:bookworm", "-c"]
    done = subprocess.run([*run, twice], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [key, "700", "manager1", "2", "127.0.1.1\tmanager1"]
    nobody = subprocess.run([*run, script, "sh", key, "student", "manager1", "no"],
                            capture_output=True, text=True, timeout=120)
    assert nobody.returncode == 1
    assert "no user student on this box" in nobody.stderr


# --- preflight faults --------------------------------------------------------------------------
def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_no_vagrant_binary_is_one_line_with_the_install_command(tmp_path: Path) -> None:
    lab = write_lab(tmp_path, "t-vag-nobin", 46, provider="vagrant",
                    vagrant={"provider": "docker"})
    empty = tmp_path / "bin"
    empty.mkdir()
    result = lab.invoke("lab.up", env={"PATH": str(empty)})
    assert result.code == 1, result.output
    line = one_error_line(result.stderr)
    assert "vagrant is not installed (no `vagrant` on PATH)" in line
    assert "scripts/install-vagrant" in line


def test_unknown_box_is_one_line_with_the_add_command__fake_vboxmanage_does_not_prove_virtualbox(
    tmp_path: Path, fake_vbox: dict[str, str]
) -> None:
    lab = write_lab(tmp_path, "t-vag-nobox", 46, provider="vagrant", vagrant={
        "provider": "virtualbox", "box": "t-vag/nosuch", "box_version": "1.2.3",
        "networks_conf": allow_range(tmp_path, 46)})
    result = lab.invoke("lab.up", env=fake_vbox)
    assert result.code == 1, result.output
    line = one_error_line(result.stderr)
    assert "box t-vag/nosuch 1.2.3 for virtualbox is not on this machine" in line
    assert "`vagrant box add t-vag/nosuch --box-version 1.2.3 --provider virtualbox`" in line


def test_added_box_passes_preflight__fake_box_and_vboxmanage_do_not_boot_anything(
    tmp_path: Path, fake_vbox: dict[str, str]
) -> None:
    box = tmp_path / "fake.box"
    metadata = tmp_path / "metadata.json"
    metadata.write_text('{"provider": "virtualbox"}')
    with tarfile.open(box, "w:gz") as archive:
        archive.add(metadata, arcname="metadata.json")
    added = subprocess.run(["vagrant", "box", "add", "--name", "t-vag/fake", str(box)],
                           capture_output=True, text=True, env={**os.environ,
                                                                "VAGRANT_CHECKPOINT_DISABLE": "1"})
    assert added.returncode == 0, added.stdout + added.stderr
    provider = provider_for(tmp_path, "t-vag-box", 47, box="t-vag/fake",
                            networks_conf=allow_range(tmp_path, 47))
    lines = provider.preflight()
    assert lines[0].startswith("vagrant 2.")
    assert "VirtualBox 7.0.14r161095, host-only subnet 10.201.47.0/24 allowed" in lines
    assert "box t-vag/fake 0 (virtualbox)" in lines


def test_subnet_outside_virtualbox_ranges_says_which_line_to_add__fake_vboxmanage(
    tmp_path: Path, fake_vbox: dict[str, str]
) -> None:
    absent = tmp_path / "no-networks.conf"
    lab = write_lab(tmp_path, "t-vag-range", 48, provider="vagrant",
                    vagrant={"networks_conf": str(absent)})
    result = lab.invoke("lab.up", env=fake_vbox)
    assert result.code == 2, result.output
    line = one_error_line(result.stderr)
    assert ("subnet 10.201.48.0/24 is outside the host-only ranges VirtualBox allows here"
            " (192.168.56.0/21)") in line
    assert f"create {absent} with the line `* 192.168.56.0/21 10.201.48.0/24`" in line
    present = tmp_path / "networks.conf"
    present.write_text("* 10.0.0.0/16\n")
    provider = provider_for(tmp_path, "t-vag-range", 48, networks_conf=str(present))
    with pytest.raises(SpecError, match=rf"add the line `\* 10.201.48.0/24` to {present}"):
        provider.preflight()


HIDE_SYSTEM_PLUGINS = """#!/bin/sh
# Stands in for vagrant on a machine whose vagrant-libvirt is a system plugin (Debian's
# package registers it where no environment variable can hide it): `plugin list` answers
# that there are none, everything else is the real vagrant.
[ "$1" = plugin ] && [ "$2" = list ] && exit 0
exec {real} "$@"
"""


def test_missing_libvirt_plugin_is_one_line__stand_in_vagrant_hides_the_installed_plugin(
    tmp_path: Path, fake_vbox: dict[str, str]
) -> None:
    real = shutil.which("vagrant")
    stand_in = Path(fake_vbox["PATH"].split(":")[0]) / "vagrant"
    stand_in.write_text(HIDE_SYSTEM_PLUGINS.format(real=shlex.quote(str(real))))
    stand_in.chmod(0o755)
    provider = provider_for(tmp_path, "t-vag-virt", 44, provider="libvirt")
    with pytest.raises(LabError, match="the vagrant-libvirt plugin is missing: run `apt-get"):
        provider.preflight()


def test_libvirt_defaults_to_the_projects_box_pool_and_a_management_network(
    tmp_path: Path,
) -> None:
    provider = provider_for(tmp_path, "t-vag-virt", 44, provider="libvirt")
    spec = provider.vagrant_spec()
    assert (spec["box"], spec["storage_pool"]) == ("swarmlab/trixie", "swarmlab")
    assert (spec["management_network"], spec["management_subnet"]) == (
        "swarmlab-t-vag-virt-mgmt", "10.201.45.0/24")
    assert provider.settings.boot_timeout == 900
    pinned = provider_for(tmp_path, "t-vag-virt2", 46, provider="libvirt",
                          management_subnet="10.201.99.0/24", libvirt_driver="kvm")
    assert pinned.vagrant_spec()["management_subnet"] == "10.201.99.0/24"
    assert pinned.vagrant_spec()["libvirt_driver"] == "kvm"
    with pytest.raises(SpecError, match=r"vagrant\.libvirt_driver is 'xen'; allowed: auto, kvm,"):
        provider_for(tmp_path, "t-vag-virt3", 47, provider="libvirt", libvirt_driver="xen")
    with pytest.raises(SpecError, match=r"vagrant\.management_subnet is 'nope'; allowed: an IPv4"):
        provider_for(tmp_path, "t-vag-virt3", 47, provider="libvirt", management_subnet="nope")


@pytest.mark.parametrize(("cpuinfo", "modules", "device", "driver", "words"), [
    ("flags\t: fpu vmx sse", [], True, "kvm", "KVM hardware virtualisation"),
    ("flags\t: fpu svm sse", [], True, "kvm", "KVM hardware virtualisation"),
    ("flags\t: fpu hypervisor", ["kvm", "kvm_pvm"], True, "qemu", "KVM's PVM module"),
    ("flags\t: fpu hypervisor", ["kvm"], True, "qemu", "offers no vmx or svm"),
    ("flags\t: fpu vmx", [], False, "qemu", "no usable"),
])
def test_libvirt_driver_is_chosen_by_probing_the_host(
    tmp_path: Path, cpuinfo: str, modules: list[str], device: bool, driver: str, words: str
) -> None:
    from lab.libvirt import choose_driver

    for module in modules:
        (tmp_path / "module" / module).mkdir(parents=True)
    kvm = tmp_path / "kvm"
    if device:
        kvm.write_text("")
    chosen, why = choose_driver("auto", cpuinfo=cpuinfo, kvm_device=str(kvm),
                                modules=str(tmp_path / "module"))
    assert chosen == driver and words in why
    assert choose_driver("qemu", cpuinfo=cpuinfo)[0] == "qemu"


# --- snapshots, with vagrant's answers stubbed ------------------------------------------------
class Recorder:
    """Stands in for the vagrant commands of a snapshot: records them, answers as told."""

    def __init__(self, names: list[str]):
        self.calls: list[tuple[str, ...]] = []
        self.names = names

    def run(self, *args: str, what: str | None = None) -> str:
        self.calls.append(args)
        if args[:2] == ("snapshot", "list"):
            return "".join(
                f"1,{node},ui,output,\n" + "".join(f"1,{node},ui,detail,{n}\n" for n in self.names)
                for node in ("manager1", "manager2", "worker1")
            )
        return ""


def test_snapshot_and_restore_commands__stubbed_vagrant_does_not_prove_virtualbox_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = provider_for(tmp_path, "t-vag-snap", 45)
    recorder = Recorder(["clean", "later"])
    monkeypatch.setattr(provider.project, "run", recorder.run)
    monkeypatch.setattr(provider.project, "status",
                        lambda: dict.fromkeys(("manager1", "manager2", "worker1"), "running"))
    monkeypatch.setattr(provider, "_record_machines", lambda *args, **kwargs: None)
    provider.snapshot("clean")
    assert ("snapshot", "save", "--force", "clean") in recorder.calls
    assert provider.list_snapshots() == ["clean", "later"]
    provider.revert("clean")
    assert ("snapshot", "restore", "--no-provision", "clean") in recorder.calls
    with pytest.raises(LabError, match="no snapshot nosuch on manager1, manager2, worker1"):
        provider.revert("nosuch")


def test_a_snapshot_vagrant_did_not_take_is_caught__stubbed_vagrant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = provider_for(tmp_path, "t-vag-snap", 45)
    monkeypatch.setattr(provider.project, "run", Recorder([]).run)
    with pytest.raises(LabError, match="snapshot clean is missing on manager1, manager2, worker1"):
        provider.snapshot("clean")
