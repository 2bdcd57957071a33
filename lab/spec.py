"""The lab file, validated: what a lab is made of, as plain data.

Every check here names the field and what is allowed, so that a wrong lab file costs the
user one line of reading, not a traceback. What each kind of field may hold is said once, in
fields.py, for the lab file, the class settings and the roster alike.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from . import fields
from .errors import SpecError
from .fields import NAME_RE as NAME_RE  # where the classroom looks for it

PROVIDERS = ("local", "vagrant", "vmware", "incus")
ROLES = ("manager", "worker")
OS_FAMILIES = ("debian", "rhel")
FIREWALL_POLICIES = ("disable", "open-ports")
SELINUX_POLICIES = ("permissive", "unchanged", "enforcing")
NODE_FIELDS = ("name", "role", "address")
# The Debian release of the nodes, where swarmlab builds them: bookworm has Docker 20.10,
# trixie Docker 26.1. Each provider's own list starts with its default.
RELEASES = ("bookworm", "trixie")
PROVIDER_RELEASES = {
    # trixie by default: measured no slower to come up than bookworm (bench/bench_releases.py)
    # and its Docker is the one instructors install today; 20.10 is end of life.
    "local": ("trixie", "bookworm"),
    "incus": ("trixie", "bookworm"),
    # libvirt: swarmlab's own box of that release; docker: the node image; virtualbox: the
    # Debian project's box of that release (debian/<release>64).
    "vagrant": ("trixie", "bookworm"),
}
# How the nodes come up: plain Debian, or like the lesson's own (seed): firewalld installed,
# running and rejecting all but ssh, so `prepare` and firewall-blocks-join meet a real one;
# and on machines with a kernel of their own (swarmlab's libvirt box) SELinux enforcing.
NODES_LIKE = ("plain", "seed")
SEED_PROVIDERS = ("local", "vagrant")  # where seed node images or boxes are built
# Nodes that are containers share the host's kernel, and SELinux is the kernel's: it cannot
# be enforcing in one node and not in the host, nor be turned on by a node at all.
CONTAINER_PROVIDERS = ("local", "incus")

# What the lab file may hold at the top level, beside invoke's own settings.
LAB_DEFAULTS: dict[str, Any] = {
    "name": "swarmlab",
    "provider": "local",
    "os_family": "debian",
    "release": None,  # the provider's default (PROVIDER_RELEASES)
    "nodes_like": "plain",
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
    "local": {},  # image: swarmlab/node[-seed]:<release> unless given
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
    release: str  # "" where swarmlab does not build the nodes (vmware: the template's)
    nodes_like: str
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


def parse_nodes(raw: Any, subnet: ipaddress.IPv4Network | None) -> tuple[NodeSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise SpecError("lab file: nodes must be a list of {name, role, address}")
    nodes: list[NodeSpec] = []
    seen_names: set[str] = set()
    seen_addresses: dict[str, str] = {}
    for index, item in enumerate(raw):
        where = f"lab file: nodes[{index}]"
        item = fields.mapping(where, item, NODE_FIELDS,
                              what="a mapping with name, role and address")
        name = fields.name(f"{where}.name", item.get("name"))
        role = fields.choice(f"{where}.role", item.get("role"), ROLES)
        address = fields.ipv4_address(f"{where}.address", item.get("address"))
        if subnet is not None and address not in subnet:
            raise SpecError(
                f"{where}.address {address} is outside subnet {subnet};"
                " pick an address inside it or change subnet"
            )
        if subnet is not None and address in (subnet.network_address, subnet.broadcast_address,
                                              next(subnet.hosts())):
            raise SpecError(
                f"{where}.address {address} is the network, gateway or broadcast"
                f" address of {subnet}; pick another"
            )
        if name in seen_names:
            raise SpecError(f"{where}.name {name!r} is used by two nodes; names must differ")
        if str(address) in seen_addresses:
            raise SpecError(
                f"{where}.address {address} is also the address of"
                f" {seen_addresses[str(address)]}; every node needs its own address"
            )
        seen_names.add(name)
        seen_addresses[str(address)] = name
        nodes.append(NodeSpec(name=name, role=role, address=str(address)))
    if not any(n.role == "manager" for n in nodes):
        raise SpecError("lab file: nodes has no manager; give at least one node role: manager")
    return tuple(nodes)


def parse_images(raw: Any) -> dict[str, str]:
    """Each role's image; roles the lab file leaves out keep the images `make images` builds
    (as invoke's own merge of the lab file does), so the doctor's and the failures' busybox is
    always there."""
    given = fields.mapping("lab file: images", raw,
                           what="a mapping of a role (busybox, whoami, ...) to an image")
    images = dict(LAB_DEFAULTS["images"])
    for role, value in given.items():
        fields.key("lab file: images key", role)
        images[role] = fields.image(f"lab file: images.{role}", value)
    return images


def parse_ssh(raw: Any) -> SSHSettings:
    given = fields.mapping("lab file: ssh", raw, LAB_DEFAULTS["ssh"],
                           what="a mapping of " + ", ".join(LAB_DEFAULTS["ssh"]))
    data = {**LAB_DEFAULTS["ssh"], **given}
    return SSHSettings(
        user=fields.user("lab file: ssh.user", data["user"]),
        connect_timeout=fields.whole("lab file: ssh.connect_timeout", data["connect_timeout"],
                                     1, 600),
        command_timeout=fields.whole("lab file: ssh.command_timeout", data["command_timeout"],
                                     5, 7200),
        parallel=fields.whole("lab file: ssh.parallel", data["parallel"], 1, 256),
    )


def parse_spec(data: dict[str, Any], known_extra: set[str] = frozenset()) -> LabSpec:
    """Turn the merged configuration into a LabSpec, or raise SpecError naming the field.

    `known_extra` are top-level keys that belong to invoke itself and are not the lab's.
    """
    if not isinstance(data, dict):
        raise SpecError("lab file: must be a mapping of settings (name:, nodes:, ...)")
    # Keys of any type (YAML allows `1: x`): sorted by their text, so the first one is named.
    unknown = sorted(set(data) - set(LAB_DEFAULTS) - set(known_extra), key=str)
    if unknown:
        raise SpecError(
            f"lab file: unknown field {fields.shown(unknown[0])}; allowed: "
            + ", ".join(sorted(LAB_DEFAULTS))
        )
    merged = {key: data.get(key, default) for key, default in LAB_DEFAULTS.items()}
    name = fields.name("lab file: name", merged["name"])
    provider = fields.choice("lab file: provider", merged["provider"], PROVIDERS)
    subnet = fields.ipv4_network("lab file: subnet", merged["subnet"])
    if subnet.prefixlen > 29:
        raise SpecError(f"lab file: subnet {subnet} is too small; allowed: /29 or larger")
    section = merged.get(provider) or {}
    if not isinstance(section, dict):
        raise SpecError(f"lab file: {provider} must be a mapping of that provider's settings")
    release = parse_release(provider, merged["release"])
    settings = fields.mapping(f"lab file: {provider}", section,
                              what="a mapping of that provider's settings")
    nodes_like = fields.choice("lab file: nodes_like", merged["nodes_like"], NODES_LIKE)
    if nodes_like == "seed" and provider not in SEED_PROVIDERS:
        raise SpecError(
            f"lab file: nodes_like seed is not built for provider {provider} yet (only"
            f" {', '.join(SEED_PROVIDERS)}); use nodes_like: plain"
        )
    selinux = fields.choice("lab file: selinux", merged["selinux"], SELINUX_POLICIES)
    if selinux == "enforcing" and provider in CONTAINER_PROVIDERS:
        raise SpecError(selinux_needs_a_kernel(provider))
    if provider == "local":
        settings.setdefault("image", node_image(release, nodes_like))
    return LabSpec(
        name=name,
        provider=provider,
        os_family=fields.choice("lab file: os_family", merged["os_family"], OS_FAMILIES),
        release=release,
        nodes_like=nodes_like,
        firewall=fields.choice("lab file: firewall", merged["firewall"], FIREWALL_POLICIES),
        selinux=selinux,
        time_sync=fields.flag("lab file: time_sync", merged["time_sync"]),
        subnet=str(subnet),
        nodes=parse_nodes(merged["nodes"], subnet),
        images=parse_images(merged["images"]),
        ssh=parse_ssh(merged["ssh"]),
        state_dir=fields.path("lab file: state_dir", merged["state_dir"]),
        provider_settings=settings,
    )


def node_image(release: str, nodes_like: str) -> str:
    """The node image swarmlab builds for a release and flavour (local nodes, Vagrant's
    docker machines)."""
    return f"swarmlab/node{'-seed' if nodes_like == 'seed' else ''}:{release}"


def selinux_needs_a_kernel(where: str) -> str:
    return (f"lab file: selinux enforcing cannot be had on {where}: its nodes are containers"
            " sharing the host's kernel, and SELinux is the kernel's; use selinux: permissive,"
            " or provider vagrant (libvirt) with nodes_like: seed")


def parse_release(provider: str, raw: Any) -> str:
    """The nodes' Debian release: one the provider builds, its default when none is given."""
    builds = PROVIDER_RELEASES.get(provider)
    if builds is None:
        if raw is not None:
            raise SpecError(
                f"lab file: release does not apply to provider {provider} (its nodes are"
                " clones of your template, whatever it runs); remove it"
            )
        return ""
    if raw is None:
        return builds[0]
    release = fields.choice("lab file: release", raw, RELEASES)
    if release not in builds:
        raise SpecError(
            f"lab file: release {release} is not built for provider {provider}; allowed"
            f" there: {', '.join(builds)}"
        )
    return release
