"""The vmware provider: lab machines are VMs cloned from a template through vCenter.

Everything is found by name and must be unique (lab.vsphere.inventory). Clones go into the
lab's own folder and carry the lab's name in extraConfig (swarmlab.lab), so a rerun finds
them instead of cloning again and lab.down destroys those VMs and nothing else. Every VM
is recorded in the state file the moment its clone task succeeds.

Against govmomi's simulator (`simulator: true`) two things differ, both by explicit
setting: vcsim ignores CloneSpec.customization, so the same spec is applied with
CustomizeVM_Task before the first power-on; and with `simulator_container_image` each VM
is a real container of that image on the lab's own Docker network.
"""

from __future__ import annotations

import atexit
import functools
import http.client
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pyVmomi import vim, vmodl

from .. import hostkeys
from ..errors import LabError, NodeError, SpecError
from ..spec import LabSpec, NodeSpec
from ..state import LabState
from ..vsphere import clone, guest, inventory, simulator
from ..vsphere.connection import connect, disconnect, fault_text, resolve_password
from ..vsphere.settings import VSphereSettings, parse_settings
from ..vsphere.tasks import TaskOutcome, run_tasks
from .base import MachineStatus, Provider

VM_PATHS = ["config.extraConfig", "runtime.powerState", "guest.ipAddress"]
TASK_TIMEOUT = 1800  # a full clone of a large template on a busy datastore takes long
# The fix for VXLAN (overlay) TCP hanging on vmxnet3 NICs while ping works (moby 41775):
# turn off tx checksum offload now, and by a udev rule at every boot and NIC hot-plug.
VMXNET3_RULE = (
    'ACTION=="add", SUBSYSTEM=="net", DRIVERS=="vmxnet3",'
    ' RUN+="/usr/sbin/ethtool -K $name tx-checksum-ip-generic off"'
)


F = TypeVar("F", bound=Callable[..., Any])


def vsphere_errors(operation: str) -> Callable[[F], F]:
    """Faults nobody planned for (a permission missing, vCenter going away mid-run) become one
    line naming vCenter and the operation; the state file already holds what was made."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def run(self: VMwareProvider, *args: Any, **kwargs: Any) -> Any:
            endpoint = self.settings.endpoint
            try:
                return method(self, *args, **kwargs)
            except LabError:
                raise
            except vmodl.MethodFault as exc:
                raise LabError(
                    f"vCenter {endpoint}: {operation} failed: {fault_text(exc)}"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                self._service = None  # never reuse a session whose connection broke
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                raise LabError(
                    f"vCenter {endpoint}: the connection broke during {operation} ({reason});"
                    " what was made is recorded: rerun the command to finish the job"
                ) from None

        return run  # type: ignore[return-value]

    return wrap


class VMwareProvider(Provider):
    name = "vmware"
    can_snapshot = True

    def __init__(self, spec: LabSpec, state: LabState, log: Any = print):
        super().__init__(spec, state, log)
        self.settings: VSphereSettings = parse_settings(spec)
        self._service: Any = None
        self._docker: Any = None

    @property  # type: ignore[override]
    def owns_clock(self) -> bool:
        # Container-backed simulator VMs share the host's clock (and may not set it).
        return self.settings.simulator_container_image is None

    # --- connection ----------------------------------------------------------------------
    @property
    def service(self) -> Any:
        """The vCenter session, opened on first use: lab.ssh and lab.exec never need one."""
        if self._service is None:
            self._service = connect(self.settings, resolve_password(self.settings))
            atexit.register(self.close)
        return self._service

    @property
    def content(self) -> Any:
        return self.service.RetrieveContent()

    def close(self) -> None:
        if self._service is not None:
            service, self._service = self._service, None
            disconnect(service)

    @property
    def docker(self) -> Any:
        if self._docker is None:
            from .local import docker_client

            self._docker = docker_client()
        return self._docker

    def vm_name(self, node: NodeSpec) -> str:
        return f"{self.spec.name}-{node.name}"

    # --- finding things ----------------------------------------------------------------
    def _placement(self, content: Any, dc: inventory.Datacenter) -> clone.Placement:
        s = self.settings
        pool = self._pool(content, dc)
        datastore = inventory.one(
            content, inventory.by_name(content, dc.datastore_folder, vim.Datastore, s.datastore),
            what="datastore", name=s.datastore, field="datastore", where=dc.name,
        )
        network = inventory.one(
            content, inventory.by_name(content, dc.network_folder, vim.Network, s.network),
            what="network", name=s.network, field="network", where=dc.name,
        )
        template = inventory.one(
            content,
            inventory.by_name(content, dc.vm_folder, vim.VirtualMachine, s.template, [
                "config.template", "config.hardware.device", "guest.toolsStatus",
                "guest.toolsVersionStatus2", "snapshot",
            ]),
            what="VM", name=s.template, field="template", where=dc.name,
        )
        self._check_template(template)
        nic = next(
            (d for d in template.props["config.hardware.device"]
             if isinstance(d, vim.vm.device.VirtualEthernetCard)),
            None,
        )
        if nic is None:
            raise SpecError(
                f"lab file: vmware.template: template {s.template!r} has no network adapter;"
                " add one to the template"
            )
        snapshot = None
        if s.linked_clone:
            snapshot = getattr(template.props.get("snapshot"), "currentSnapshot", None)
            if snapshot is None:
                raise SpecError(
                    f"lab file: vmware.linked_clone: template {s.template!r} has no snapshot to"
                    " link clones to; take one of the template or set linked_clone: false"
                )
        folder, _parent = inventory.folder_path(content, dc, s.folder)
        return clone.Placement(
            folder=folder, pool=pool, datastore=datastore.obj, template=template.obj,
            template_nic=nic,
            network_backing=self._backing(content, network.obj, s.network),
            snapshot=snapshot,
        )

    def _pool(self, content: Any, dc: inventory.Datacenter) -> Any:
        s = self.settings
        if s.cluster is None:
            return inventory.one(
                content,
                inventory.by_name(content, dc.host_folder, vim.ResourcePool, s.resource_pool or ""),
                what="resource pool", name=s.resource_pool or "", field="resource_pool",
                where=dc.name,
            ).obj
        cluster = inventory.one(
            content,
            inventory.by_name(content, dc.host_folder, vim.ClusterComputeResource, s.cluster,
                              ["resourcePool"]),
            what="cluster", name=s.cluster, field="cluster", where=dc.name,
        )
        root = cluster.props["resourcePool"]
        if s.resource_pool is None:
            return root
        pools = inventory.by_name(content, root, vim.ResourcePool, s.resource_pool)
        pools += [f for f in inventory.retrieve(content, [root], vim.ResourcePool, ["name"])
                  if f.name == s.resource_pool]
        return inventory.one(
            content, pools, what="resource pool", name=s.resource_pool, field="resource_pool",
            where=f"cluster {s.cluster}",
        ).obj

    def _check_template(self, template: inventory.Found) -> None:
        name = self.settings.template
        if not template.props.get("config.template"):
            raise SpecError(
                f"lab file: vmware.template: VM {name!r} is not a template; convert it to a"
                " template or name one"
            )
        tools = (template.props.get("guest.toolsVersionStatus2"),
                 template.props.get("guest.toolsStatus"))
        if "guestToolsNotInstalled" in tools or "toolsNotInstalled" in tools:
            raise SpecError(
                f"lab file: vmware.template: template {name!r} has no VMware Tools"
                " (toolsNotInstalled); guest customization needs open-vm-tools (and perl or"
                " cloud-init) in the template"
            )

    @staticmethod
    def _backing(content: Any, network: Any, name: str) -> Any:
        if isinstance(network, vim.dvs.DistributedVirtualPortgroup):
            found = inventory.retrieve(content, [network], vim.dvs.DistributedVirtualPortgroup,
                                       ["key", "config.distributedVirtualSwitch"])[0]
            switch = found.props["config.distributedVirtualSwitch"]
            uuid = inventory.retrieve(content, [switch], vim.DistributedVirtualSwitch, ["uuid"])
            return clone.network_backing(network, {**found.props, "name": name},
                                         uuid[0].props.get("uuid") if uuid else None)
        return clone.network_backing(network, {"name": name}, None)

    def _datacenter(self, content: Any) -> inventory.Datacenter:
        return inventory.datacenter(content, self.settings.datacenter)

    def _lab_vms(self, content: Any, dc: inventory.Datacenter, *,
                 strict: bool = False) -> dict[str, inventory.Found]:
        """node -> its VM: found by name in the lab's folder, and carrying the lab's mark.

        A VM of a node's name elsewhere in the datacenter, or unmarked, is somebody else's.
        `strict` (before making VMs) makes that an error rather than a second VM of the same
        name later; otherwise (status, down) such VMs are simply not the lab's.
        """
        folder, _parent = inventory.folder_path(content, dc, self.settings.folder)
        mine = inventory.vms_in(content, folder, VM_PATHS) if folder is not None else []
        wanted = {self.vm_name(node): node.name for node in self.spec.nodes}
        found: dict[str, inventory.Found] = {}
        for vm in mine:
            node = wanted.get(vm.name)
            if node is None:
                continue
            mark = inventory.extra_config(vm)
            if mark.get(clone.MARK_LAB) != self.spec.name or mark.get(clone.MARK_NODE) != node:
                if not strict:
                    continue
                raise NodeError(
                    node,
                    f"VM {vm.name} in folder {self.settings.folder_path} is not marked as this"
                    f" lab's ({clone.MARK_LAB}={mark.get(clone.MARK_LAB)!r}); rename the lab or"
                    " remove that VM yourself",
                )
            if node in found:
                raise NodeError(node, f"two VMs named {vm.name} in folder"
                                f" {self.settings.folder_path}; remove one")
            found[node] = vm
        if not strict:
            return found
        elsewhere = [
            vm for vm in inventory.contained(content, dc.vm_folder, vim.VirtualMachine, ["name"])
            if vm.name in wanted and all(vm.obj != m.obj for m in found.values())
        ]
        if elsewhere:
            vm = elsewhere[0]
            raise NodeError(
                wanted[vm.name],
                f"VM name {vm.name} is already taken by"
                f" {inventory.inventory_path(content, vm.obj)}; rename the lab (name:) or remove"
                " that VM",
            )
        return found

    # --- preflight -----------------------------------------------------------------------
    @vsphere_errors("preflight")
    def preflight(self) -> list[str]:
        s = self.settings
        content = self.content
        about = content.about
        if about.apiType != "VirtualCenter":
            raise LabError(
                f"{s.endpoint} is {about.fullName} (apiType {about.apiType}), not vCenter:"
                " cloning from templates needs vCenter; point vmware.vcenter at one"
            )
        dc = self._datacenter(content)
        placement = self._placement(content, dc)
        existing = self._lab_vms(content, dc, strict=True)
        lines = [
            f"vCenter {about.fullName} at {s.endpoint}"
            + (" (certificate not verified: --insecure)" if s.insecure else ""),
            f"template {s.template}: "
            + ("linked clones from its current snapshot" if placement.snapshot else "full clones"),
            f"folder {s.folder_path}: {len(existing)} of {len(self.spec.nodes)} VMs exist",
        ]
        if s.simulator_container_image:
            simulator.check_image(self.docker, s.simulator_container_image)
            self._check_subnet()
            lines.append(f"simulator: VMs are containers of {s.simulator_container_image}")
        return lines

    def _check_subnet(self) -> None:
        import ipaddress

        from .local import host_routes

        name = simulator.network_name(self.spec)
        if any(n.name == name for n in self.docker.networks.list(names=[name])):
            return
        subnet = ipaddress.IPv4Network(self.spec.subnet)
        for route, dev in host_routes():
            if route.overlaps(subnet):
                raise SpecError(
                    f"lab file: subnet {subnet} overlaps the host's route {route} on {dev};"
                    " pick a free range"
                )

    # --- create --------------------------------------------------------------------------
    @vsphere_errors("create")
    def create(self) -> dict[str, str]:
        content = self.content
        dc = self._datacenter(content)
        placement = self._placement(content, dc)
        placement.folder = self._ensure_folder(content, dc, placement.folder)
        existing = self._lab_vms(content, dc, strict=True)
        extra = self._simulator_setup()
        results: dict[str, str] = {}
        vms: dict[str, Any] = {}
        power_on: list[str] = []
        for node in self.spec.nodes:
            found = existing.get(node.name)
            if found is None:
                continue
            vms[node.name] = found.obj
            self.state.record_machine(node.name, vm=found.name, moref=found.obj._moId,
                                      address=node.address)
            if found.props.get("runtime.powerState") == "poweredOn":
                results[node.name] = "ok"
            else:
                power_on.append(node.name)
                results[node.name] = "started"
        missing = [node for node in self.spec.nodes if node.name not in existing]
        if missing:
            vms.update(self._clone(placement, missing, extra))
            for node in missing:
                results[node.name] = "created"
                power_on.append(node.name)
        if self.settings.simulator:
            # Clones a failed run left powered off were never customized either.
            pending = [n for n in power_on if not self.state.machines[n].get("customized")]
            self._customize_in_simulator({node: vms[node] for node in pending})
        started_at = self.service.CurrentTime()
        self._power_on({name: vms[name] for name in power_on})
        self.log(f"    waiting for guest addresses of {len(vms)} VMs"
                 f" (up to {self.settings.guest_timeout} s)")
        guest.wait_for_addresses(
            content,
            {node.name: (vms[node.name], node.address) for node in self.spec.nodes},
            timeout=self.settings.guest_timeout, log=self.log, since=started_at,
        )
        # Trust on first use: new clones always, and any node a failed run left unpinned.
        self._pin_host_keys([node for node in self.spec.nodes
                             if results[node.name] == "created" or not self._pinned(node)])
        return results

    def _ensure_folder(self, content: Any, dc: inventory.Datacenter, folder: Any) -> Any:
        path = self.settings.folder_path
        if folder is not None:
            if "folder" not in self.state.resources:
                self.state.record_resource("folder", {"path": path, "created": False})
            return folder
        _none, parent = inventory.folder_path(content, dc, self.settings.folder)
        try:
            folder = parent.CreateFolder(self.settings.folder[-1])
        except vmodl.MethodFault as exc:
            raise LabError(f"cannot create VM folder {path}: {fault_text(exc)}") from None
        self.state.record_resource("folder", {"path": path, "created": True})
        self.log(f"    created VM folder {path}")
        return folder

    def _simulator_setup(self) -> dict[str, dict[str, str]]:
        """Per node: extraConfig for a container-backed simulator VM (empty otherwise)."""
        image = self.settings.simulator_container_image
        if image is None:
            return {node.name: {} for node in self.spec.nodes}
        _network, made = simulator.ensure_network(self.docker, self.spec)
        if made:
            self.state.record_resource("docker_network", simulator.network_name(self.spec))
        keys = simulator.authorized_keys(self.lab_dir, self.spec.name)
        return {node.name: simulator.extra_config(self.spec, node, image, keys)
                for node in self.spec.nodes}

    def _clone(self, placement: clone.Placement, nodes: list[NodeSpec],
               extra: dict[str, dict[str, str]]) -> dict[str, Any]:
        specs = {
            node.name: clone.clone_spec(self.settings, placement, lab=self.spec.name,
                                        node=node.name, extra_config=extra[node.name])
            for node in nodes
        }
        by_name = {node.name: node for node in nodes}

        def starter(node: NodeSpec) -> Any:
            return lambda: placement.template.CloneVM_Task(
                folder=placement.folder, name=self.vm_name(node), spec=specs[node.name])

        def record(outcome: TaskOutcome) -> None:
            if outcome.ok:
                node = by_name[outcome.label]
                self.state.record_machine(
                    node.name, vm=self.vm_name(node), moref=outcome.result._moId,
                    address=node.address, created=time.time(), template=self.settings.template,
                )
                self.log(f"    cloned {self.vm_name(node)}")

        self.log(f"    cloning {len(nodes)} VMs from {self.settings.template}"
                 f" ({self.settings.parallel} at a time)")
        outcomes = run_tasks(self.service, {node.name: starter(node) for node in nodes},
                             bound=self.settings.parallel, timeout=TASK_TIMEOUT, on_done=record)
        self._raise_failed(outcomes, lambda node: f"clone of VM {self.vm_name(by_name[node])}"
                           f" from template {self.settings.template} failed")
        return {node: outcome.result for node, outcome in outcomes.items()}

    def _customize_in_simulator(self, vms: dict[str, Any]) -> None:
        if not vms:
            return
        s = self.settings

        def record(outcome: TaskOutcome) -> None:
            if outcome.ok:
                self.state.record_machine(outcome.label, customized=True)

        outcomes = run_tasks(
            self.service,
            {node: (lambda vm=vm, node=node: vm.CustomizeVM_Task(
                spec=clone.customization(node, s.networks[node], s.domain)))
             for node, vm in vms.items()},
            bound=s.parallel, timeout=TASK_TIMEOUT, on_done=record,
        )
        self._raise_failed(outcomes, lambda node: f"customization of VM {self._name_of(node)}"
                           " failed")

    def _power_on(self, vms: dict[str, Any]) -> None:
        if not vms:
            return
        outcomes = run_tasks(
            self.service, {node: vm.PowerOnVM_Task for node, vm in vms.items()},
            bound=self.settings.parallel, timeout=TASK_TIMEOUT,
        )
        self._raise_failed(outcomes, lambda node: f"VM {self._name_of(node)} did not power on")

    def _name_of(self, node: str) -> str:
        return self.vm_name(self.spec.node(node))

    @staticmethod
    def _raise_failed(outcomes: dict[str, TaskOutcome], what: Any) -> None:
        failed = [o for o in outcomes.values() if not o.ok]
        if failed:
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise NodeError(failed[0].label, f"{what(failed[0].label)}: {failed[0].error}{more}")

    def _pinned(self, node: NodeSpec) -> bool:
        entry = hostkeys.host_entry(node.address, 22)
        lines = hostkeys.known_hosts_path(self.lab_dir).read_text().splitlines()
        return any(line.split()[:1] == [entry] for line in lines)

    def _pin_host_keys(self, nodes: list[NodeSpec]) -> None:
        """Trust on first use, right after creation: the key each new guest shows now."""
        if not nodes:
            return
        timeout = self.settings.guest_timeout

        def scan(node: NodeSpec) -> str:
            try:
                return hostkeys.scan(node.address, 22, timeout)
            except LabError as exc:
                raise NodeError(node.name, f"VM {self.vm_name(node)} has its address but {exc};"
                                " is sshd enabled in the template?") from None

        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            keys = list(pool.map(scan, nodes))
        for node, key in zip(nodes, keys, strict=True):
            hostkeys.pin(self.lab_dir, node.address, 22, key)

    # --- status / destroy -------------------------------------------------------------
    @vsphere_errors("status")
    def status(self) -> list[MachineStatus]:
        content = self.content
        vms = self._lab_vms(content, self._datacenter(content))
        found: list[MachineStatus] = []
        for node in self.spec.nodes:
            vm = vms.get(node.name)
            if vm is None:
                found.append(MachineStatus(node.name, exists=False, running=False, power="absent"))
                continue
            power = str(vm.props.get("runtime.powerState", "unknown"))
            found.append(MachineStatus(
                node.name, exists=True, running=power == "poweredOn",
                address=vm.props.get("guest.ipAddress") or None, power=power,
                detail={"vm": vm.name, "moref": vm.obj._moId},
            ))
        return found

    @vsphere_errors("destroy")
    def destroy(self) -> list[str]:
        content = self.content
        dc = self._datacenter(content)
        vms = self._lab_vms(content, dc)
        removed: list[str] = []
        running = {n: vm.obj for n, vm in vms.items()
                   if vm.props.get("runtime.powerState") != "poweredOff"}
        if running:
            outcomes = run_tasks(
                self.service, {n: vm.PowerOffVM_Task for n, vm in running.items()},
                bound=self.settings.parallel, timeout=TASK_TIMEOUT,
            )
            self._raise_failed(outcomes, lambda node: f"VM {self._name_of(node)} did not power off")

        def forget(outcome: TaskOutcome) -> None:
            if outcome.ok:
                node = self.spec.node(outcome.label)
                self.state.forget_machine(node.name)
                hostkeys.unpin(self.lab_dir, node.address, 22)
                removed.append(f"VM {self.vm_name(node)}")

        outcomes = run_tasks(self.service, {n: vm.obj.Destroy_Task for n, vm in vms.items()},
                             bound=self.settings.parallel, timeout=TASK_TIMEOUT, on_done=forget)
        self._raise_failed(outcomes, lambda node: f"VM {self._name_of(node)} was not destroyed")
        for node in self.spec.nodes:
            if node.name not in vms:
                self.state.forget_machine(node.name)
        removed += self._remove_folder(content, dc)
        if self.state.resources.get("docker_network") or self.settings.simulator_container_image:
            removed += simulator.remove_network(self.docker, self.spec)
            self.state.forget_resource("docker_network")
        return removed

    def _remove_folder(self, content: Any, dc: inventory.Datacenter) -> list[str]:
        """The lab's folder goes only if this lab made it and nothing else is in it."""
        record = self.state.resources.get("folder") or {}
        folder, _parent = inventory.folder_path(content, dc, self.settings.folder)
        if folder is None:
            self.state.forget_resource("folder")
            return []
        path = self.settings.folder_path
        if not record.get("created"):
            self.log(f"    kept VM folder {path}: this lab did not make it")
            return []
        children = inventory.retrieve(content, [folder], vim.Folder, ["childEntity"])
        if children and children[0].props.get("childEntity"):
            self.log(f"    kept VM folder {path}: it holds objects that are not this lab's")
            return []
        outcomes = run_tasks(self.service, {"folder": folder.Destroy_Task}, bound=1,
                             timeout=TASK_TIMEOUT)
        if not outcomes["folder"].ok:
            raise LabError(f"VM folder {path} was not removed: {outcomes['folder'].error}")
        self.state.forget_resource("folder")
        return [f"VM folder {path}"]

    # --- snapshots ---------------------------------------------------------------------
    def _all_vms(self) -> dict[str, Any]:
        content = self.content
        vms = self._lab_vms(content, self._datacenter(content))
        absent = [node.name for node in self.spec.nodes if node.name not in vms]
        if absent:
            raise NodeError(absent[0], "its VM does not exist; run `invoke lab.up` first")
        return {node: vm.obj for node, vm in vms.items()}

    def _snapshots(self, vms: dict[str, Any]) -> dict[str, list[tuple[str, Any, Any]]]:
        """node -> [(name, snapshot, created)] in tree order (oldest first)."""
        found = inventory.retrieve(self.content, vms.values(), vim.VirtualMachine, ["snapshot"])
        trees = {item.obj._moId: item.props.get("snapshot") for item in found}
        result: dict[str, list[tuple[str, Any, Any]]] = {}
        for node, vm in vms.items():
            flat: list[tuple[str, Any, Any]] = []
            stack = list(getattr(trees.get(vm._moId), "rootSnapshotList", []) or [])
            while stack:
                tree = stack.pop(0)
                flat.append((tree.name, tree.snapshot, tree.createTime))
                stack = list(tree.childSnapshotList or []) + stack
            result[node] = flat
        return result

    @vsphere_errors("snapshot")
    def snapshot(self, name: str) -> None:
        vms = self._all_vms()
        stale = {f"{node}/{index}": snap for node, snaps in self._snapshots(vms).items()
                 for index, (snap_name, snap, _created) in enumerate(snaps) if snap_name == name}
        if stale:
            # Taking a snapshot again replaces it, so lab.snapshot NAME can be rerun.
            outcomes = run_tasks(
                self.service,
                {label: (lambda s=snap: s.RemoveSnapshot_Task(removeChildren=False))
                 for label, snap in stale.items()},
                bound=self.settings.parallel, timeout=TASK_TIMEOUT,
            )
            self._raise_failed(outcomes, lambda label: f"old snapshot {name} was not removed")
        powered = {item.obj._moId: item.props.get("runtime.powerState")
                   for item in inventory.retrieve(self.content, vms.values(), vim.VirtualMachine,
                                                  ["runtime.powerState"])}
        outcomes = run_tasks(
            self.service,
            {node: (lambda vm=vm: vm.CreateSnapshot_Task(
                name=name, description=f"swarmlab {self.spec.name}",
                memory=self.settings.snapshot_memory and powered[vm._moId] == "poweredOn",
                quiesce=False))
             for node, vm in vms.items()},
            bound=self.settings.parallel, timeout=TASK_TIMEOUT,
        )
        self._raise_failed(outcomes, lambda node: f"snapshot {name} of VM {self._name_of(node)}"
                           " failed")

    @vsphere_errors("listing snapshots")
    def list_snapshots(self) -> list[str]:
        vms = self._all_vms()
        per_node = self._snapshots(vms)
        first = per_node[self.spec.nodes[0].name]
        everywhere = set.intersection(*({n for n, _s, _c in snaps} for snaps in per_node.values()))
        ordered = sorted((created, name) for name, _s, created in first if name in everywhere)
        return list(dict.fromkeys(name for _created, name in ordered))

    @vsphere_errors("revert")
    def revert(self, name: str) -> None:
        vms = self._all_vms()
        targets: dict[str, Any] = {}
        for node, snaps in self._snapshots(vms).items():
            matches = [snap for snap_name, snap, _c in snaps if snap_name == name]
            if not matches:
                have = ", ".join(n for n, _s, _c in snaps) or "none"
                raise NodeError(node, f"VM {self._name_of(node)} has no snapshot {name!r}"
                                f" (it has: {have})")
            targets[node] = matches[-1]
        outcomes = run_tasks(
            self.service, {node: snap.RevertToSnapshot_Task for node, snap in targets.items()},
            bound=self.settings.parallel, timeout=TASK_TIMEOUT,
        )
        self._raise_failed(outcomes, lambda node: f"revert of VM {self._name_of(node)} to"
                           f" {name} failed")
        # A snapshot without memory reverts to powered off: power those on again.
        states = inventory.retrieve(self.content, vms.values(), vim.VirtualMachine,
                                    ["runtime.powerState"])
        off = {item.obj._moId for item in states if item.props.get("runtime.powerState")
               != "poweredOn"}
        since = self.service.CurrentTime()
        self._power_on({node: vm for node, vm in vms.items() if vm._moId in off})
        guest.wait_for_addresses(
            self.content, {node.name: (vms[node.name], node.address) for node in self.spec.nodes},
            timeout=self.settings.guest_timeout, log=self.log, since=since,
        )

    def node_setup_commands(self, node: NodeSpec) -> list[str]:
        installer = "apt-get install -y ethtool" if self.spec.os_family == "debian" \
            else "dnf install -y ethtool || yum install -y ethtool"
        rules = "/etc/udev/rules.d/70-swarmlab-vmxnet3.rules"
        return ["\n".join([
            "set -e",
            "mkdir -p /etc/udev/rules.d",
            f"printf '%s\\n' '{VMXNET3_RULE}' > {rules}.tmp",
            f"mv {rules}.tmp {rules}",
            "for dev in /sys/class/net/*; do",
            '  driver=$(basename "$(readlink -f "$dev/device/driver" 2>/dev/null)")',
            '  [ "$driver" = vmxnet3 ] || continue',
            f"  command -v ethtool >/dev/null || {{ {installer}; }} >/dev/null",
            '  ethtool -K "${dev##*/}" tx-checksum-ip-generic off',
            "done",
        ])]
