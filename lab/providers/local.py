"""The local provider: nodes are containers (systemd, sshd, dockerd) on a lab bridge network.

It works on any machine with a Docker engine. Each node has its own address on the lab's
own bridge, is reached only over SSH with the lab's key and a host key generated here and
pinned before the node first boots, and shares the host's kernel and clock: so it is given
as little power over either as a nested dockerd allows (see NODE_* below). Root in a node
is still close to root on the host: it keeps SYS_ADMIN, which can undo those limits.

A node is recorded in the state file only once it is whole (key in, host key pinned,
booted once); a container of the lab that is not recorded was left half-made by an
interrupted run and is made again, so every rerun can finish the job.
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import signal
import socket
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from .. import hostkeys
from ..errors import LabError, NodeError, SpecError
from ..hostroom import inotify_free
from ..spec import NodeSpec
from .base import MachineStatus, Provider

LABEL_LAB = "swarmlab.lab"
LABEL_NODE = "swarmlab.node"
ALLOWED_SETTINGS = {"image"}
# What a node needs to run systemd and a nested dockerd on a host where --privileged is
# refused, minus what would let it change the host (see testbed.md). Measured on a cgroup v1
# host: without SYS_ADMIN the node's systemd exits at once (code 255, no output), and a
# nested dockerd needs it for every mount and namespace, so it stays. RAWIO (I/O ports,
# /dev/mem) and SYSLOG (the host's kernel log) serve no node.
NODE_CAPS_DROPPED = ["SYS_RESOURCE", "SYS_TIME", "SYS_MODULE", "SYS_RAWIO", "SYSLOG"]
# seccomp's default profile forbids the mounts a nested dockerd makes; no AppArmor here.
NODE_SECURITY_OPTS = ["seccomp=unconfined", "apparmor=unconfined"]
# No device rule of our own: Docker's default list (null, zero, full, random, urandom, tty,
# console, ptmx, tun, pts) is what a nested dockerd's containers need. That list also grants
# every container `mknod` of any device, and a nested container's cgroup needs that grant
# from its parent (runc fails with "failed to write b *:* m" without it), so a node can make
# a block device node but never open one. Dropping MKNOD instead fails every nested container
# ("unable to apply caps": Docker gives them MKNOD). `a *:* rwm` let a node read and write
# the host's disks.
# Docker's default masked paths, as set on every plain container.
NODE_MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]
# Docker makes all of /proc/sys read-only; a node's dockerd must write its own network
# namespace's settings (forwarding, bridges, overlays), so net stays writable and every
# other tree of /proc/sys (host-wide: kernel.core_pattern, vm, fs...) is read-only.
NODE_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sysrq-trigger"]
PROC_SYS_TREES = ("abi", "crypto", "debug", "dev", "fs", "kernel", "user", "vm")
SSH_WAIT_SECONDS = 90
HOST_KEY_PUB = "/etc/ssh/ssh_host_ed25519_key.pub"
# A test hook, for tests/test_resume.py only: SWARMLAB_TEST_KILL_AT=create:<lab>/<node> makes
# this process kill itself (SIGKILL) right after that node's container is created, before
# anything is put in it, the one moment a user's Ctrl-C or a crash can leave a node half-made.
TEST_KILL_AT = "SWARMLAB_TEST_KILL_AT"


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException as exc:
        raise LabError(
            f"no Docker engine answers ({exc.__class__.__name__}); run `make docker` to install"
            " and start one, or start dockerd"
        ) from None
    return client


def apt_mirror_hosts() -> dict[str, str]:
    """The host's own apt mirror names, resolved here, so a node can reach them by name.

    Nodes only need the mirror when preparation installs Docker on an image without it;
    handing them the host's answer keeps node DNS from going anywhere else.
    """
    hosts: dict[str, str] = {}
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.sources"),
               *Path("/etc/apt/sources.list.d").glob("*.list")]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        for word in text.split():
            if "://" in word:
                name = word.split("://", 1)[1].split("/", 1)[0].split(":")[0]
                if name and name not in hosts:
                    try:
                        hosts[name] = socket.gethostbyname(name)
                    except OSError:
                        continue
    return hosts


def readonly_paths() -> list[str]:
    """Every tree of /proc/sys but net read-only: the ones this host's kernel has, and the
    usual ones besides (runc skips a path a kernel does not have)."""
    try:
        trees = {entry.name for entry in Path("/proc/sys").iterdir() if entry.is_dir()}
    except OSError:
        trees = set()
    trees = (trees | set(PROC_SYS_TREES)) - {"net"}
    return NODE_READONLY_PATHS + [f"/proc/sys/{tree}" for tree in sorted(trees)]


def kill_point_for_tests(point: str) -> None:
    """The test hook described at TEST_KILL_AT: no effect unless that variable names `point`."""
    if os.environ.get(TEST_KILL_AT) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def host_routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    try:
        out = subprocess.run(
            ["ip", "-j", "-4", "route", "show", "table", "all"],
            capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    routes = []
    for route in json.loads(out or "[]"):
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("type") in ("local", "broadcast"):
            continue
        try:
            routes.append((ipaddress.IPv4Network(dst, strict=False), route.get("dev", "")))
        except ValueError:
            continue
    return routes


class LocalProvider(Provider):
    name = "local"
    owns_clock = False
    can_snapshot = False

    @property
    def image(self) -> str:
        return str(self.spec.provider_settings.get("image", "swarmlab/node:bookworm"))

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_LAB: self.spec.name}

    _client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    # --- preflight -------------------------------------------------------------------
    def preflight(self) -> list[str]:
        unknown = set(self.spec.provider_settings) - ALLOWED_SETTINGS
        if unknown:
            raise SpecError(
                f"lab file: local.{sorted(unknown)[0]} is unknown; allowed: "
                + ", ".join(sorted(ALLOWED_SETTINGS))
            )
        if self.spec.os_family != "debian":
            raise SpecError(
                "lab file: os_family rhel is not available with provider local (its node image"
                " is Debian); use os_family: debian, or provider vmware/vagrant"
            )
        version = self.client.version().get("Version", "?")
        self._check_subnet()
        self._check_room()
        from ..images import ensure_images

        wanted = [self.image, *self.spec.images.values()]
        local_images = [name for name in wanted if name.startswith("swarmlab/")]
        built = ensure_images(local_images, log=self.log, client=self.client)
        for name in wanted:
            if name not in local_images:
                try:
                    self.client.images.get(name)
                except ImageNotFound:
                    raise LabError(
                        f"image {name} is not on this host and nothing can be pulled here;"
                        " load it with `docker load` or use the swarmlab/ images"
                    ) from None
        lines = [f"docker engine {version}", f"node image {self.image}"]
        lines += [f"image {name}: {how}" for name, how in built.items() if how != "ok"]
        return lines

    def _check_room(self) -> None:
        """Each node's systemd takes about eight inotify instances from root's allowance;
        past it a new node's systemd exits at once with no word, so say it here instead."""
        missing = [n for n in self.spec.nodes if self._find_container(n) is None]
        free, limit = inotify_free()
        needed = 8 * len(missing)
        if needed > free:
            raise LabError(
                f"this host has {free} inotify instances free (fs.inotify.max_user_instances ="
                f" {limit}) and {len(missing)} new nodes need about {needed}; raise it with"
                " `sysctl -w fs.inotify.max_user_instances=1024` (scripts/host-setup does)"
            )

    def _existing_network(self) -> Any | None:
        networks = self.client.networks.list(names=[self.network_name])
        return next((n for n in networks if n.name == self.network_name), None)

    def _check_subnet(self) -> None:
        subnet = ipaddress.IPv4Network(self.spec.subnet)
        network = self._existing_network()
        own_bridge = None
        if network is not None:
            if network.attrs.get("Labels", {}).get(LABEL_LAB) != self.spec.name:
                raise LabError(
                    f"a Docker network named {self.network_name} exists but is not this lab's;"
                    " rename the lab (name:) or remove that network yourself"
                )
            configs = network.attrs.get("IPAM", {}).get("Config") or []
            current = configs[0].get("Subnet") if configs else None
            if current != str(subnet):
                raise SpecError(
                    f"lab file: subnet {subnet} differs from the lab's existing network"
                    f" ({current}); run `invoke lab.down` first or keep subnet {current}"
                )
            options = network.attrs.get("Options") or {}
            own_bridge = options.get("com.docker.network.bridge.name") or "br-" + network.id[:12]
        for route, dev in host_routes():
            if dev == own_bridge:
                continue
            if route.overlaps(subnet):
                raise SpecError(
                    f"lab file: subnet {subnet} overlaps the host's route {route} on {dev};"
                    " pick a free range, for example 10.78.0.0/24"
                )

    # --- create ------------------------------------------------------------------------
    def _ensure_network(self) -> Any:
        network = self._existing_network()
        if network is None:
            subnet = ipaddress.IPv4Network(self.spec.subnet)
            gateway = str(next(subnet.hosts()))
            ipam = docker.types.IPAMConfig(
                pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=gateway)]
            )
            try:
                network = self.client.networks.create(
                    self.network_name, driver="bridge", ipam=ipam, labels=self.labels,
                    options={"com.docker.network.bridge.name": f"sl-{self.spec.name}"[:15]},
                )
            except APIError as exc:
                raise LabError(
                    f"cannot create network {self.network_name} on {subnet}:"
                    f" {exc.explanation}; pick another subnet in the lab file"
                ) from None
        if self.state.resources.get("network") != self.network_name:
            # Also when a run was interrupted between making the network and recording it.
            self.state.record_resource("network", self.network_name)
        return network

    def _find_container(self, node: NodeSpec) -> Any | None:
        try:
            container = self.client.containers.get(self.machine_name(node))
        except NotFound:
            return None
        if container.labels.get(LABEL_LAB) != self.spec.name:
            raise NodeError(
                node.name,
                f"a container named {self.machine_name(node)} exists but is not this lab's;"
                " rename the lab or remove that container yourself",
            )
        return container

    def create(self) -> dict[str, str]:
        self._ensure_network()
        lab_key = hostkeys.lab_key(self.lab_dir, self.spec.name)
        mirror_hosts = apt_mirror_hosts()
        results: dict[str, str] = {}
        waiting: list[NodeSpec] = []
        for node in self.spec.nodes:
            container = self._find_container(node)
            if container is not None and not self._whole(node, container):
                self.log(f"    {node.name}: left half-made by an interrupted run; making it again")
                container.remove(force=True, v=False)
                container = None
            if container is not None:
                address = self._container_address(container)
                image = container.attrs["Config"]["Image"]
                if address != node.address or image != self.image:
                    raise NodeError(
                        node.name,
                        f"its container has {address} and {image} but the lab file says"
                        f" {node.address} and {self.image}; run `invoke lab.down` then"
                        " `invoke lab.up` to rebuild it",
                    )
                if container.status != "running":
                    container.start()
                    results[node.name] = "started"
                    waiting.append(node)
                else:
                    results[node.name] = "ok"
                if self._pin_what_it_holds(node, container):
                    results[node.name] = "re-pinned"
                continue
            self._create_container(node, lab_key, mirror_hosts)
            results[node.name] = "created"
            waiting.append(node)
        for node in waiting:
            self._wait_for_ssh(node)
        return results

    def _whole(self, node: NodeSpec, container: Any) -> bool:
        """Was this container finished: recorded (which happens only once its keys are in
        place and it has started) and booted at least once? A record without a first boot is
        what runs before this rule left behind when interrupted."""
        recorded = self.state.machines.get(node.name, {})
        started = container.attrs.get("State", {}).get("StartedAt", "")
        return recorded.get("id") == container.id[:12] and not started.startswith("0001-")

    def _pin_what_it_holds(self, node: NodeSpec, container: Any) -> bool:
        """Pin the host key a whole node holds, when it differs from the pinned one (its key
        was made again inside it, or known_hosts lost its line): read through Docker, the
        provider's own channel, never from whatever answers on the network. This is what
        makes "run `invoke lab.up` to re-pin it" true for local nodes. True if re-pinned."""
        try:
            stream, _ = container.get_archive(HOST_KEY_PUB)
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                member = archive.extractfile(archive.getmembers()[0])
                held = member.read().decode() if member else ""
        except (NotFound, tarfile.TarError, IndexError):
            return False  # no key in the node yet: its sshd makes one, nothing to pin here
        words = held.split()
        if len(words) < 2 or hostkeys.pinned(self.lab_dir, node.address, 22) == " ".join(
                words[:2]):
            return False
        hostkeys.pin(self.lab_dir, node.address, 22, held)
        self.log(f"    {node.name}: its host key is not the pinned one; pinned the key it holds"
                 " (read through Docker)")
        return True

    def _create_container(
        self, node: NodeSpec, lab_key: Path, mirror_hosts: dict[str, str]
    ) -> None:
        labels = {**self.labels, LABEL_NODE: node.name}
        # A new machine gets a new disk: an old volume would bring back the old node's
        # swarm identity and images, and the lab would not be what a fresh up gives.
        for stale in self.client.volumes.list(filters={"label": f"{LABEL_LAB}={self.spec.name}"}):
            if stale.name == self.volume_name(node):
                stale.remove(force=True)
        volume = self.client.volumes.create(self.volume_name(node), labels=labels)
        networking = self.client.api.create_networking_config(
            {self.network_name: self.client.api.create_endpoint_config(ipv4_address=node.address)}
        )
        host_config = self.client.api.create_host_config(
            cap_add=["ALL"],
            cap_drop=NODE_CAPS_DROPPED,
            security_opt=NODE_SECURITY_OPTS,
            cgroupns="private",
            tmpfs={"/run": "", "/run/lock": ""},
            binds={volume.name: {"bind": "/var/lib/docker", "mode": "rw"}},
            extra_hosts=mirror_hosts,
            network_mode=self.network_name,
            init=False,
        )
        host_config["MaskedPaths"] = NODE_MASKED_PATHS
        host_config["ReadonlyPaths"] = readonly_paths()
        try:
            created = self.client.api.create_container(
                self.image,
                name=self.machine_name(node),
                hostname=node.name,
                labels=labels,
                host_config=host_config,
                networking_config=networking,
                stop_signal="SIGRTMIN+3",
                environment={"container": "docker"},
            )
        except APIError as exc:
            raise NodeError(node.name, f"cannot create its container: {exc.explanation}") from None
        kill_point_for_tests(f"create:{self.spec.name}/{node.name}")
        container = self.client.containers.get(created["Id"])
        host_key, host_key_public = hostkeys.make_host_key(self.lab_dir, node.name)
        container.put_archive("/", _tar({
            "root/.ssh/authorized_keys": (hostkeys.public_key(lab_key) + "\n", 0o600),
            "etc/ssh/ssh_host_ed25519_key": (host_key.read_text(), 0o600),
            HOST_KEY_PUB.lstrip("/"): (host_key_public + "\n", 0o644),
        }))
        host_key.unlink()  # the node holds its private key; the controller needs only the public
        hostkeys.pin(self.lab_dir, node.address, 22, host_key_public)
        try:
            container.start()
        except APIError as exc:
            raise NodeError(node.name, f"its container did not start: {exc.explanation}") from None
        # Only now is the node whole: a rerun that finds it unrecorded makes it again.
        self.state.record_machine(
            node.name, id=container.id[:12], container=container.name, address=node.address,
            created=time.time(),
        )

    def _wait_for_ssh(self, node: NodeSpec) -> None:
        deadline = time.monotonic() + SSH_WAIT_SECONDS
        while time.monotonic() < deadline:
            container = self._find_container(node)
            if container is None:
                raise NodeError(node.name, "its container vanished while booting")
            if container.status == "exited":
                state = container.attrs.get("State", {})
                last = container.logs(tail=1).decode(errors="replace").strip()
                raise NodeError(
                    node.name,
                    f"its container stopped while booting (exit {state.get('ExitCode')}"
                    f"{', ' + state['Error'] if state.get('Error') else ''}"
                    f"{', last words: ' + last if last else ''}); see `docker logs"
                    f" {self.machine_name(node)}`",
                )
            try:
                with socket.create_connection((node.address, 22), timeout=2) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise NodeError(
            node.name, f"no SSH answer on {node.address}:22 within {SSH_WAIT_SECONDS} s"
        )

    @staticmethod
    def _container_address(container: Any) -> str | None:
        networks = container.attrs.get("NetworkSettings", {}).get("Networks", {})
        for settings in networks.values():
            configured = (settings.get("IPAMConfig") or {}).get("IPv4Address")
            if configured or settings.get("IPAddress"):
                return configured or settings.get("IPAddress")
        return None

    # --- status / destroy -------------------------------------------------------------
    def status(self) -> list[MachineStatus]:
        found: list[MachineStatus] = []
        for node in self.spec.nodes:
            container = self._find_container(node)
            if container is None:
                found.append(MachineStatus(node.name, exists=False, running=False, power="absent"))
                continue
            found.append(MachineStatus(
                node.name,
                exists=True,
                running=container.status == "running",
                address=self._container_address(container) or node.address,
                power=container.status,
                detail={"container": container.name, "id": container.id[:12]},
            ))
        return found

    def destroy(self) -> list[str]:
        removed: list[str] = []
        selector = {"label": f"{LABEL_LAB}={self.spec.name}"}
        doing = "listing the lab's containers"
        try:
            for container in self.client.containers.list(all=True, filters=selector):
                doing = f"removing container {container.name}"
                container.remove(force=True, v=False)
                removed.append(f"container {container.name}")
            doing = "listing the lab's volumes"
            for volume in self.client.volumes.list(filters=selector):
                doing = f"removing volume {volume.name}"
                volume.remove(force=True)
                removed.append(f"volume {volume.name}")
            doing = "listing the lab's networks"
            for network in self.client.networks.list(filters=selector):
                doing = f"removing network {network.name}"
                network.remove()
                removed.append(f"network {network.name}")
        except (DockerException, requests.RequestException) as exc:
            # docker-py's errors (and a timeout of its HTTP session) are many lines long.
            said = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
            done = f" (removed so far: {', '.join(removed)})" if removed else ""
            raise LabError(
                f"lab.down stopped {doing}: {' '.join(str(said).split())}{done}; rerun"
                " `invoke lab.down` once Docker answers"
            ) from None
        return removed



def _tar(files: dict[str, tuple[str, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directories = sorted({str(Path(p).parent) for p in files})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o700 if directory.endswith(".ssh") else 0o755
            archive.addfile(info)
        for path, (content, mode) in files.items():
            data = content.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
