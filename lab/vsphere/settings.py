"""The lab file's `vmware` section, validated into plain data with one-line errors.

The password is deliberately not a field: it comes from the environment variable named by
`password_env` or from a prompt, so that a lab file can be shared or committed safely.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import fields
from ..errors import SpecError
from ..spec import LabSpec

DEFAULT_PASSWORD_ENV = "SWARMLAB_VSPHERE_PASSWORD"
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOST_RE = re.compile(r"^[A-Za-z0-9.-]+$")
# vSphere inventory names may hold almost anything, but a '/' separates folder levels here.
OBJECT_NAME_RE = re.compile(r"^[^/\n]{1,80}$")
DOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class NodeNetwork:
    """What guest customization writes into one node: its fixed address and neighbours."""

    address: str
    netmask: str
    gateway: str | None
    dns: tuple[str, ...]


@dataclass(frozen=True)
class VSphereSettings:
    host: str
    port: int
    user: str
    password_env: str
    insecure: bool
    ca_file: str | None
    datacenter: str
    cluster: str | None
    resource_pool: str | None
    datastore: str
    network: str
    folder: tuple[str, ...]  # path below the datacenter's VM folder; the last level is the lab's
    template: str
    linked_clone: bool
    cpus: int
    memory_mb: int
    domain: str
    parallel: int
    guest_timeout: int
    snapshot_memory: bool
    simulator: bool
    simulator_container_image: str | None
    networks: dict[str, NodeNetwork] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def folder_path(self) -> str:
        return "/".join(self.folder)


ALLOWED = (
    "vcenter", "user", "password_env", "insecure", "ca_file", "datacenter", "cluster",
    "resource_pool", "datastore", "network", "folder", "template", "linked_clone", "cpus",
    "memory_mb", "netmask", "gateway", "dns", "domain", "nodes", "parallel", "guest_timeout",
    "snapshot_memory", "simulator", "simulator_container_image",
)
NODE_FIELDS = ("netmask", "gateway", "dns")


def _where(key: str) -> str:
    return f"lab file: vmware.{key}"


def _text(raw: dict[str, Any], key: str, *, required: bool, default: str | None = None,
          pattern: re.Pattern[str] = OBJECT_NAME_RE, what: str = "a name") -> str | None:
    value = raw.get(key, default)
    if value is None:
        if required:
            raise SpecError(f"{_where(key)} is missing; give {what}")
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise fields.fault(_where(key), value, what)
    return value


def _bool(raw: dict[str, Any], key: str, default: bool) -> bool:
    return fields.flag(_where(key), raw.get(key, default))


def _int(raw: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    return fields.whole(_where(key), raw.get(key, default), low, high)


def _address(key: str, value: Any) -> str:
    return str(fields.ipv4_address(_where(key), value))


def _netmask(key: str, value: Any) -> str:
    try:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{value}").netmask)
    except ValueError:
        raise fields.fault(_where(key), value, "a netmask such as 255.255.255.0") from None


def _dns(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise fields.fault(_where(key), value, "a list of IPv4 addresses")
    return tuple(_address(f"{key}[{index}]", item) for index, item in enumerate(value))


def _vcenter(raw: dict[str, Any]) -> tuple[str, int]:
    value = raw.get("vcenter")
    what = "the vCenter host name or address, optionally with :port"
    if value is None:
        raise SpecError(f"{_where('vcenter')} is missing; give {what}")
    host, _, port = str(value).partition(":")
    if not HOST_RE.match(host) or (port and not port.isdigit()):
        raise fields.fault(_where("vcenter"), value, what)
    number = int(port) if port else 443
    if not 1 <= number <= 65535:
        raise SpecError(f"{_where('vcenter')} port {number} is out of range 1-65535")
    return host, number


def _folder(raw: dict[str, Any], lab: str) -> tuple[str, ...]:
    value = raw.get("folder", f"swarmlab-{lab}")
    parts = tuple(value.strip("/").split("/")) if isinstance(value, str) else ()
    if not parts or not all(OBJECT_NAME_RE.match(p) and p.strip() == p for p in parts):
        raise SpecError(
            f"{_where('folder')} is {value!r}; allowed: a folder path such as labs/{lab}"
            " below the datacenter's VM folder (the last level is the lab's own)"
        )
    return parts


def _networks(raw: dict[str, Any], spec: LabSpec) -> dict[str, NodeNetwork]:
    subnet = ipaddress.IPv4Network(spec.subnet)
    netmask = _netmask("netmask", raw.get("netmask", str(subnet.netmask)))
    gateway = raw.get("gateway", str(next(subnet.hosts())))
    base_gateway = _address("gateway", gateway) if gateway is not None else None
    base_dns = _dns("dns", raw.get("dns", []))
    per_node = fields.mapping(_where("nodes"), raw.get("nodes", {}) or {},
                              what="a mapping of node names to {netmask, gateway, dns}")
    names = {node.name for node in spec.nodes}
    for name, entry in per_node.items():
        if name not in names:
            raise SpecError(
                f"{fields.member(_where('nodes'), name)} names no node of the lab; nodes are: "
                + ", ".join(sorted(names))
            )
        if not isinstance(entry, dict) or set(entry) - set(NODE_FIELDS):
            raise fields.fault(fields.member(_where("nodes"), name), entry,
                               "a mapping of " + ", ".join(NODE_FIELDS))
    networks: dict[str, NodeNetwork] = {}
    for node in spec.nodes:
        entry = per_node.get(node.name, {})
        where = f"nodes.{node.name}"
        networks[node.name] = NodeNetwork(
            address=node.address,
            netmask=_netmask(f"{where}.netmask", entry["netmask"]) if "netmask" in entry
            else netmask,
            gateway=_address(f"{where}.gateway", entry["gateway"]) if entry.get("gateway")
            else base_gateway,
            dns=_dns(f"{where}.dns", entry["dns"]) if "dns" in entry else base_dns,
        )
    return networks


def parse_settings(spec: LabSpec) -> VSphereSettings:
    """Validate spec.provider_settings (the `vmware` section); raise SpecError naming the field."""
    raw = fields.mapping("lab file: vmware", spec.provider_settings)
    if "password" in raw:
        raise SpecError(
            "lab file: vmware.password is not allowed: never put the password in the lab file;"
            f" set {raw.get('password_env', DEFAULT_PASSWORD_ENV)} or answer the prompt"
        )
    fields.mapping("lab file: vmware", raw, ALLOWED)
    host, port = _vcenter(raw)
    cluster = _text(raw, "cluster", required=False, what="a cluster name")
    resource_pool = _text(raw, "resource_pool", required=False, what="a resource pool name")
    if cluster is None and resource_pool is None:
        raise SpecError(
            "lab file: vmware needs cluster, resource_pool or both (where the VMs run; with"
            " both, the pool is looked up inside the cluster)"
        )
    ca_file = raw.get("ca_file")
    if ca_file is not None:
        fields.path(_where("ca_file"), ca_file)
    if ca_file is not None and not Path(ca_file).is_file():
        raise SpecError(f"{_where('ca_file')} {ca_file!r} is not a readable file")
    simulator = _bool(raw, "simulator", False)
    image = raw.get("simulator_container_image")
    if image is not None:
        fields.image(_where("simulator_container_image"), image)
    if image is not None and not simulator:
        raise SpecError(
            "lab file: vmware.simulator_container_image needs vmware.simulator: true"
            " (container-backed VMs exist only in govmomi's vcsim)"
        )
    return VSphereSettings(
        host=host,
        port=port,
        user=_text(raw, "user", required=True, pattern=re.compile(r"^[^\s:]{1,128}$"),
                   what="the vCenter user, e.g. administrator@vsphere.local") or "",
        password_env=_text(raw, "password_env", required=False, default=DEFAULT_PASSWORD_ENV,
                           pattern=ENV_NAME_RE, what="an environment variable name")
        or DEFAULT_PASSWORD_ENV,
        insecure=_bool(raw, "insecure", False),
        ca_file=ca_file,
        datacenter=_text(raw, "datacenter", required=True, what="a datacenter name") or "",
        cluster=cluster,
        resource_pool=resource_pool,
        datastore=_text(raw, "datastore", required=True, what="a datastore name") or "",
        network=_text(raw, "network", required=True, what="a network or port group name") or "",
        folder=_folder(raw, spec.name),
        template=_text(raw, "template", required=True, what="the name of a VM template") or "",
        linked_clone=_bool(raw, "linked_clone", False),
        cpus=_int(raw, "cpus", 2, 1, 128),
        memory_mb=_int(raw, "memory_mb", 2048, 256, 4 * 1024 * 1024),
        domain=_text(raw, "domain", required=False, default="swarmlab.internal",
                     pattern=DOMAIN_RE, what="a DNS domain such as lab.example.org")
        or "swarmlab.internal",
        parallel=_int(raw, "parallel", 4, 1, 32),
        guest_timeout=_int(raw, "guest_timeout", 600, 1, 3600),
        snapshot_memory=_bool(raw, "snapshot_memory", True),
        simulator=simulator,
        simulator_container_image=image,
        networks=_networks(raw, spec),
    )
