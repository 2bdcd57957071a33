"""The clone spec of one node: placement, linked or full disks, NIC, marks, customization.

Hostname and fixed address go into the clone spec's customization, so vCenter applies them
through VMware Tools at first boot. The template's NIC is edited to the lab's network with
startConnected set: customization fails on a NIC that comes up disconnected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyVmomi import vim

from .settings import NodeNetwork, VSphereSettings

# Every VM of a lab carries these extraConfig keys: they survive renames and moves, and
# lab.down only ever destroys VMs whose mark names the lab.
MARK_LAB = "swarmlab.lab"
MARK_NODE = "swarmlab.node"


@dataclass
class Placement:
    """Where clones go and what they start from, found once per run."""

    folder: Any
    pool: Any
    datastore: Any
    template: Any
    template_nic: Any  # the template's first ethernet card
    network_backing: Any  # the backing that attaches a NIC to `network`
    snapshot: Any | None  # the template's current snapshot, for linked clones


def network_backing(network: Any, props: dict[str, Any], switch_uuid: str | None) -> Any:
    """NIC backing for a standard port group or a distributed port group."""
    if isinstance(network, vim.dvs.DistributedVirtualPortgroup):
        return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(
            port=vim.dvs.PortConnection(portgroupKey=props["key"], switchUuid=switch_uuid)
        )
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(
        deviceName=props["name"], network=network
    )


def customization(node: str, net: NodeNetwork, domain: str) -> Any:
    """Linux guest customization: the node's host name and its fixed address."""
    adapter = vim.vm.customization.IPSettings(
        ip=vim.vm.customization.FixedIp(ipAddress=net.address),
        subnetMask=net.netmask,
        gateway=[net.gateway] if net.gateway else [],
        dnsServerList=list(net.dns),
    )
    return vim.vm.customization.Specification(
        identity=vim.vm.customization.LinuxPrep(
            hostName=vim.vm.customization.FixedName(name=node),
            domain=domain,
            hwClockUTC=True,
        ),
        globalIPSettings=vim.vm.customization.GlobalIPSettings(
            dnsServerList=list(net.dns), dnsSuffixList=[domain]
        ),
        nicSettingMap=[vim.vm.customization.AdapterMapping(adapter=adapter)],
    )


def marks(lab: str, node: str) -> dict[str, str]:
    return {MARK_LAB: lab, MARK_NODE: node}


def clone_spec(
    settings: VSphereSettings,
    placement: Placement,
    *,
    lab: str,
    node: str,
    extra_config: dict[str, str],
) -> Any:
    nic = placement.template_nic
    nic.backing = placement.network_backing
    nic.connectable = vim.vm.device.VirtualDevice.ConnectInfo(
        startConnected=True, connected=True, allowGuestControl=True
    )
    config = vim.vm.ConfigSpec(
        numCPUs=settings.cpus,
        memoryMB=settings.memory_mb,
        annotation=f"swarmlab lab {lab}, node {node}; remove with `invoke lab.down`",
        extraConfig=[
            vim.option.OptionValue(key=key, value=value)
            for key, value in {**marks(lab, node), **extra_config}.items()
        ],
        deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="edit", device=nic)],
    )
    relocate = vim.vm.RelocateSpec(pool=placement.pool, datastore=placement.datastore)
    if settings.linked_clone:
        relocate.diskMoveType = "createNewChildDiskBacking"
    return vim.vm.CloneSpec(
        location=relocate,
        template=False,
        # vcsim ignores powerOn, and an explicit power-on task reports its own fault.
        powerOn=False,
        config=config,
        customization=customization(node, settings.networks[node], settings.domain),
        snapshot=placement.snapshot if settings.linked_clone else None,
    )
