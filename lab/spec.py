"""The lab file, validated: what a lab is made of, as plain data.

Every check here names the field and what is allowed, so that a wrong lab file costs the
user one line of reading, not a traceback.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import SpecError

PROVIDERS = ("local", "vagrant", "vmware", "incus")
ROLES = ("manager", "worker")
OS_FAMILIES = ("debian", "rhel")
FIREWALL_POLICIES = ("disable", "open-ports")
SELINUX_POLICIES = ("permissive", "unchanged")
# Host names end up as container names, VM names, swarm node names and DNS labels.
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")

# What the lab file may hold at the top level, beside invoke's own settings.
LAB_DEFAULTS: dict[str, Any] = {
    "name": "swarmlab",
    "provider": "local",
    "os_family": "debian",
    "firewall": "open-ports",
    "selinux": "permissive",
    "time_sync": True,
    "subnet": "10.77.0.0/24",
    "nodes": [
        {"name": "manager1", "role": "manager", "address": "10.77.0.11"},
        {"name": "manager2", "role": "manager", "address": "10.77.0.12"},
        {"name": "worker1", "role": "worker", "address": "10.77.0.13"},
    ],
    "images": {
        "busybox": "swarmlab/busybox:latest",
        "whoami": "swarmlab/whoami:latest",
    },
    "ssh": {
        "user": "root",
        "connect_timeout": 30,
        "command_timeout": 900,
        "parallel": 8,
    },
    "state_dir": ".swarmlab",
    "local": {"image": "swarmlab/node:bookworm"},
    "vagrant": {},
    "vmware": {},
    "incus": {},
    "classroom": {},  # the class tasks' own section (lab/classroom/settings.py)
}


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str
    address: str


@dataclass(frozen=True)
class SSHSettings:
    user: str = "root"
    connect_timeout: int = 30
    command_timeout: int = 900
    parallel: int = 8


@dataclass(frozen=True)
class LabSpec:
    name: str
    provider: str
    os_family: str
    firewall: str
    selinux: str
    time_sync: bool
    subnet: str
    nodes: tuple[NodeSpec, ...]
    images: dict[str, str]
    ssh: SSHSettings
    state_dir: str
    provider_settings: dict[str, Any] = field(default_factory=dict)

    @property
    def managers(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == "manager"]

    @property
    def workers(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == "worker"]

    @property
    def first_manager(self) -> NodeSpec:
        return self.managers[0]

    def node(self, name: str) -> NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        raise SpecError(
            f"no node named {name!r} in lab {self.name!r}; nodes are: "
            + ", ".join(n.name for n in self.nodes)
        )

    def digest(self) -> str:
        """A short hash of everything that shapes the machines and their preparation."""
        data = asdict(self)
        data.pop("state_dir")
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _choice(field_name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SpecError(
            f"lab file: {field_name} is {value!r}; allowed: {', '.join(allowed)}"
        )
    return value


def _int(field_name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(
            f"lab file: {field_name} is {value!r}; allowed: a whole number from {low} to {high}"
        )
    return value


def _name(field_name: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise SpecError(
            f"lab file: {field_name} is {value!r}; allowed: 2-32 characters of a-z, 0-9 and '-',"
            " starting with a letter"
        )
    return value


def parse_nodes(raw: Any, subnet: ipaddress.IPv4Network | None) -> tuple[NodeSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise SpecError("lab file: nodes must be a list of {name, role, address}")
    nodes: list[NodeSpec] = []
    seen_names: set[str] = set()
    seen_addresses: dict[str, str] = {}
    for index, item in enumerate(raw):
        where = f"nodes[{index}]"
        if not isinstance(item, dict):
            raise SpecError(f"lab file: {where} must be a mapping with name, role and address")
        unknown = set(item) - {"name", "role", "address"}
        if unknown:
            raise SpecError(
                f"lab file: {where} has unknown field {sorted(unknown)[0]!r};"
                " allowed: name, role, address"
            )
        name = _name(f"{where}.name", item.get("name"))
        role = _choice(f"{where}.role", item.get("role"), ROLES)
        raw_address = item.get("address")
        try:
            address = ipaddress.IPv4Address(str(raw_address))
        except ValueError:
            raise SpecError(
                f"lab file: {where}.address is {raw_address!r}; allowed: an IPv4 address"
            ) from None
        if subnet is not None and address not in subnet:
            raise SpecError(
                f"lab file: {where}.address {address} is outside subnet {subnet};"
                " pick an address inside it or change subnet"
            )
        if subnet is not None and address in (subnet.network_address, subnet.broadcast_address,
                                              next(subnet.hosts())):
            raise SpecError(
                f"lab file: {where}.address {address} is the network, gateway or broadcast"
                f" address of {subnet}; pick another"
            )
        if name in seen_names:
            raise SpecError(
                f"lab file: {where}.name {name!r} is used by two nodes; names must differ"
            )
        if str(address) in seen_addresses:
            raise SpecError(
                f"lab file: {where}.address {address} is also the address of"
                f" {seen_addresses[str(address)]}; every node needs its own address"
            )
        seen_names.add(name)
        seen_addresses[str(address)] = name
        nodes.append(NodeSpec(name=name, role=role, address=str(address)))
    if not any(n.role == "manager" for n in nodes):
        raise SpecError("lab file: nodes has no manager; give at least one node role: manager")
    return tuple(nodes)


def parse_spec(data: dict[str, Any], known_extra: set[str] = frozenset()) -> LabSpec:
    """Turn the merged configuration into a LabSpec, or raise SpecError naming the field.

    `known_extra` are top-level keys that belong to invoke itself and are not the lab's.
    """
    unknown = set(data) - set(LAB_DEFAULTS) - set(known_extra)
    if unknown:
        raise SpecError(
            f"lab file: unknown field {sorted(unknown)[0]!r}; allowed: "
            + ", ".join(sorted(LAB_DEFAULTS))
        )
    merged = {key: data.get(key, default) for key, default in LAB_DEFAULTS.items()}
    name = _name("name", merged["name"])
    provider = _choice("provider", merged["provider"], PROVIDERS)
    os_family = _choice("os_family", merged["os_family"], OS_FAMILIES)
    firewall = _choice("firewall", merged["firewall"], FIREWALL_POLICIES)
    selinux = _choice("selinux", merged["selinux"], SELINUX_POLICIES)
    if not isinstance(merged["time_sync"], bool):
        raise SpecError(f"lab file: time_sync is {merged['time_sync']!r}; allowed: true, false")
    try:
        subnet = ipaddress.IPv4Network(str(merged["subnet"]), strict=True)
    except ValueError:
        raise SpecError(
            f"lab file: subnet is {merged['subnet']!r}; allowed: an IPv4 network such as"
            " 10.77.0.0/24 (host bits zero)"
        ) from None
    if subnet.prefixlen > 29:
        raise SpecError(f"lab file: subnet {subnet} is too small; allowed: /29 or larger")
    nodes = parse_nodes(merged["nodes"], subnet)
    images = merged["images"]
    if not isinstance(images, dict) or not all(
        isinstance(v, str) and v for v in images.values()
    ):
        raise SpecError("lab file: images must map a role (busybox, whoami) to an image name")
    raw_ssh = merged["ssh"]
    if not isinstance(raw_ssh, dict):
        raise SpecError("lab file: ssh must be a mapping of user, connect_timeout, command_timeout")
    unknown_ssh = set(raw_ssh) - set(LAB_DEFAULTS["ssh"])
    if unknown_ssh:
        raise SpecError(
            f"lab file: ssh.{sorted(unknown_ssh)[0]} is unknown; allowed: "
            + ", ".join(LAB_DEFAULTS["ssh"])
        )
    ssh_data = {**LAB_DEFAULTS["ssh"], **raw_ssh}
    ssh = SSHSettings(
        user=_name("ssh.user", ssh_data["user"]) if ssh_data["user"] != "root" else "root",
        connect_timeout=_int("ssh.connect_timeout", ssh_data["connect_timeout"], 1, 600),
        command_timeout=_int("ssh.command_timeout", ssh_data["command_timeout"], 5, 7200),
        parallel=_int("ssh.parallel", ssh_data["parallel"], 1, 256),
    )
    section = merged.get(provider) or {}
    if not isinstance(section, dict):
        raise SpecError(f"lab file: {provider} must be a mapping of that provider's settings")
    return LabSpec(
        name=name,
        provider=provider,
        os_family=os_family,
        firewall=firewall,
        selinux=selinux,
        time_sync=merged["time_sync"],
        subnet=str(subnet),
        nodes=nodes,
        images=dict(images),
        ssh=ssh,
        state_dir=str(merged["state_dir"]),
        provider_settings=dict(section),
    )
