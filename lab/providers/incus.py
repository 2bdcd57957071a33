"""The incus provider: nodes are unprivileged Incus system containers, one project per lab.

What a class on a shared server wants: root in a node is a high uid on the host
(`security.idmap.isolated`: each node its own range), with Incus's own seccomp and AppArmor
and no way to the host's disks or kernel settings, yet systemd, sshd and a nested dockerd
with swarm and overlay networks run inside (`security.nesting`). Never
`security.privileged`.

Each lab lives in its own Incus project `swarmlab-<lab>` (instances and profiles of its own;
images shared from the default project, so the node image of each release is imported once
per recipe) and on its own bridge network with the lab's subnet. Everything made carries the
`user.swarmlab.lab` key; a project or network of that name without it is refused, never
reused or removed. The node's address, SSH host key and the lab's key are written into the
container before its first boot, so the host key is pinned before anything connects.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from pathlib import Path
from typing import Any

from .. import hostkeys
from ..errors import LabError, NodeError, SpecError
from ..incus.client import Incus, IncusError, Remote
from ..spec import LabSpec, NodeSpec
from ..waits import wait_until
from .base import MachineStatus, Provider

LABEL = "user.swarmlab.lab"
LABEL_NODE = "user.swarmlab.node"
DEFAULT_SETTINGS: dict[str, Any] = {
    "cpus": 2, "memory": "1GiB", "pool": "swarmlab",
    # A remote server or cluster over HTTPS; none: the local incusd on its socket.
    "remote": None, "client_cert": None, "client_key": None, "server_cert": None,
    # A cluster member for every node of the lab; none: Incus places the first node and the
    # others follow it (a lab's bridge is one per member: its nodes must share a member).
    "target": None,
}
TLS_FILES = ("client_cert", "client_key", "server_cert")
SSH_WAIT_SECONDS = 90
IMAGE_ALIAS_PREFIX = "swarmlab-node-"
# Each lab project sees the default project's images (the node image is half a gigabyte:
# one copy per recipe, not per lab) but has its own instances and profiles.
PROJECT_FEATURES = {
    "features.images": "false",
    "features.profiles": "true",
    "features.networks": "false",
    "features.storage.volumes": "true",
}
# Bridges are named after the lab and must fit IFNAMSIZ (15); `sli-` keeps them apart from
# the local provider's `sl-<lab>` Docker bridges.
BRIDGE_PREFIX = "sli-"


def remote_of(settings: dict[str, Any]) -> Remote | None:
    """The remote server the settings name (TLS file paths expanded), or None: the socket."""
    if not settings["remote"]:
        return None
    files = {key: str(Path(settings[key]).expanduser()) if settings[key] else None
             for key in TLS_FILES}
    return Remote(str(settings["remote"]), str(files["client_cert"]),
                  str(files["client_key"]), files["server_cert"])


def cluster_members(spec: LabSpec) -> list[str] | None:
    """The members a class spreads its labs over: None where the lab file sets incus.target
    (every lab there) or the server is not a cluster."""
    settings = {**DEFAULT_SETTINGS, **spec.provider_settings}
    if settings["target"]:
        return None
    return Incus(remote=remote_of(settings)).members()


class IncusProvider(Provider):
    name = "incus"
    owns_clock = False
    can_snapshot = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._api: Incus | None = None

    @property
    def api(self) -> Incus:
        if self._api is None:
            self._check_settings()
            api = Incus(remote=self._remote())
            api.ping()
            self._api = api
        return self._api

    @property
    def project(self) -> str:
        return f"swarmlab-{self.spec.name}"

    @property
    def network_name(self) -> str:
        return (BRIDGE_PREFIX + self.spec.name)[:15]

    def machine_name(self, node: NodeSpec) -> str:
        # Inside its own project the node's name needs no lab prefix; it is also the
        # container's host name (the image's templates write /etc/hostname from it).
        return node.name

    @property
    def settings(self) -> dict[str, Any]:
        return {**DEFAULT_SETTINGS, **self.spec.provider_settings}

    @property
    def gateway(self) -> str:
        return str(next(ipaddress.IPv4Network(self.spec.subnet).hosts()))

    # --- preflight -------------------------------------------------------------------------
    def preflight(self) -> list[str]:
        self._check_settings()
        if self.spec.os_family != "debian":
            raise SpecError(
                "lab file: os_family rhel is not available with provider incus (its node image"
                " is Debian); use os_family: debian, or provider vmware/vagrant"
            )
        version = self.api.ping().get("environment", {}).get("server_version", "?")
        pool = self.settings["pool"]
        if self.api.find(f"/1.0/storage-pools/{pool}") is None:
            raise LabError(
                f"Incus has no storage pool {pool!r}; run `make incus` (it makes `swarmlab`)"
                " or set incus.pool to one of yours"
            )
        self._check_project()
        self._check_network()
        members = self.api.members()
        target = self.settings["target"]
        if target is not None and target not in (members or []):
            raise SpecError(
                f"lab file: incus.target is {target!r} but "
                + (f"the cluster's members are {', '.join(members)}" if members else
                   "this Incus server is not a cluster; remove incus.target")
            )
        alias, how = self._ensure_image()
        lines = [f"incus {version}", f"node image {alias} ({self.spec.release})"]
        if members:
            lines.append(f"cluster of {len(members)}; lab on {self._location() or 'any member'}")
        if how != "ok":
            lines.append(f"node image {alias}: {how}")
        return lines

    def _check_settings(self) -> None:
        unknown = set(self.spec.provider_settings) - set(DEFAULT_SETTINGS)
        if unknown:
            raise SpecError(
                f"lab file: incus.{sorted(unknown)[0]} is unknown; allowed: "
                + ", ".join(sorted(DEFAULT_SETTINGS))
            )
        cpus = self.settings["cpus"]
        if not isinstance(cpus, int) or isinstance(cpus, bool) or not 1 <= cpus <= 256:
            raise SpecError(f"lab file: incus.cpus is {cpus!r}; allowed: a whole number 1-256")
        memory = str(self.settings["memory"])
        number = memory.rstrip("KMGTiB")
        if not number.isdigit() or memory[len(number):] not in ("MiB", "GiB", "MB", "GB"):
            raise SpecError(
                f"lab file: incus.memory is {memory!r}; allowed: a size such as 512MiB or 2GiB"
            )
        remote = self.settings["remote"]
        if remote is None:
            return
        if not str(remote).startswith("https://"):
            raise SpecError(
                f"lab file: incus.remote is {remote!r}; allowed: an https:// URL such as"
                " https://incus1.example.org:8443"
            )
        for key in TLS_FILES:
            value = self.settings[key]
            if value is None and key != "server_cert":
                raise SpecError(
                    f"lab file: incus.remote needs incus.{key}: the path of the client"
                    f" {'certificate' if key == 'client_cert' else 'key'} the server trusts"
                )
            if value is not None and not Path(value).expanduser().is_file():
                raise SpecError(f"lab file: incus.{key} {value} is not a readable file")

    def _remote(self) -> Remote | None:
        return remote_of(self.settings)

    def _owned(self, config: dict[str, Any]) -> bool:
        return config.get(LABEL) == self.spec.name

    def _check_project(self) -> dict[str, Any] | None:
        project = self.api.find(f"/1.0/projects/{self.project}")
        if project is not None and not self._owned(project.get("config", {})):
            raise LabError(
                f"an Incus project named {self.project} exists but was not made by swarmlab for"
                f" this lab (no {LABEL}={self.spec.name}); rename the lab (name:) or remove"
                " that project yourself"
            )
        return project

    def _check_network(self) -> dict[str, Any] | None:
        subnet = ipaddress.IPv4Network(self.spec.subnet)
        mine = self.api.find(f"/1.0/networks/{self.network_name}")
        if mine is not None:
            config = mine.get("config", {})
            if not self._owned(config):
                raise LabError(
                    f"an Incus network named {self.network_name} exists but was not made by"
                    f" swarmlab for this lab (no {LABEL}={self.spec.name}); rename the lab"
                    " (name:) or remove that network yourself"
                )
            current = ipaddress.IPv4Interface(config["ipv4.address"]).network
            if current != subnet:
                raise SpecError(
                    f"lab file: subnet {subnet} differs from the lab's existing network"
                    f" ({current}); run `invoke lab.down` first or keep subnet {current}"
                )
        for network in self.api.get("/1.0/networks", query={"recursion": "1"}):
            address = (network.get("config") or {}).get("ipv4.address", "")
            if network["name"] == self.network_name or not network.get("managed"):
                continue
            if address and address != "none" and \
                    ipaddress.IPv4Interface(address).network.overlaps(subnet):
                raise SpecError(
                    f"lab file: subnet {subnet} overlaps Incus network {network['name']}"
                    f" ({address}); pick a free range, for example 10.78.0.0/24"
                )
        from .local import host_routes  # one reader of the host's routes for every provider

        for route, dev in host_routes():
            if dev != self.network_name and route.overlaps(subnet):
                raise SpecError(
                    f"lab file: subnet {subnet} overlaps the host's route {route} on {dev};"
                    " pick a free range, for example 10.78.0.0/24"
                )
        return mine

    # --- the node image --------------------------------------------------------------------
    @property
    def image_alias(self) -> str:
        """The node image of the lab's release and today's recipe (the suite is in it)."""
        from ..images import incus_image_digest

        return IMAGE_ALIAS_PREFIX + incus_image_digest(self.spec.release)

    def _ensure_image(self) -> tuple[str, str]:
        """The node image's alias in the default project, imported if missing: (alias, how)."""
        from ..images import build_incus_tarball

        alias = self.image_alias
        if self.api.find(f"/1.0/images/aliases/{alias}") is not None:
            return alias, "ok"
        started = time.monotonic()
        tarball = build_incus_tarball(self.spec.release, log=self.log)
        try:
            self.api.import_image(tarball, alias,
                                  f"swarmlab node image, Debian {self.spec.release}"
                                  " (lab/images.py)")
        except IncusError as exc:
            if self.api.find(f"/1.0/images/aliases/{alias}") is None:  # not a parallel import
                raise LabError(f"node image {alias}: Incus refused the import: {exc}") from None
        finally:
            tarball.unlink(missing_ok=True)
        self._remove_stale_images(alias)
        return alias, f"imported in {time.monotonic() - started:.1f} s"

    def _remove_stale_images(self, current: str) -> None:
        """Node images of older recipes of the lab's release are half a gigabyte each and
        never used again. The other release's image is current too (its labs come up beside
        this one's). An image a container was made from stays while it exists: someone still
        builds on that recipe (another swarmlab checkout on a class server, a user's own
        `incus launch`), and removing it would only have them import it again."""
        try:
            instances = self.api.get("/1.0/instances",
                                     query={"recursion": "1", "all-projects": "true"})
        except IncusError:  # a client restricted to its projects cannot see who uses what
            return
        in_use = {item["config"].get("volatile.base_image") for item in instances}
        for image in self.api.get("/1.0/images", query={"recursion": "1"}):
            aliases = [a["name"] for a in image.get("aliases", [])]
            older = bool(aliases) and all(a.startswith(IMAGE_ALIAS_PREFIX) and a != current
                                          for a in aliases)
            release = (image.get("properties") or {}).get("release")
            if older and release == self.spec.release and image["fingerprint"] not in in_use:
                with contextlib.suppress(IncusError):
                    self.api.delete(f"/1.0/images/{image['fingerprint']}")

    # --- create ----------------------------------------------------------------------------
    def _quota(self) -> dict[str, str]:
        """The project's limits: the lab's nodes and no more, so a student given the project
        (or a runaway lab on a class server) cannot take more than the lab file grants."""
        count = len(self.spec.nodes)
        memory = str(self.settings["memory"])
        number = memory.rstrip("KMGTiB")
        return {
            "limits.instances": str(count),
            "limits.cpu": str(self.settings["cpus"] * count),
            "limits.memory": f"{int(number) * count}{memory[len(number):]}",
        }

    def _ensure_project(self) -> None:
        project = self._check_project()
        if project is None:
            self.api.post("/1.0/projects", {
                "name": self.project,
                "description": f"swarmlab lab {self.spec.name}",
                "config": {**PROJECT_FEATURES, **self._quota(), LABEL: self.spec.name},
            })
            self.state.record_resource("project", self.project)
        elif any(project["config"].get(k) != v for k, v in self._quota().items()):
            self.api.request("PATCH", f"/1.0/projects/{self.project}",
                             {"config": self._quota()})

    def _location(self) -> str | None:
        """The member the lab's nodes live on: incus.target, else where a node already is."""
        if self.settings["target"]:
            return str(self.settings["target"])
        if self._check_project() is None:
            return None
        for item in self.api.get("/1.0/instances", project=self.project,
                                 query={"recursion": "1"}):
            if item.get("location") and item["location"] != "none":
                return str(item["location"])
        return None

    def _ensure_network(self) -> None:
        if self._check_network() is None:
            prefix = ipaddress.IPv4Network(self.spec.subnet).prefixlen
            # A cluster's bridge is made pending on every member first, then for real.
            for member in self.api.members() or []:
                self.api.create_network({"name": self.network_name, "type": "bridge",
                                         "config": {}}, target=member)
            self.api.create_network({
                "name": self.network_name,
                "type": "bridge",
                "description": f"swarmlab lab {self.spec.name}",
                "config": {
                    "ipv4.address": f"{self.gateway}/{prefix}",
                    # Lab traffic stays on this machine: no NAT to the outside.
                    "ipv4.nat": "false",
                    "ipv6.address": "none",
                    LABEL: self.spec.name,
                },
            })
            self.state.record_resource("network", self.network_name)

    def _instance(self, node: NodeSpec) -> dict[str, Any] | None:
        found = self.api.find(f"/1.0/instances/{self.machine_name(node)}", project=self.project)
        if found is not None and not self._owned(found.get("config", {})):
            raise NodeError(
                node.name,
                f"an instance named {self.machine_name(node)} in project {self.project} is not"
                " this lab's; remove it yourself",
            )
        return found

    def create(self) -> dict[str, str]:
        self._ensure_project()
        self._ensure_network()
        alias = self.image_alias
        lab_key = hostkeys.lab_key(self.lab_dir, self.spec.name)
        results: dict[str, str] = {}
        to_start: list[NodeSpec] = []
        # One at a time: created in parallel, isolated idmaps were seen to collide (two nodes
        # given the same host uid range). Starting them together is safe.
        for node in self.spec.nodes:
            instance = self._instance(node)
            if instance is not None and node.name not in self.state.machines:
                # Made by a run that died before the node had its keys and a pinned host
                # key (it is recorded only then), or by a lab whose state was lost: it could
                # never be reached, so it is made again.
                self.log(f"    {node.name}: left half-made by an interrupted run; making it"
                         " again")
                self._remove_instance(instance)
                instance = None
            if instance is None:
                self._create_instance(node, alias, lab_key, self._location())
                results[node.name] = "created"
                to_start.append(node)
                continue
            address = instance.get("devices", {}).get("eth0", {}).get("ipv4.address")
            if address != node.address:
                raise NodeError(
                    node.name,
                    f"its instance has {address} but the lab file says {node.address}; run"
                    " `invoke lab.down` then `invoke lab.up` to rebuild it",
                )
            if instance.get("status") != "Running":
                results[node.name] = "started"
                to_start.append(node)
            else:
                results[node.name] = "ok"
        self._start(to_start)
        for node in to_start:
            self._wait_for_ssh(node)
        return results

    def _create_instance(self, node: NodeSpec, alias: str, lab_key: Any,
                         target: str | None) -> None:
        name = self.machine_name(node)
        prefix = ipaddress.IPv4Network(self.spec.subnet).prefixlen
        try:
            self.api.post("/1.0/instances", {
                "name": name,
                "type": "container",
                "source": {"type": "image", "alias": alias},
                "profiles": [],
                "config": {
                    "security.nesting": "true",
                    "security.idmap.isolated": "true",
                    "security.privileged": "false",
                    "limits.cpu": str(self.settings["cpus"]),
                    "limits.memory": str(self.settings["memory"]),
                    LABEL: self.spec.name,
                    LABEL_NODE: node.name,
                },
                "devices": {
                    "root": {"type": "disk", "path": "/", "pool": self.settings["pool"]},
                    "eth0": {"type": "nic", "name": "eth0", "network": self.network_name,
                             "ipv4.address": node.address},
                },
            }, project=self.project, query={"target": target} if target else None)
        except IncusError as exc:
            raise NodeError(node.name, f"Incus could not create its container: {exc}") from None
        host_key, host_key_public = hostkeys.make_host_key(self.lab_dir, node.name)
        net = f"ADDRESS={node.address}/{prefix}\nGATEWAY={self.gateway}\n"
        for directory, mode in (("/root/.ssh", 0o700), ("/etc/swarmlab", 0o755)):
            self.api.make_directory(name, directory, mode, project=self.project)
        for path, content, mode in (
            ("/root/.ssh/authorized_keys", hostkeys.public_key(lab_key) + "\n", 0o600),
            ("/etc/ssh/ssh_host_ed25519_key", host_key.read_text(), 0o600),
            ("/etc/ssh/ssh_host_ed25519_key.pub", host_key_public + "\n", 0o644),
            ("/etc/swarmlab/net", net, 0o644),
        ):
            self.api.push_file(name, path, content.encode(), mode, project=self.project)
        host_key.unlink()  # the node holds its private key; the controller needs only the public
        hostkeys.pin(self.lab_dir, node.address, 22, host_key_public)
        # Recorded only now, whole: a rerun after a death before this line makes it again.
        self.state.record_machine(
            node.name, instance=name, project=self.project, address=node.address,
            created=time.time(),
        )

    def _remove_instance(self, instance: dict[str, Any]) -> None:
        name = instance["name"]
        if instance.get("status") == "Running":
            self._raise_first([self.api.put(f"/1.0/instances/{name}/state",
                                             {"action": "stop", "force": True},
                                             project=self.project, wait=False)["id"]])
        self._raise_first([self.api.delete(f"/1.0/instances/{name}", project=self.project,
                                           wait=False)["id"]])

    def _start(self, nodes: list[NodeSpec]) -> None:
        operations = []
        for node in nodes:
            operations.append((node, self.api.put(
                f"/1.0/instances/{self.machine_name(node)}/state",
                {"action": "start", "timeout": 60}, project=self.project, wait=False,
            )))
        errors = self.api.wait_all([operation["id"] for _, operation in operations])
        for (node, _), error in zip(operations, errors, strict=True):
            if error is not None:
                raise NodeError(node.name, f"its container did not start: {error}; see"
                                f" {self._log_hint(node)}")

    def _log_hint(self, node: NodeSpec) -> str:
        return (f"/var/log/incus/{self.project}_{self.machine_name(node)}/lxc.log or"
                f" `incus info --show-log {self.machine_name(node)} --project {self.project}`")

    def _wait_for_ssh(self, node: NodeSpec) -> None:
        def banner() -> bool:
            instance = self._instance(node)
            if instance is None:
                raise NodeError(node.name, "its container vanished while booting")
            if instance.get("status") != "Running":
                raise NodeError(
                    node.name,
                    f"its container stopped while booting ({instance.get('status')}); see"
                    f" {self._log_hint(node)}",
                )
            with socket.create_connection((node.address, 22), timeout=2) as sock:
                return sock.recv(4).startswith(b"SSH-")

        wait_until(
            banner, timeout=SSH_WAIT_SECONDS, interval=0.3, retry_on=(OSError,),
            what=f"an SSH answer from {node.name} on {node.address}:22",
            hint=f"see {self._log_hint(node)}",
            error=lambda message: NodeError(node.name, message),
        )

    # --- status / destroy --------------------------------------------------------------------
    def status(self) -> list[MachineStatus]:
        found: dict[str, dict[str, Any]] = {}
        if self._check_project() is not None:
            instances = self.api.get("/1.0/instances", project=self.project,
                                     query={"recursion": "1"})
            found = {item["name"]: item for item in instances}
        result = []
        for node in self.spec.nodes:
            instance = found.get(self.machine_name(node))
            if instance is None:
                result.append(MachineStatus(node.name, exists=False, running=False, power="absent"))
                continue
            result.append(MachineStatus(
                node.name,
                exists=True,
                running=instance.get("status") == "Running",
                address=instance.get("devices", {}).get("eth0", {}).get("ipv4.address"),
                power=str(instance.get("status", "unknown")).lower(),
                detail={"instance": instance["name"], "project": self.project,
                        **({"member": instance["location"]}
                           if instance.get("location") not in (None, "", "none") else {})},
            ))
        return result

    def destroy(self) -> list[str]:
        """Remove the lab's project with everything in it, and its network; nothing else."""
        removed: list[str] = []
        if self._check_project() is not None:
            instances = self.api.get("/1.0/instances", project=self.project,
                                     query={"recursion": "1"})
            stopping = [
                (item["name"], self.api.put(f"/1.0/instances/{item['name']}/state",
                                            {"action": "stop", "force": True},
                                            project=self.project, wait=False))
                for item in instances if item.get("status") == "Running"
            ]
            self._raise_first([operation["id"] for _, operation in stopping])
            deleting = [
                (item["name"], self.api.delete(f"/1.0/instances/{item['name']}",
                                               project=self.project, wait=False))
                for item in instances
            ]
            self._raise_first([operation["id"] for _, operation in deleting])
            removed += [f"instance {name}" for name, _ in deleting]
            self.api.delete(f"/1.0/projects/{self.project}")
            removed.append(f"project {self.project}")
        if self._check_network() is not None:
            self.api.delete_network(self.network_name)
            removed.append(f"network {self.network_name}")
        return removed

    # --- snapshots -------------------------------------------------------------------------------
    def _snapshots(self) -> dict[str, list[str]]:
        """Each node's snapshots, oldest first."""
        result = {}
        for node in self.spec.nodes:
            items = self.api.find(f"/1.0/instances/{self.machine_name(node)}/snapshots",
                                  project=self.project, query={"recursion": "1"}) or []
            items.sort(key=lambda item: item.get("created_at", ""))
            result[node.name] = [item["name"] for item in items]
        return result

    def snapshot(self, name: str) -> None:
        # Taking the same name again replaces it, so a rerun after a failure finishes the job.
        for node, names in self._snapshots().items():
            if name in names:
                self.api.delete(f"/1.0/instances/{node}/snapshots/{name}", project=self.project)
        self._each(lambda node: self.api.post(
            f"/1.0/instances/{self.machine_name(node)}/snapshots",
            {"name": name, "stateful": False}, project=self.project, wait=False,
        ), "snapshot")

    def revert(self, name: str) -> None:
        lacking = [node for node, names in self._snapshots().items() if name not in names]
        if lacking:
            raise LabError(
                f"no snapshot {name} on {', '.join(lacking)}; see `invoke lab.reset` without"
                " --to for the latest, or take it with `invoke lab.snapshot NAME`"
            )
        # A running container is stopped, restored and started again by Incus itself.
        self._each(lambda node: self.api.put(
            f"/1.0/instances/{self.machine_name(node)}", {"restore": name},
            project=self.project, wait=False,
        ), "restore")
        not_running = [s.name for s in self.status() if not s.running]
        if not_running:
            raise LabError(f"after the restore of {name}, not running: {', '.join(not_running)}")
        for node in self.spec.nodes:
            self._wait_for_ssh(node)

    def list_snapshots(self) -> list[str]:
        """Snapshots every node has, oldest first (so the last one is the latest)."""
        per_node = self._snapshots()
        first = per_node.get(self.spec.nodes[0].name, [])
        return [name for name in first if all(name in names for names in per_node.values())]

    def _each(self, start: Any, what: str) -> None:
        """Start one operation per node, then wait for all: they run side by side in Incus."""
        operations = [(node, start(node)) for node in self.spec.nodes]
        errors = self.api.wait_all([operation["id"] for _, operation in operations])
        for (node, _), error in zip(operations, errors, strict=True):
            if error is not None:
                raise NodeError(node.name, f"incus {what} failed: {error}")

    def _raise_first(self, operations: list[str]) -> None:
        for error in self.api.wait_all(operations):
            if error is not None:
                raise error
