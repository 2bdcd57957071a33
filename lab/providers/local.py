"""The local provider: nodes are containers (systemd, sshd, dockerd) on a lab bridge network.

It works on any machine with a Docker engine. Each node has its own address on the lab's
own bridge, is reached only over SSH with the lab's key and a host key generated here and
pinned before the node first boots, and shares the host's kernel and clock: so it is given
as little power over either as a nested dockerd allows (the flags are lab/container_node.py's,
shared with every provider whose nodes are containers). Root in a node is still close to root
on the host: it keeps SYS_ADMIN, which can undo those limits.

A node is recorded in the state file only once it is whole (key in, host key pinned,
booted once); a container of the lab that is not recorded was left half-made by an
interrupted run and is made again, so every rerun can finish the job.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import tarfile
import time
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, NotFound

from .. import container_node, hostkeys
from ..container_node import (  # noqa: F401 (host_routes: incus and vmware import it from here)
    LABEL_LAB,
    LABEL_NODE,
    apt_mirror_hosts,
    docker_client,
    host_routes,
)
from ..errors import LabError, NodeError, SpecError
from ..hostroom import INOTIFY_PER_NODE, inotify_free
from ..spec import NodeSpec
from ..waits import wait_until
from .base import MachineStatus, Provider

ALLOWED_SETTINGS = {"image"}
SSH_WAIT_SECONDS = 90
HOST_KEY_PUB = "/etc/ssh/ssh_host_ed25519_key.pub"
# A test hook, for tests/test_resume.py only: SWARMLAB_TEST_KILL_AT=create:<lab>/<node> makes
# this process kill itself (SIGKILL) right after that node's container is created, before
# anything is put in it, the one moment a user's Ctrl-C or a crash can leave a node half-made.
TEST_KILL_AT = "SWARMLAB_TEST_KILL_AT"


def kill_point_for_tests(point: str) -> None:
    """The test hook described at TEST_KILL_AT: no effect unless that variable names `point`."""
    if os.environ.get(TEST_KILL_AT) == point:
        os.kill(os.getpid(), signal.SIGKILL)


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
        self._check_ssh_user()
        version = self.client.version().get("Version", "?")
        container_node.check_subnet(self.client, self.network_name, self.spec.name,
                                    self.spec.subnet)
        self._check_room()
        built = container_node.check_images(
            self.client, [self.image, *self.spec.images.values()], self.log)
        lines = [f"docker engine {version}", f"node image {self.image}"]
        lines += [f"image {name}: {how}" for name, how in built.items() if how != "ok"]
        return lines

    def _check_ssh_user(self) -> None:
        """The lab key goes to root's authorized_keys in a new node (the node image has no
        other user), so another ssh.user could never log in to it. Refused only while a node
        is still to be made: a user added to made nodes (with the lab key and sudo) works."""
        user = self.spec.ssh.user
        if user != "root" and any(self._find_container(n) is None for n in self.spec.nodes):
            raise SpecError(
                f"lab file: ssh.user {user} cannot log in to new nodes of provider local (the"
                " lab key is installed for root only); make the lab with ssh.user: root, then"
                " add the user on its nodes, or use provider vagrant or vmware"
            )

    def _check_room(self) -> None:
        """Each node takes INOTIFY_PER_NODE inotify instances from root's allowance; past it
        a new node's systemd exits at once with no word, so say it here instead."""
        missing = [n for n in self.spec.nodes if self._find_container(n) is None]
        free, limit = inotify_free()
        needed = INOTIFY_PER_NODE * len(missing)
        if needed > free:
            raise LabError(
                f"this host has {free} inotify instances free (fs.inotify.max_user_instances ="
                f" {limit}) and {len(missing)} new nodes need about {needed}; raise it with"
                " `sysctl -w fs.inotify.max_user_instances=1024` (scripts/host-setup does)"
            )

    # --- create ------------------------------------------------------------------------
    def _ensure_network(self) -> Any:
        network, _ = container_node.ensure_network(self.client, self.network_name,
                                                   self.spec.name, self.spec.subnet)
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
        host_config = container_node.host_config(
            self.client.api,
            binds={volume.name: {"bind": "/var/lib/docker", "mode": "rw"}},
            extra_hosts=mirror_hosts,
            network_mode=self.network_name,
        )
        try:
            created = self.client.api.create_container(
                self.image,
                name=self.machine_name(node),
                hostname=node.name,
                labels=labels,
                host_config=host_config,
                networking_config=networking,
                stop_signal=container_node.STOP_SIGNAL,
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
        def greeting() -> str:
            """sshd's first words on the node's port, or what stood in their way; a container
            that is gone or stopped ends the wait at once."""
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
                    return sock.recv(4).decode(errors="replace") or "connection closed at once"
            except OSError as exc:
                return str(exc) or type(exc).__name__

        wait_until(greeting, timeout=SSH_WAIT_SECONDS, interval=0.3,
                   what=f"an SSH answer on {node.address}:22",
                   done=lambda said: said.startswith("SSH-"),
                   error=lambda message: NodeError(node.name, message))

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
        return container_node.remove_labelled(self.client, self.spec.name)



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
