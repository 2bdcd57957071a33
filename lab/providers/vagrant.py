"""The vagrant provider: the lab's machines made by Vagrant through python-vagrant.

VirtualBox (the default, for instructors' and students' laptops), libvirt (QEMU), or Vagrant's
own docker provider with the local node image (hosts without a hypervisor, and the tests
here). `vagrant/Vagrantfile` defines the machines from a JSON spec written per lab; this module
runs vagrant in the lab's own project directory and checks every machine's state after each
command, because python-vagrant and vagrant do not always fail loudly.

SSH goes where `vagrant ssh-config` says (a forwarded port on 127.0.0.1, which moves when a
machine is recreated or restarted), as the lab's user with the lab's key, and the host key is
pinned under the machine's name rather than under host:port. The swarm always advertises the
lab file's address on the private network, never VirtualBox's NAT address (10.0.2.15).
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from .. import box as boxes
from .. import container_node, fields, hostkeys, libvirt
from ..errors import LabError, NodeError, SpecError
from ..spec import LabSpec, NodeSpec, node_image, selinux_needs_a_kernel
from ..state import LabState
from ..vagrant_project import (
    AUTHORIZED_KEYS,
    MIN_VERSION,
    VBOX_NETWORKS_CONF,
    VagrantProject,
    parse_snapshot_list,
    run_bounded,
    vagrant_binary,
    vbox_allowed_ranges,
    vbox_range_fix,
    version_tuple,
)
from .base import MachineStatus, Provider, SSHTarget

VAGRANT_PROVIDERS = ("virtualbox", "libvirt", "docker")
LIBVIRT_DRIVERS = ("auto", "kvm", "qemu")
LIBVIRT_BOOT_TIMEOUT = 900  # three TCG guests booting at once on two cores, under load
# Scenario timeouts under QEMU's software emulation: three guests on two cores start a task in
# one to two minutes where KVM takes seconds.
EMULATION_TIME_SCALE = 4.0
SNAPSHOT_PROVIDERS = ("virtualbox", "libvirt")
# Vagrant's words for a machine that is not there (yet): `preparing` is a docker machine whose
# `vagrant up` was interrupted before the container's id was recorded.
ABSENT_STATES = ("not_created", "preparing")
HOST_KEY_WAIT_SECONDS = 60
# Beyond the guests' boot: box import, networks, provisioning, a graceful halt (60 s a VM).
MACHINE_MARGIN_SECONDS = 600
VBOXMANAGE_SECONDS = 60
RERUN_HINT = (
    "fix the cause and rerun `invoke lab.up` (after `invoke lab.down` if a machine must be"
    " rebuilt)"
)


@dataclass(frozen=True)
class VagrantSettings:
    """The lab file's `vagrant:` section, checked."""

    provider: str = "virtualbox"
    box: str = "debian/trixie64"
    box_version: str = ""
    # Two: dockerd and a task's network set-up are multi-threaded, and a second vCPU made the
    # whoami-dns demo about a fifth faster even on a 2-core host under QEMU emulation.
    cpus: int = 2
    memory: int = 1024  # MiB: three machines must fit on a student's 8 GiB laptop
    image: str = "swarmlab/node:trixie"  # docker provider only
    storage_pool: str = ""  # libvirt only; empty: the project's own pool (libvirt.POOL_NAME)
    boot_timeout: int = 300  # Vagrant's own default; libvirt under TCG defaults to 900
    libvirt_driver: str = "auto"  # libvirt only: kvm, qemu (software emulation) or auto
    management_subnet: str = ""  # libvirt only; empty: the /24 right after the lab's subnet
    networks_conf: str = str(VBOX_NETWORKS_CONF)  # VirtualBox only; tests point it elsewhere


def parse_settings(spec: LabSpec) -> VagrantSettings:
    allowed = VagrantSettings.__dataclass_fields__
    raw = fields.mapping("lab file: vagrant", spec.provider_settings, sorted(allowed))
    fields.choice("lab file: vagrant.provider", raw.get("provider", VagrantSettings.provider),
                  VAGRANT_PROVIDERS)
    for key, low, high in (("cpus", 1, 64), ("memory", 256, 262144), ("boot_timeout", 5, 3600)):
        fields.whole(f"lab file: vagrant.{key}", raw.get(key, getattr(VagrantSettings, key)),
                     low, high)
    for key in ("box", "box_version", "image", "storage_pool", "networks_conf",
                "management_subnet"):
        # A YAML `box_version: 1.2` is a number; Vagrant wants the text.
        if key in raw and not isinstance(raw[key], str | int | float):
            raise fields.fault(f"lab file: vagrant.{key}", raw[key], "a string")
        if key in raw:
            raw[key] = str(raw[key])
    fields.choice("lab file: vagrant.libvirt_driver",
                  raw.get("libvirt_driver", VagrantSettings.libvirt_driver), LIBVIRT_DRIVERS)
    provider = raw.get("provider", VagrantSettings.provider)
    seed = spec.nodes_like == "seed"
    if spec.selinux == "enforcing" and provider == "docker":
        raise SpecError(selinux_needs_a_kernel("vagrant's docker provider"))
    if seed and provider == "virtualbox":
        raise SpecError("lab file: nodes_like seed is built as a libvirt box or a node image;"
                        " set vagrant.provider: libvirt (or docker), or use nodes_like: plain")
    if provider == "libvirt":
        # Vagrant Cloud is out of reach here: the default box is the one swarmlab builds for
        # the lab's release and nodes (lab/box.py), built at the first lab.up that needs it.
        raw.setdefault("box", boxes.box_for(spec.release, spec.nodes_like).name)
        raw.setdefault("boot_timeout", LIBVIRT_BOOT_TIMEOUT)
    elif provider == "virtualbox":
        raw.setdefault("box", f"debian/{spec.release}64")
    raw.setdefault("image", node_image(spec.release, spec.nodes_like))
    if raw.get("management_subnet"):
        fields.ipv4_network("lab file: vagrant.management_subnet", raw["management_subnet"],
                            "10.79.1.0/24")
    if "image" in raw:
        fields.image("lab file: vagrant.image", raw["image"])
    if "networks_conf" in raw:
        fields.path("lab file: vagrant.networks_conf", raw["networks_conf"])
    if not raw.get("box", "x"):
        raise SpecError("lab file: vagrant.box is empty; allowed: a box name such as"
                        " debian/trixie64")
    return VagrantSettings(**raw)


class VagrantProvider(Provider):
    name = "vagrant"

    def __init__(self, spec: LabSpec, state: LabState, log: Any = print):
        super().__init__(spec, state, log)
        self.settings = parse_settings(spec)
        self.project = VagrantProject(self.lab_dir / "vagrant", self.settings.provider, spec.name,
                                      self.machine_timeout)
        self._client: docker.DockerClient | None = None

    @property
    def machine_timeout(self) -> float:
        """The bound of one vagrant command that makes, starts or stops machines: each may
        take its whole boot_timeout one after another (VirtualBox), plus vagrant's own work."""
        return self.settings.boot_timeout * len(self.spec.nodes) + MACHINE_MARGIN_SECONDS

    @property  # type: ignore[override]
    def owns_clock(self) -> bool:
        # Docker machines are containers: they share the host's clock and may not set it.
        return self.settings.provider != "docker"

    @property  # type: ignore[override]
    def time_scale(self) -> float:
        emulated = self.settings.provider == "libvirt" and self.libvirt_driver[0] == "qemu"
        return EMULATION_TIME_SCALE if emulated else 1.0

    @property  # type: ignore[override]
    def can_snapshot(self) -> bool:
        return self.settings.provider in SNAPSHOT_PROVIDERS

    @property
    def docker(self) -> docker.DockerClient:
        if self._client is None:
            self._client = container_node.docker_client()
        return self._client

    def host_key_alias(self, node: NodeSpec) -> str:
        # Machines share 127.0.0.1 and their forwarded ports move (a restarted container gets
        # a new one): the key is pinned under the machine's name, never under host:port.
        return self.machine_name(node)

    # --- the spec the Vagrantfile reads ------------------------------------------------
    @property
    def management_network(self) -> str:
        return f"swarmlab-{self.spec.name}-mgmt"

    @property
    def management_subnet(self) -> ipaddress.IPv4Network:
        """vagrant-libvirt's management network: the lab file's, or the block right after the
        lab's subnet (10.201.10.0/24 -> 10.201.11.0/24)."""
        if self.settings.management_subnet:
            return ipaddress.IPv4Network(self.settings.management_subnet, strict=False)
        subnet = ipaddress.IPv4Network(self.spec.subnet)
        return ipaddress.IPv4Network((int(subnet.network_address) + subnet.num_addresses,
                                      subnet.prefixlen))

    @property
    def libvirt_driver(self) -> tuple[str, str]:
        return libvirt.choose_driver(self.settings.libvirt_driver)

    def vagrant_spec(self) -> dict[str, Any]:
        subnet = ipaddress.IPv4Network(self.spec.subnet)
        libvirt_provider = self.settings.provider == "libvirt"
        lab_key = hostkeys.lab_key(self.lab_dir, self.spec.name)
        docker_provider = self.settings.provider == "docker"
        # The host's apt mirror names, resolved on the host: a node never asks DNS elsewhere.
        mirror_hosts = container_node.apt_mirror_hosts() if docker_provider else {}
        return {
            "lab": self.spec.name,
            "provider": self.settings.provider,
            "box": self.settings.box,
            "box_version": self.settings.box_version,
            # swarmlab's own box: the Vagrantfile names its guest and configures its NIC
            # itself, where a foreign box gets Vagrant's own detection and configuration.
            "own_box": boxes.is_ours(self.settings.box),
            "cpus": self.settings.cpus,
            "memory": self.settings.memory,
            "image": self.settings.image,
            "storage_pool": self.settings.storage_pool or (
                libvirt.POOL_NAME if libvirt_provider else ""),
            "libvirt_driver": self.libvirt_driver[0] if libvirt_provider else "",
            "management_network": self.management_network,
            "management_subnet": str(self.management_subnet),
            "boot_timeout": self.settings.boot_timeout,
            "network": self.network_name,
            "subnet": str(subnet),
            "netmask": str(subnet.netmask),
            "ssh_user": self.spec.ssh.user,
            "public_key": hostkeys.public_key(lab_key),
            "private_key": str(lab_key),
            "authorized_keys": str(self.project.directory / AUTHORIZED_KEYS),
            "nodes": [
                {"name": node.name, "role": node.role, "address": node.address,
                 "machine": self.machine_name(node), "volume": self.volume_name(node),
                 "console_log": str(self.lab_dir / f"console-{node.name}.log"),
                 **({"container_args": self._container_args(node, mirror_hosts)}
                    if docker_provider else {})}
                for node in self.spec.nodes
            ],
        }

    def _container_args(self, node: NodeSpec, mirror_hosts: dict[str, str]) -> list[str]:
        """The docker machine's create_args: a container node (lab/container_node.py, the
        local provider's flags), written into the JSON so the Vagrantfile has none of its own."""
        return [
            *container_node.node_run_args(self.spec.name, node.name, self.network_name,
                                          node.address, mirror_hosts),
            *container_node.volume_mount(self.spec.name, node.name, self.volume_name(node)),
            # SSH is published on a port Docker picks on the loopback only: no race between
            # machines created in parallel, nothing reachable from outside the host.
            "--publish", "127.0.0.1::22",
        ]

    def _write_project(self) -> None:
        spec = self.vagrant_spec()
        key = spec["public_key"] if self.settings.provider == "docker" else None
        self.project.write(spec, authorized_key=key)

    # --- preflight -----------------------------------------------------------------------
    def preflight(self) -> list[str]:
        vagrant_binary()
        self._check_made_with()
        self._write_project()
        version = self.project.version()
        if version_tuple(version) < MIN_VERSION:
            raise LabError(
                f"vagrant {version} is too old; {'.'.join(map(str, MIN_VERSION))} or later is"
                " needed: run `sudo scripts/install-vagrant` or upgrade Vagrant"
            )
        lines = [f"vagrant {version}, provider {self.settings.provider}"]
        provider = self.settings.provider
        if provider == "docker":
            lines += self._preflight_docker()
        elif provider == "virtualbox":
            lines += self._preflight_virtualbox()
        else:
            lines += self._preflight_libvirt()
        if provider != "docker":
            lines.append(self._check_box())
        if not self.can_snapshot:
            lines.append(f"snapshots: not with vagrant's {provider} provider")
        return lines

    def _check_made_with(self) -> None:
        """A lab's machines stay with the vagrant provider that made them until lab.down."""
        made = (self.project.read_spec() or {}).get("provider")
        if made and made != self.settings.provider and self.state.machines:
            raise LabError(
                f"lab {self.spec.name!r} was made with vagrant's {made} provider, not"
                f" {self.settings.provider}; run `invoke lab.down` first or set"
                f" vagrant.provider: {made}"
            )

    def _preflight_docker(self) -> list[str]:
        if self.spec.os_family != "debian":
            raise SpecError(
                "lab file: os_family rhel is not available with vagrant's docker provider (its"
                " node image is Debian); use os_family: debian, or vagrant.provider virtualbox"
            )
        if self.spec.ssh.user != "root":
            raise SpecError(
                f"lab file: ssh.user {self.spec.ssh.user} is not available with vagrant's docker"
                " provider (its node image has only root); use ssh.user: root"
            )
        if not shutil.which("docker"):
            raise LabError(
                "vagrant's docker provider runs the `docker` command, which is not on PATH;"
                " run `make docker` or `apt-get install docker.io`"
            )
        engine = self.docker.version().get("Version", "?")
        container_node.check_subnet(self.docker, self.network_name, self.spec.name,
                                    self.spec.subnet)
        built = container_node.check_images(
            self.docker, [self.settings.image, *self.spec.images.values()], self.log)
        lines = [f"docker engine {engine}, node image {self.settings.image}"]
        return lines + [f"image {name}: {how}" for name, how in built.items() if how != "ok"]

    def _preflight_virtualbox(self) -> list[str]:
        vboxmanage = shutil.which("VBoxManage")
        if not vboxmanage:
            raise LabError(
                "VirtualBox is not installed (no VBoxManage on PATH): install VirtualBox 6.1 or"
                " 7 from virtualbox.org, or set vagrant.provider to libvirt or docker"
            )
        try:
            # A file, not a pipe: VBoxManage may start VBoxSVC, which would inherit the pipe
            # and keep a read of it open after VBoxManage has ended.
            with tempfile.TemporaryFile() as out:
                run_bounded([vboxmanage, "--version"], timeout=VBOXMANAGE_SECONDS,
                            what="VBoxManage --version", stdout=out, stderr=subprocess.DEVNULL)
                out.seek(0)
                version = out.read().decode(errors="replace").strip() or "unknown version"
        except OSError as exc:
            raise LabError(f"VBoxManage could not run: {exc}") from None
        conf = Path(self.settings.networks_conf)
        subnet = ipaddress.IPv4Network(self.spec.subnet)
        allowed = vbox_allowed_ranges(conf)
        if not any(subnet.subnet_of(network) for network in allowed):
            shown = ", ".join(map(str, allowed)) or "none"
            raise SpecError(
                f"lab file: subnet {subnet} is outside the host-only ranges VirtualBox allows"
                f" here ({shown}); {vbox_range_fix(subnet, conf)}, or use a subnet inside them"
            )
        return [f"VirtualBox {version}, host-only subnet {subnet} allowed"]

    def _preflight_libvirt(self) -> list[str]:
        with self.project.failing_as("vagrant plugin list"):
            plugins = {plugin.name: plugin.version for plugin in self.project.client.plugin_list()}
        if "vagrant-libvirt" not in plugins:
            raise LabError(
                "the vagrant-libvirt plugin is missing: run `apt-get install"
                " --no-install-recommends vagrant-libvirt libvirt-daemon-system`, or set"
                " vagrant.provider to virtualbox or docker"
            )
        hypervisor = libvirt.version()
        self._check_libvirt_subnets()
        lines = [f"vagrant-libvirt {plugins['vagrant-libvirt']}, {hypervisor}",
                 self.libvirt_driver[1]]
        if not self.settings.storage_pool:
            lines.append(libvirt.ensure_pool())
        return lines

    def _check_libvirt_subnets(self) -> None:
        """The lab's two networks must not overlap each other or a route of this host, but
        for the lab's own bridges (a rerun finds them in place)."""
        subnet = ipaddress.IPv4Network(self.spec.subnet)
        management = self.management_subnet
        if management.overlaps(subnet):
            raise SpecError(
                f"lab file: vagrant.management_subnet {management} overlaps the lab's subnet"
                f" {subnet}; pick another, for example {self._next_block(subnet)}"
            )
        existing = libvirt.networks()
        own = {existing[name] for name in (self.network_name, self.management_network)
               if existing.get(name)}
        for route, dev in container_node.host_routes():
            if dev in own:
                continue
            for what, network in (("subnet", subnet), ("vagrant.management_subnet", management)):
                if route.overlaps(network):
                    raise SpecError(
                        f"lab file: {what} {network} overlaps the host's route {route} on"
                        f" {dev} (another lab's or the host's); pick a free range"
                    )

    @staticmethod
    def _next_block(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network((int(subnet.network_address) + 2 * subnet.num_addresses,
                                      subnet.prefixlen))

    def _check_box(self) -> str:
        box, version, provider = (
            self.settings.box, self.settings.box_version, self.settings.provider,
        )
        own = self._own_box()
        if own is not None and not version:
            # swarmlab's box for this lab's release and nodes: built (minutes, once per
            # recipe) and added when missing or when its recipe changed, as local images are.
            state = boxes.current_state(own)
            if not state["added"]:
                self.log(f"box {own.name}: not built for its current recipe; building it (about"
                         " 5 minutes, once)")
                state = boxes.ensure_box(own, log=self.log)
            return f"box {own.name} {state['version']} ({provider})"
        with self.project.failing_as("vagrant box list"):
            boxes_here = self.project.client.box_list()
        have = [b for b in boxes_here if b.name == box and b.provider == provider]
        if version:
            have = [b for b in have if b.version == version]
        if not have:
            wanted = f"{box} {version}".strip()
            version_flag = f" --box-version {version}" if version else ""
            raise LabError(
                f"box {wanted} for {provider} is not on this machine; add it with `vagrant box"
                f" add {box}{version_flag} --provider {provider}` (or `vagrant box add --name"
                f" {box} FILE.box` from a local file), or set vagrant.box"
            )
        return f"box {box} {have[-1].version} ({provider})"

    def _own_box(self) -> boxes.Box | None:
        """The swarmlab box this lab's machines are made from, if it is one (libvirt only)."""
        if self.settings.provider != "libvirt":
            return None
        own = boxes.box_for(self.spec.release, self.spec.nodes_like)
        return own if self.settings.box == own.name else None

    # --- create ----------------------------------------------------------------------------
    def create(self) -> dict[str, str]:
        self._write_project()
        provider = self.settings.provider
        before = self._states()
        todo = [node for node in self.spec.nodes if before[node.name] != "running"]
        if provider == "libvirt":
            for node in todo:
                if before[node.name] in ABSENT_STATES:
                    self._remove_libvirt_orphan(node)
        if provider == "docker" and todo:
            self._ensure_network()
            for node in todo:
                if before[node.name] not in ABSENT_STATES and node.name not in self.state.machines:
                    # A container whose first `vagrant up` was interrupted (typically killed
                    # while `docker run` started it) may never start again; it holds nothing
                    # yet, so it is made anew, as a fresh up would.
                    with self.project.failing_as(f"vagrant destroy {node.name}"):
                        self.project.client.destroy(vm_name=node.name)
                    before[node.name] = "not_created"
                if before[node.name] in ABSENT_STATES:
                    self._remove_orphans(node)
        after = before
        if provider == "virtualbox":
            # VirtualBox's provider cannot `vagrant up --parallel`: one machine at a time,
            # each checked before the next (preparation afterwards runs in parallel).
            for node in todo:
                self._up(node)
                after = self._check_running([node], "vagrant up " + node.name)
        elif todo:
            # docker and libvirt bring machines up in parallel by themselves.
            self._up(None)
            after = self._check_running(self.spec.nodes, "vagrant up")
        results = {
            node.name: "ok" if before[node.name] == "running"
            else "created" if before[node.name] in ABSENT_STATES else "started"
            for node in self.spec.nodes
        }
        self._record_machines(after)
        return results

    def _states(self) -> dict[str, str]:
        states = self.project.status()
        missing = [node.name for node in self.spec.nodes if node.name not in states]
        if missing:
            raise LabError(
                f"`vagrant status` does not list {', '.join(missing)}; see"
                f" {self.project.spec_path} and {self.project.log_path}"
            )
        return states

    def _up(self, node: NodeSpec | None) -> None:
        what = "vagrant up" + (f" {node.name}" if node else "")
        self.log(f"    {what} ({self.settings.provider}); log: {self.project.log_path}")
        try:
            with self.project.failing_as(what):
                self.project.client.up(
                    vm_name=node.name if node else None, provider=self.settings.provider
                )
        except LabError as exc:
            if node is not None:
                failed = [node.name]
            else:
                states = self.project.status()
                failed = [n.name for n in self.spec.nodes if states.get(n.name) != "running"]
            raise LabError(
                f"{', '.join(failed) or 'a machine'} did not come up: {exc}; {RERUN_HINT}"
            ) from None

    def _check_running(self, nodes: Any, after: str) -> dict[str, str]:
        """Every node in `nodes` must be running now, whatever vagrant's exit status said."""
        states = self.project.status()
        wrong = [node for node in nodes if states.get(node.name) != "running"]
        if wrong:
            node = wrong[0]
            raise NodeError(
                node.name,
                f"is {states.get(node.name, 'absent')} after `{after}`, not running; see"
                f" {self.project.log_path}; {RERUN_HINT}",
            )
        return states

    def _record_machines(self, states: dict[str, str]) -> None:
        """Record where each machine answers SSH and pin the key of every new machine.

        The address is read again every time: forwarded ports move when a machine is
        recreated or restarted (Docker picks a new one).
        """
        configs = self.project.ssh_configs()
        pinned = {line.split()[0] for line in
                  hostkeys.known_hosts_path(self.lab_dir).read_text().splitlines() if line.strip()}
        for node in self.spec.nodes:
            config = configs.get(node.name)
            if not config or "Port" not in config:
                raise NodeError(
                    node.name, "`vagrant ssh-config` gives no SSH address for it; see"
                    f" {self.project.log_path}; {RERUN_HINT}",
                )
            vagrant_id = self.project.machine_id(node.name)
            new = self.state.machines.get(node.name, {}).get("vagrant_id") != vagrant_id
            facts: dict[str, Any] = {
                "machine": self.machine_name(node), "address": node.address,
                "vagrant_provider": self.settings.provider, "vagrant_id": vagrant_id,
                "power": states[node.name], "ssh_host": config.get("HostName", "127.0.0.1"),
                "ssh_port": int(config["Port"]),
            }
            if new:
                facts["created"] = time.time()
            self.state.record_machine(node.name, **facts)
            # Trust on first use, right after creation: the key a machine shows when this lab
            # first sees it (a new Vagrant id) is the only one accepted later. So a machine
            # recreated by hand is re-pinned by lab.up, and one whose key was never recorded
            # (a run interrupted between `vagrant up` and here) is still the one this lab made.
            if new or self.host_key_alias(node) not in pinned:
                key = hostkeys.scan(facts["ssh_host"], facts["ssh_port"], HOST_KEY_WAIT_SECONDS)
                hostkeys.pin(self.lab_dir, self.host_key_alias(node), 22, key)

    # --- docker machines: the lab's network and leftovers ------------------------------
    def _ensure_network(self) -> None:
        _network, made = container_node.ensure_network(self.docker, self.network_name,
                                                       self.spec.name, self.spec.subnet)
        if made:
            self.state.record_resource("network", self.network_name)

    def _remove_orphans(self, node: NodeSpec) -> None:
        """A container (and volume) Vagrant does not know: left by an interrupted `up`.

        Vagrant would fail on the name; a new machine gets a new disk, like any fresh up.
        Only what carries this lab's and this node's labels is touched.
        """
        for what in container_node.remove_labelled(self.docker, self.spec.name, node.name,
                                                   kinds=("containers", "volumes")):
            if what.startswith("container "):
                self.log(f"    {node.name}: removed {what} left by an interrupted run")

    # --- status / destroy / halt ---------------------------------------------------------
    def status(self) -> list[MachineStatus]:
        states = self.project.status() if self.project.exists else {}
        found = []
        for node in self.spec.nodes:
            state = states.get(node.name, "not_created")
            found.append(MachineStatus(
                node.name,
                exists=state not in ABSENT_STATES,
                running=state == "running",
                address=node.address,
                power=state,
                detail={"machine": self.machine_name(node),
                        "vagrant_provider": self.settings.provider,
                        "project": str(self.project.directory)},
            ))
        return found

    def destroy(self) -> list[str]:
        removed: list[str] = []
        made = self.project.read_spec() or {}
        provider = made.get("provider", self.settings.provider)
        if self.project.exists:
            # The spec on disk describes what was made; the lab file may have changed since.
            names = [n["name"] for n in made.get("nodes", [])] or [n.name for n in self.spec.nodes]
            project = VagrantProject(self.project.directory, provider, self.spec.name,
                                     self.machine_timeout)
            states = project.status()
            existing = [name for name in names if states.get(name) not in (*ABSENT_STATES, None)]
            if provider == "libvirt":
                # Before vagrant's destroy, which fails on a domain it never recorded.
                for node in self.spec.nodes:
                    if node.name in names and node.name not in existing:
                        removed += self._remove_libvirt_orphan(node)
            if existing:
                try:
                    with project.failing_as("vagrant destroy"):
                        project.client.destroy()
                except LabError as exc:
                    if provider != "libvirt":
                        raise
                    # vagrant-libvirt's destroy crashes on a domain an interrupted up left
                    # half-made (fog finds no volume for it); libvirt removes it by name.
                    self.log(f"    {exc}; removing this lab's domains through libvirt")
                    for node in self.spec.nodes:
                        if node.name in existing:
                            libvirt.remove_domain(self.machine_name(node), self._pool())
                states = project.status()
                left = [name for name in names if states.get(name) not in (*ABSENT_STATES, None)]
                if left:
                    raise LabError(
                        f"`vagrant destroy` left {', '.join(left)}; see {project.log_path} and"
                        " rerun `invoke lab.down`"
                    )
                removed += [f"{provider} machine {name}" for name in existing]
        if provider == "docker":
            # Whatever Docker holds with this lab's label: leftovers, volumes, the network.
            removed += container_node.remove_labelled(self.docker, self.spec.name)
        elif provider == "libvirt":
            removed += self._remove_libvirt_networks(made)
        if self.project.directory.exists():
            self.project.remove()
            removed.append(f"vagrant project {self.project.directory}")
        return removed

    def _pool(self) -> str:
        return self.settings.storage_pool or libvirt.POOL_NAME

    def _remove_libvirt_orphan(self, node: NodeSpec) -> list[str]:
        """A domain or disk of this node that Vagrant has no id for: left by an interrupted
        `vagrant up`. Vagrant would stop on its name ("already taken"); nothing is in it yet,
        so it goes, as it would on a fresh up. Only this lab's names are ever touched."""
        name = self.machine_name(node)
        if name in libvirt.domains(name) or f"{name}.img" in libvirt.volumes(self._pool()):
            libvirt.remove_domain(name, self._pool())
            self.log(f"    {node.name}: removed VM {name} left by an interrupted run")
            return [f"libvirt domain {name}"]
        return []

    def _remove_libvirt_networks(self, made: dict[str, Any]) -> list[str]:
        """The lab's two libvirt networks, if vagrant-libvirt left them (it keeps a network
        that is still in use, and an interrupted up may leave one with no domain at all)."""
        ours = {m["machine"] for m in made.get("nodes", [])}
        ours |= {self.machine_name(node) for node in self.spec.nodes}
        left = [name for name in libvirt.domains(f"swarmlab-{self.spec.name}-") if name in ours]
        if left:
            raise LabError(f"libvirt still has {', '.join(left)} after `vagrant destroy`;"
                           " rerun `invoke lab.down`")
        removed = []
        existing = libvirt.networks()
        for name in (made.get("network", self.network_name),
                     made.get("management_network", self.management_network)):
            if name in existing:
                libvirt.remove_network(name)
                removed.append(f"libvirt network {name}")
        return removed

    def halt(self, node: NodeSpec | None = None) -> None:
        """Power machines off (all, or one); `lab.up` starts them again."""
        what = "vagrant halt" + (f" {node.name}" if node else "")
        with self.project.failing_as(what):
            self.project.client.halt(vm_name=node.name if node else None)
        states = self.project.status()
        nodes = [node] if node else list(self.spec.nodes)
        still = [n.name for n in nodes if states.get(n.name) == "running"]
        if still:
            raise LabError(f"{', '.join(still)} still running after `{what}`; see"
                           f" {self.project.log_path}")
        for halted in nodes:
            self.state.record_machine(halted.name, power=states.get(halted.name, "unknown"))

    def ssh_target(self, node: NodeSpec) -> SSHTarget:
        machine = self.state.machines.get(node.name, {})
        if "ssh_port" not in machine:
            raise NodeError(node.name, "has no SSH address recorded; run `invoke lab.up`")
        # The lab's user and key, not the box's `vagrant` user: the Vagrantfile installs the
        # lab key for that user, so prepare and the swarm work the same on every provider.
        return SSHTarget(
            host=machine["ssh_host"],
            port=int(machine["ssh_port"]),
            user=self.spec.ssh.user,
            key_filename=str(self.lab_dir / hostkeys.KEY_NAME),
            known_hosts=str(hostkeys.known_hosts_path(self.lab_dir)),
            host_key_alias=self.host_key_alias(node),
        )

    # --- snapshots -----------------------------------------------------------------------
    def _require_snapshots(self) -> None:
        if not self.can_snapshot:
            raise LabError(
                f"vagrant's {self.settings.provider} provider cannot take snapshots; use"
                " vagrant.provider virtualbox or libvirt, or rebuild with `invoke lab.down`"
                " then `invoke lab.up`"
            )

    def snapshot(self, name: str) -> None:
        self._require_snapshots()
        # --force: taking the same name again replaces it, so a rerun after a failure on one
        # machine finishes the job.
        self.project.run("snapshot", "save", "--force", name)
        missing = [node for node, names in self._snapshots().items() if name not in names]
        if missing:
            raise LabError(
                f"snapshot {name} is missing on {', '.join(missing)} after `vagrant snapshot"
                f" save`; see {self.project.log_path} and rerun `invoke lab.snapshot {name}`"
            )
        self._check_running(self.spec.nodes, "vagrant snapshot save")

    def revert(self, name: str) -> None:
        self._require_snapshots()
        lacking = [node for node, names in self._snapshots().items() if name not in names]
        if lacking:
            raise LabError(
                f"no snapshot {name} on {', '.join(lacking)}; see `invoke lab.reset` without"
                " --to for the latest, or take it with `invoke lab.snapshot NAME`"
            )
        # --no-provision: the machines come back exactly as saved (python-vagrant's
        # snapshot_restore would run the provisioners again).
        self.project.run("snapshot", "restore", "--no-provision", name)
        states = self._check_running(self.spec.nodes, "vagrant snapshot restore")
        self._record_machines(states)

    def list_snapshots(self) -> list[str]:
        """Snapshots every machine has, oldest first (so the last one is the latest)."""
        self._require_snapshots()
        per_machine = self._snapshots()
        first = per_machine.get(self.spec.nodes[0].name, [])
        return [name for name in first if all(name in names for names in per_machine.values())]

    def _snapshots(self) -> dict[str, list[str]]:
        found = parse_snapshot_list(
            self.project.run("snapshot", "list", "--machine-readable", what="vagrant snapshot list")
        )
        return {node.name: found.get(node.name, []) for node in self.spec.nodes}
