"""Each fault of issue 3 against vcsim: one line naming the object, with vSphere's own words,
and what was made recorded so that a rerun or lab.down finishes the job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from lab import vcsim as vcsim_process
from lab.errors import LabError, NodeError, SpecError
from lab.vsphere.tasks import run_tasks
from tests.vsphere_fixtures import *  # noqa: F403 (the lane's fixtures: __all__)
from tests.vsphere_fixtures import (
    TEMPLATE,
    USER,
    closed_port,
    find_vms,
    lab_spec,
    make_ca_and_cert,
    provider_for,
    wait_task,
)

pytestmark = pytest.mark.vsphere


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    return text


def datacenter(si: Any) -> Any:
    return si.RetrieveContent().rootFolder.childEntity[0]


def clone_plain(si: Any, name: str, folder: Any) -> Any:
    """A VM of the given name, as somebody else might have made it (vcsim allows duplicates)."""
    content = si.RetrieveContent()
    template = next(vm for vm in content.viewManager.CreateContainerView(
        content.rootFolder, [vim.VirtualMachine], True).view if vm.name == TEMPLATE)
    cluster = next(iter(content.viewManager.CreateContainerView(
        content.rootFolder, [vim.ClusterComputeResource], True).view))
    task = template.CloneVM_Task(folder=folder, name=name, spec=vim.vm.CloneSpec(
        location=vim.vm.RelocateSpec(pool=cluster.resourcePool)))
    wait_task(task)
    return task.info.result


@pytest.fixture
def cleanup(service: Any) -> Iterator[list[Any]]:
    """Objects a test made behind the provider's back, destroyed afterwards."""
    made: list[Any] = []
    yield made
    for obj in reversed(made):
        if isinstance(obj, vim.VirtualMachine) and obj.runtime.powerState == "poweredOn":
            obj.PowerOffVM_Task()
        obj.Destroy_Task()


# --- login and reachability -----------------------------------------------------------
def test_wrong_password_is_invalid_login_and_never_shown(vcsim, tmp_path: Path,
                                                         monkeypatch, capsys) -> None:
    wrong = "not-" + vcsim.password
    monkeypatch.setenv("SWARMLAB_VSPHERE_PASSWORD", wrong)
    provider = provider_for(lab_spec(tmp_path, "t-vs-login", 20, vcsim.endpoint))
    with pytest.raises(LabError) as caught:
        provider.preflight()
    text = one_line(caught.value)
    assert f"vCenter {vcsim.endpoint} refused the login of {USER}" in text
    assert "(InvalidLogin)" in text and "SWARMLAB_VSPHERE_PASSWORD" in text
    captured = capsys.readouterr()
    for seen in (text, captured.out, captured.err, provider.state.path.read_text()
                 if provider.state.path.exists() else ""):
        assert wrong not in seen and vcsim.password not in seen


def test_missing_password_says_where_to_put_it(vcsim, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SWARMLAB_VSPHERE_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", None)
    provider = provider_for(lab_spec(tmp_path, "t-vs-nopw", 21, vcsim.endpoint,
                                     password_env="T_VS_PASSWORD"))
    with pytest.raises(LabError, match="no vSphere password for swarmlab: set T_VS_PASSWORD"):
        provider.preflight()


def test_unreachable_vcenter(password_env, tmp_path: Path) -> None:
    port = closed_port()
    provider = provider_for(lab_spec(tmp_path, "t-vs-down", 22, f"127.0.0.1:{port}"))
    with pytest.raises(LabError) as caught:
        provider.preflight()
    assert one_line(caught.value) == (
        f"vCenter 127.0.0.1:{port} is unreachable: Connection refused; check vmware.vcenter and"
        " that vCenter runs")


def test_certificate_is_verified_by_default(vcsim, password_env, tmp_path: Path) -> None:
    provider = provider_for(lab_spec(tmp_path, "t-vs-tls", 23, vcsim.endpoint, insecure=False))
    with pytest.raises(LabError) as caught:
        provider.preflight()
    text = one_line(caught.value)
    # vcsim's built-in certificate has a 1024-bit key: OpenSSL itself refuses it.
    assert text.startswith(f"vCenter {vcsim.endpoint}: certificate refused (")
    assert "vmware.ca_file" in text and "--insecure" in text


def test_ca_file_verifies_a_real_certificate(tmp_path: Path, monkeypatch) -> None:
    ca, cert, key = make_ca_and_cert(tmp_path)
    monkeypatch.setenv("SWARMLAB_VSPHERE_PASSWORD", "any")
    sim = vcsim_process.start(tmp_path / "sim", tls=(cert, key))
    try:
        trusted = provider_for(lab_spec(tmp_path, "t-vs-ca", 24, sim.endpoint, insecure=False,
                                        ca_file=str(ca)))
        assert trusted.preflight()[0].startswith("vCenter VMware vCenter Server")
        trusted.close()
        untrusted = provider_for(lab_spec(tmp_path / "u", "t-vs-ca", 24, sim.endpoint,
                                          insecure=False))
        with pytest.raises(LabError, match=r"certificate refused \(.*(self-signed|issuer)"):
            untrusted.preflight()
    finally:
        sim.stop()


def test_bare_esxi_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SWARMLAB_VSPHERE_PASSWORD", "any")
    sim = vcsim_process.start(tmp_path / "sim", esx=True, template=None)
    try:
        provider = provider_for(lab_spec(tmp_path, "t-vs-esx", 25, sim.endpoint))
        with pytest.raises(LabError) as caught:
            provider.preflight()
        assert "(apiType HostAgent), not vCenter: cloning from templates needs vCenter" in (
            one_line(caught.value))
    finally:
        sim.stop()


# --- inventory: missing, ambiguous, not a template ------------------------------------
@pytest.mark.parametrize(("change", "message"), [
    ({"template": "nosuch"}, "vmware.template: no VM named 'nosuch' in DC0"),
    ({"datastore": "NoDS"}, "vmware.datastore: no datastore named 'NoDS' in DC0"),
    ({"datacenter": "DC9"}, "vmware.datacenter: no datacenter named 'DC9' in vCenter"),
    ({"network": "NoNet"}, "vmware.network: no network named 'NoNet' in DC0"),
    ({"cluster": "NoCluster"}, "vmware.cluster: no cluster named 'NoCluster' in DC0"),
    ({"cluster": None, "resource_pool": "Resources"},
     "vmware.resource_pool: 2 resource pools are named 'Resources' in DC0 (/DC0/host/DC0_C0/"),
    ({"template": "DC0_H0_VM0"}, "vmware.template: VM 'DC0_H0_VM0' is not a template"),
    ({"folder": "no/such/lab"}, "vmware.folder: the parent folder 'no' does not exist"),
])
def test_missing_or_ambiguous_objects(vcsim, password_env, tmp_path: Path, change: dict,
                                      message: str) -> None:
    provider = provider_for(lab_spec(tmp_path, "t-vs-inv", 26, vcsim.endpoint, **change))
    with pytest.raises(SpecError) as caught:
        provider.preflight()
    assert message in one_line(caught.value)


def test_two_templates_of_one_name(vcsim, password_env, service, cleanup, tmp_path: Path) -> None:
    other = datacenter(service).vmFolder.CreateFolder("t-vs-elsewhere")
    cleanup.append(other)
    cleanup.append(clone_plain(service, TEMPLATE, other))
    provider = provider_for(lab_spec(tmp_path, "t-vs-dup", 27, vcsim.endpoint))
    with pytest.raises(SpecError) as caught:
        provider.preflight()
    assert one_line(caught.value) == (
        f"lab file: vmware.template: 2 VMs are named '{TEMPLATE}' in DC0 (/DC0/vm/{TEMPLATE},"
        f" /DC0/vm/t-vs-elsewhere/{TEMPLATE}); rename one, swarmlab does not guess")


def test_template_without_tools_or_snapshot(vcsim, password_env, service, cleanup,
                                            tmp_path: Path) -> None:
    vm = clone_plain(service, "t-vs-bare", datacenter(service).vmFolder)
    cleanup.append(vm)
    vm.MarkAsTemplate()
    spec = lab_spec(tmp_path, "t-vs-bare", 28, vcsim.endpoint, template="t-vs-bare")
    with pytest.raises(SpecError, match=r"template 't-vs-bare' has no VMware Tools"
                                        r" \(toolsNotInstalled\)"):
        provider_for(spec).preflight()


def test_vm_name_taken_elsewhere(vcsim, password_env, service, cleanup, tmp_path: Path) -> None:
    cleanup.append(clone_plain(service, "t-vs-taken-worker1", datacenter(service).vmFolder))
    provider = provider_for(lab_spec(tmp_path, "t-vs-taken", 29, vcsim.endpoint))
    with pytest.raises(NodeError) as caught:
        provider.preflight()
    assert one_line(caught.value) == (
        "worker1: VM name t-vs-taken-worker1 is already taken by /DC0/vm/t-vs-taken-worker1;"
        " rename the lab (name:) or remove that VM")
    assert find_vms(service, "t-vs-taken-") and len(find_vms(service, "t-vs-taken-")) == 1


# --- tasks that fail, guests that stay silent -------------------------------------------
def test_failed_clone_is_reported_and_a_rerun_finishes(vcsim, password_env, no_ssh, service,
                                                       tmp_path: Path) -> None:
    # Real vCenter fails a clone whose name was taken after preflight with DuplicateName;
    # vcsim accepts duplicates and has no clean way to fail a clone, so that one answer of
    # real vCenter is put in its place for manager2. The other clones really happen.
    original = vim.VirtualMachine.__dict__["CloneVM_Task"]

    def clone_vm(self: Any, folder: Any, name: str, spec: Any) -> Any:
        if name == "t-vs-clone-manager2":
            raise vim.fault.DuplicateName(msg=f"The name '{name}' already exists.", name=name)
        return original.__get__(self, type(self))(folder=folder, name=name, spec=spec)

    spec = lab_spec(tmp_path, "t-vs-clone", 30, vcsim.endpoint)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(vim.VirtualMachine, "CloneVM_Task", clone_vm)
            with pytest.raises(NodeError) as caught:
                provider_for(spec).create()
        assert one_line(caught.value) == (
            f"manager2: clone of VM t-vs-clone-manager2 from template {TEMPLATE} failed:"
            " The name 't-vs-clone-manager2' already exists. (DuplicateName)")
        assert sorted(provider_for(spec).state.machines) == ["manager1", "worker1"]
        assert provider_for(spec).create() == {"manager1": "started", "manager2": "created",
                                               "worker1": "started"}
    finally:
        provider_for(spec).destroy()
    assert find_vms(service, "t-vs-clone-") == []


def test_task_errors_come_back_per_task_with_vsphere_words(vcsim, service) -> None:
    running_vms = {vm.name: vm.obj for vm in find_vms(service, "DC0_H0_VM")}
    seen: list[str] = []
    outcomes = run_tasks(
        service,
        {name: vm.PowerOnVM_Task for name, vm in running_vms.items()},  # already on: all fail
        bound=1, timeout=30, on_done=lambda outcome: seen.append(outcome.label),
    )
    assert sorted(seen) == sorted(running_vms) == ["DC0_H0_VM0", "DC0_H0_VM1"]
    for outcome in outcomes.values():
        assert outcome.error == "InvalidPowerState"
    first = running_vms["DC0_H0_VM0"]
    done = run_tasks(service,
                     {"no change": lambda: first.ReconfigVM_Task(spec=vim.vm.ConfigSpec())},
                     bound=4, timeout=30)
    assert done["no change"].ok


def test_failed_power_on_names_the_vm(vcsim, password_env, no_ssh, service,
                                      tmp_path: Path) -> None:
    spec = lab_spec(tmp_path, "t-vs-power", 31, vcsim.endpoint)
    provider = provider_for(spec)
    try:
        provider.create()
        vm = next(v.obj for v in find_vms(service, "t-vs-power-worker1"))
        wait_task(vm.PowerOffVM_Task())
        vm.MarkAsTemplate()  # a template cannot be powered on: vSphere says so
        with pytest.raises(NodeError) as caught:
            provider_for(spec).create()
        assert one_line(caught.value) == ("worker1: VM t-vs-power-worker1 did not power on:"
                                          " cannot powerOn a template (InvalidState)")
    finally:
        provider_for(spec).destroy()
    assert find_vms(service, "t-vs-power-") == []


def test_guest_without_address_times_out_and_down_cleans(vcsim, password_env, no_ssh, service,
                                                         tmp_path: Path) -> None:
    # Without simulator: true the customization stays in the clone spec only, which vcsim
    # ignores: the guests never report an address, as with a template lacking Tools.
    spec = lab_spec(tmp_path, "t-vs-silent", 32, vcsim.endpoint, simulator=False,
                    guest_timeout=2)
    try:
        with pytest.raises(NodeError) as caught:
            provider_for(spec).create()
        assert one_line(caught.value) == (
            "manager1: still waiting for the VMs' guest addresses after 2 s; last seen: VM"
            " t-vs-silent-manager1 reports no address, not 127.77.32.11 (power poweredOn, tools"
            " guestToolsNotRunning); 3 of 3 VMs still without theirs; check VMware Tools and"
            " customization in the template, or raise vmware.guest_timeout")
        assert sorted(provider_for(spec).state.machines) == ["manager1", "manager2", "worker1"]
    finally:
        removed = provider_for(spec).destroy()
    assert len(removed) == 4
    assert find_vms(service, "t-vs-silent-") == []


def test_unmarked_vm_in_the_lab_folder_is_not_taken_over(vcsim, password_env, no_ssh, service,
                                                         cleanup, tmp_path: Path) -> None:
    folder = datacenter(service).vmFolder.CreateFolder("swarmlab-t-vs-foreign")
    cleanup.append(folder)
    cleanup.append(clone_plain(service, "t-vs-foreign-manager1", folder))
    provider = provider_for(lab_spec(tmp_path, "t-vs-foreign", 33, vcsim.endpoint))
    with pytest.raises(NodeError, match="manager1: VM t-vs-foreign-manager1 in folder"
                                        " swarmlab-t-vs-foreign is not marked as this lab's"):
        provider.create()
    # lab.down leaves what is not the lab's: the VM, and so the folder holding it.
    assert provider.destroy() == []
    assert len(find_vms(service, "t-vs-foreign-manager1")) == 1


def test_guest_without_ssh_names_the_vm(vcsim, password_env, service, tmp_path: Path) -> None:
    # Loopback addresses: the scan for a host key stays on this machine, where no sshd
    # listens on port 22 of 127.77.34.0/24.
    spec = lab_spec(tmp_path, "t-vs-nossh", 34, vcsim.endpoint, guest_timeout=1)
    try:
        with pytest.raises(NodeError) as caught:
            provider_for(spec).create()
        text = one_line(caught.value)
        assert text.startswith("manager1: VM t-vs-nossh-manager1 has its address but no SSH host"
                               " key from 127.77.34.11:22 within 1 s")
        assert text.endswith("is sshd enabled in the template?")
    finally:
        provider_for(spec).destroy()
    assert find_vms(service, "t-vs-nossh-") == []


def test_students_remove_sibling_folders_in_parallel(vcsim, service) -> None:
    """Issue 14: a class's parallel teardown. Each student's thread, in a session of its own,
    finds its folder among its siblings and removes it while the others remove theirs; a
    look-up that read the children and then their names failed on a sibling gone between."""
    import threading

    from lab.vsphere import inventory

    content = service.RetrieveContent()
    dc = inventory.datacenter(content, "DC0")
    students = [f"s{i}" for i in range(30)]
    failures: list[str] = []
    for round_ in range(3):
        top = f"t-h6-race{round_}"
        parent = dc.vm_folder.CreateFolder(top)
        for name in students:
            parent.CreateFolder(name)

        def remove(names: list[str], top: str = top) -> None:
            si = vcsim.connect()
            try:
                mine = si.RetrieveContent()
                mine_dc = inventory.datacenter(mine, "DC0")
                for name in names:
                    try:
                        folder, _parent = inventory.folder_path(mine, mine_dc, [top, name])
                        assert folder is not None, f"{top}/{name} not found"
                        outcome = run_tasks(si, {name: folder.Destroy_Task}, bound=1,
                                            timeout=30)[name]
                        assert outcome.ok, outcome.error
                    except Exception as exc:  # each student's fault is counted, not fatal
                        failures.append(f"{top}/{name}: {type(exc).__name__}: {exc}")
            finally:
                from pyVim.connect import Disconnect

                Disconnect(si)

        threads = [threading.Thread(target=remove, args=(students[i::8],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        wait_task(parent.Destroy_Task())
    assert not failures, f"{len(failures)} of {3 * len(students)} removals failed: {failures[:3]}"


def test_a_starter_that_hangs_is_reported_at_the_bound(vcsim, service) -> None:
    """Issue 14: the task pool's exit waited, without a bound, for a call that starts a task
    and never returns (a vCenter that does not answer). The bound holds; the thread that
    still waits is released afterwards."""
    import threading
    import time

    vm = {found.name: found.obj for found in find_vms(service, "DC0_H0_VM")}["DC0_H0_VM0"]
    answer = threading.Event()

    def no_change() -> Any:
        return vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec())

    def hangs() -> Any:
        answer.wait(15)
        return no_change()

    start = time.monotonic()
    try:
        outcomes = run_tasks(service, {"manager1": hangs, "worker1": no_change}, bound=2,
                             timeout=1)
        seconds = time.monotonic() - start
    finally:
        answer.set()
    assert seconds < 5, f"run_tasks returned after {seconds:.1f} s"
    assert outcomes["worker1"].ok
    assert outcomes["manager1"].error == ("not started within 1 s: vCenter did not answer the"
                                          " call that starts it")
