"""A node that is a container: systemd, sshd and a nested dockerd in one Docker container.

Three providers make such nodes: the local provider (through Docker's API), Vagrant's docker
provider (`docker run` with the create_args the Vagrantfile reads from the lab's JSON) and
vcsim's container-backed VMs (`docker run` with the arguments in RUN.container). What makes
a container a safe node lives here once, so the three cannot drift apart again: the security
flags (as docker-py host_config kwargs and as `docker run` arguments), the lab's labelled
bridge network with its `sl-<lab>` bridge name, removal by label, and the image preflight.

The flags are what systemd and a nested dockerd need on a host that refuses --privileged,
minus what would let a node change the host (see testbed.md). Root in a node is still close
to root on the host: it keeps SYS_ADMIN, which can undo these limits.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from .errors import LabError, SpecError

LABEL_LAB = "swarmlab.lab"
LABEL_NODE = "swarmlab.node"
# Measured on a cgroup v1 host: without SYS_ADMIN the node's systemd exits at once (code 255,
# no output), and a nested dockerd needs it for every mount and namespace, so it stays.
# SYS_TIME: chrony or `date -s` in a node would set the HOST's clock. RAWIO (I/O ports,
# /dev/mem) and SYSLOG (the host's kernel log) serve no node. SYS_RESOURCE is not in this
# host's bounding set (--privileged fails on it).
CAPS_DROPPED = ["SYS_RESOURCE", "SYS_TIME", "SYS_MODULE", "SYS_RAWIO", "SYSLOG"]
# seccomp's default profile forbids the mounts a nested dockerd makes; no AppArmor here.
SECURITY_OPTS = ["seccomp=unconfined", "apparmor=unconfined"]
TMPFS = ("/run", "/run/lock")
STOP_SIGNAL = "SIGRTMIN+3"  # what makes systemd as PID 1 shut down
# No device rule of our own: Docker's default list (null, zero, full, random, urandom, tty,
# console, ptmx, tun, pts) is what a nested dockerd's containers need. That list also grants
# every container `mknod` of any device, and a nested container's cgroup needs that grant
# from its parent (runc fails with "failed to write b *:* m" without it), so a node can make
# a block device node but never open one. Dropping MKNOD instead fails every nested container
# ("unable to apply caps": Docker gives them MKNOD). `a *:* rwm` let a node read and write
# the host's disks.
# Docker's default masked paths, as set on every plain container.
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]
# Docker makes all of /proc/sys read-only. Through the API a node gets every tree of it
# read-only but its own network namespace's (net), which its dockerd may then tune; the rest
# (host-wide: kernel.core_pattern, vm, fs...) stays read-only. `docker run` has no flag that
# names these paths (only `systempaths=unconfined`, which unmasks everything), so nodes made
# through the CLI keep Docker's defaults: the same masked paths and all of /proc/sys
# read-only, net included. Measured here with those defaults: systemd runs, nested docker
# (with a whiteout), swarm init, an overlay network and two tasks pinging over it all work.
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sysrq-trigger"]
PROC_SYS_TREES = ("abi", "crypto", "debug", "dev", "fs", "kernel", "user", "vm")


def readonly_paths() -> list[str]:
    """Every tree of /proc/sys but net read-only: the ones this host's kernel has, and the
    usual ones besides (runc skips a path a kernel does not have)."""
    try:
        trees = {entry.name for entry in Path("/proc/sys").iterdir() if entry.is_dir()}
    except OSError:
        trees = set()
    trees = (trees | set(PROC_SYS_TREES)) - {"net"}
    return READONLY_PATHS + [f"/proc/sys/{tree}" for tree in sorted(trees)]


def labels(lab: str, node: str | None = None) -> dict[str, str]:
    return {LABEL_LAB: lab, **({LABEL_NODE: node} if node else {})}


def bridge_name(lab: str) -> str:
    """The Linux bridge of the lab's network: named for the lab (Linux allows 15 characters),
    so `ip link` and a firewall rule show whose it is."""
    return f"sl-{lab}"[:15]


# --- the flags, rendered twice ------------------------------------------------------------
def host_config(api: Any, **kwargs: Any) -> dict[str, Any]:
    """docker-py's host_config of a node: the flags here plus the caller's own (binds,
    network_mode, extra_hosts...)."""
    config = api.create_host_config(
        cap_add=["ALL"], cap_drop=CAPS_DROPPED, security_opt=SECURITY_OPTS,
        cgroupns="private", tmpfs={path: "" for path in TMPFS}, init=False, **kwargs,
    )
    config["MaskedPaths"] = MASKED_PATHS
    config["ReadonlyPaths"] = readonly_paths()
    return config


def run_args() -> list[str]:
    """The same flags as `docker run` arguments (paths: Docker's defaults, see READONLY_PATHS)."""
    return [
        "--cap-add", "ALL",
        *[arg for cap in CAPS_DROPPED for arg in ("--cap-drop", cap)],
        *[arg for opt in SECURITY_OPTS for arg in ("--security-opt", opt)],
        "--cgroupns", "private",
        *[arg for path in TMPFS for arg in ("--tmpfs", path)],
        "--stop-signal", STOP_SIGNAL,
        "--env", "container=docker",
    ]


def node_run_args(lab: str, node: str, network: str, address: str,
                  extra_hosts: dict[str, str] | None = None) -> list[str]:
    """A node's `docker run` arguments on the lab's network at its fixed address, labelled."""
    args = [*run_args(), "--network", network, "--ip", address]
    for key, value in labels(lab, node).items():
        args += ["--label", f"{key}={value}"]
    for name, host in (extra_hosts or {}).items():
        args += ["--add-host", f"{name}:{host}"]
    return args


def volume_mount(lab: str, node: str, volume: str | None = None) -> list[str]:
    """/var/lib/docker on a volume (overlay2 on the container's own overlay root fails),
    labelled with the lab's name so that lab.down finds it; anonymous without `volume`."""
    source = f"source={volume}," if volume else ""
    return ["--mount", f"type=volume,{source}target=/var/lib/docker,"
            f"volume-label={LABEL_LAB}={lab},volume-label={LABEL_NODE}={node}"]


# --- the host: Docker, routes, the apt mirror -----------------------------------------------
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


# --- the lab's network -------------------------------------------------------------------
def find_network(client: Any, name: str, lab: str) -> Any | None:
    """The lab's network by name; one that carries another label is not touched."""
    network = next((n for n in client.networks.list(names=[name]) if n.name == name), None)
    if network is not None and network.attrs.get("Labels", {}).get(LABEL_LAB) != lab:
        raise LabError(
            f"a Docker network named {name} exists but is not this lab's; rename the lab"
            " (name:) or remove that network yourself"
        )
    return network


def check_subnet(client: Any, name: str, lab: str, subnet_text: str) -> None:
    """The lab's subnet must be its existing network's and overlap no other route here."""
    subnet = ipaddress.IPv4Network(subnet_text)
    network = find_network(client, name, lab)
    own_bridge = None
    if network is not None:
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
        if dev != own_bridge and route.overlaps(subnet):
            raise SpecError(
                f"lab file: subnet {subnet} overlaps the host's route {route} on {dev};"
                " pick a free range, for example 10.78.0.0/24"
            )


def ensure_network(client: Any, name: str, lab: str, subnet_text: str) -> tuple[Any, bool]:
    """The lab's labelled bridge network on its subnet; (network, made now)."""
    network = find_network(client, name, lab)
    if network is not None:
        return network, False
    subnet = ipaddress.IPv4Network(subnet_text)
    ipam = docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=str(next(subnet.hosts())))]
    )
    try:
        network = client.networks.create(
            name, driver="bridge", ipam=ipam, labels=labels(lab),
            options={"com.docker.network.bridge.name": bridge_name(lab)},
        )
    except APIError as exc:
        raise LabError(
            f"cannot create network {name} on {subnet}: {exc.explanation}; pick another"
            " subnet in the lab file"
        ) from None
    return network, True


# --- removal by label ----------------------------------------------------------------------
KINDS = ("containers", "volumes", "networks")


def remove_labelled(client: Any, lab: str, node: str | None = None,
                    kinds: tuple[str, ...] = KINDS) -> list[str]:
    """Remove what Docker holds with the lab's label (and the node's, if given): only that.
    A Docker fault is one LabError line saying what was being done and what is gone."""
    selector: dict[str, Any] = {"label": [f"{k}={v}" for k, v in labels(lab, node).items()]}
    removed: list[str] = []
    doing = "listing the lab's containers"
    try:
        for kind in kinds:
            doing = f"listing the lab's {kind}"
            for found in getattr(client, kind).list(**({"all": True} if kind == "containers"
                                                        else {}), filters=selector):
                what = f"{kind[:-1]} {found.name}"
                doing = f"removing {what}"
                if kind == "containers":
                    found.remove(force=True, v=False)
                elif kind == "volumes":
                    found.remove(force=True)
                else:
                    found.remove()
                removed.append(what)
    except (DockerException, requests.RequestException) as exc:
        # docker-py's errors (and a timeout of its HTTP session) are many lines long.
        said = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
        done = f" (removed so far: {', '.join(removed)})" if removed else ""
        raise LabError(
            f"lab.down stopped {doing}: {' '.join(str(said).split())}{done}; rerun"
            " `invoke lab.down` once Docker answers"
        ) from None
    return removed


# --- images ---------------------------------------------------------------------------------
def check_images(client: Any, wanted: list[str], log: Callable[[str], Any]) -> dict[str, str]:
    """Build the swarmlab/ images that are missing; every other one must be here already
    (nothing can be pulled). Image name -> what was done ("ok", "built"...)."""
    from .images import ensure_images

    local = [name for name in wanted if name.startswith("swarmlab/")]
    built = ensure_images(local, log=log, client=client)
    for name in dict.fromkeys(wanted):
        if name in local:
            continue
        try:
            client.images.get(name)
        except (ImageNotFound, NotFound):
            raise LabError(
                f"image {name} is not on this host and nothing can be pulled here;"
                " load it with `docker load` or use the swarmlab/ images"
            ) from None
    return built
