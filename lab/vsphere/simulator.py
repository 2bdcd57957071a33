"""Container-backed VMs for govmomi's vcsim (`vmware.simulator_container_image`).

vcsim turns a VM whose extraConfig holds `RUN.container` (a JSON list of `docker run`
arguments, image last) into a real container: power on/off/destroy start/stop/remove it and
the guest address is the container's. This only exists in the simulator, so it is an explicit
setting, never a guess. Clones do not inherit extraConfig: the provider puts these arguments
into each clone spec. vcsim joins the arguments with spaces and runs them through /bin/sh,
so every one is shell-quoted here.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from pathlib import Path
from typing import Any

from .. import hostkeys
from ..errors import LabError, SpecError
from ..spec import LabSpec, NodeSpec

RUN_CONTAINER = "RUN.container"


def network_name(spec: LabSpec) -> str:
    return f"swarmlab-{spec.name}"


def authorized_keys(lab_dir: Path, lab: str) -> Path:
    """The lab's public key as a file the containers bind-mount as root's authorized_keys."""
    path = lab_dir / "authorized_keys"
    wanted = hostkeys.public_key(hostkeys.lab_key(lab_dir, lab)) + "\n"
    if not path.exists() or path.read_text() != wanted:
        path.write_text(wanted)
        path.chmod(0o600)
    return path


def run_args(spec: LabSpec, node: NodeSpec, image: str, keys_file: Path) -> list[str]:
    """`docker run` arguments of one node: the local provider's node container, on the lab's
    own network at the node's fixed address, labelled with the lab's name."""
    from ..providers.local import LABEL_LAB, LABEL_NODE, NODE_CAPS_DROPPED, NODE_SECURITY_OPTS

    return [
        # vcsim mounts a volume at /sys/class/dmi/id, which kernels without DMI lack and
        # sysfs cannot create: a tmpfs /sys (cgroups are still mounted below it) makes room.
        "--tmpfs", "/sys",
        "--cap-add", "ALL",
        *[arg for cap in NODE_CAPS_DROPPED for arg in ("--cap-drop", cap)],
        *[arg for opt in NODE_SECURITY_OPTS for arg in ("--security-opt", opt)],
        "--device-cgroup-rule", "a *:* rwm",
        "--cgroupns", "private",
        "--tmpfs", "/run",
        "--tmpfs", "/run/lock",
        # An anonymous volume: vcsim's `docker rm -v` removes it with the VM.
        "--mount", f"type=volume,dst=/var/lib/docker,volume-label={LABEL_LAB}={spec.name}",
        "--hostname", node.name,
        "--network", network_name(spec),
        "--ip", node.address,
        "--label", f"{LABEL_LAB}={spec.name}",
        "--label", f"{LABEL_NODE}={node.name}",
        "-v", f"{keys_file}:/root/.ssh/authorized_keys:ro",
        image,
    ]


def extra_config(spec: LabSpec, node: NodeSpec, image: str, keys_file: Path) -> dict[str, str]:
    quoted = [shlex.quote(arg) for arg in run_args(spec, node, image, keys_file)]
    return {RUN_CONTAINER: json.dumps(quoted)}


def check_image(client: Any, image: str) -> None:
    from docker.errors import ImageNotFound

    try:
        client.images.get(image)
    except ImageNotFound:
        raise SpecError(
            f"lab file: vmware.simulator_container_image {image!r} is not on this host;"
            " build it (python -m lab.images) or name a local image"
        ) from None


def ensure_network(client: Any, spec: LabSpec) -> tuple[Any, bool]:
    """The lab's labelled bridge network on its subnet; (network, made now)."""
    from ..providers.local import LABEL_LAB

    name = network_name(spec)
    existing = [n for n in client.networks.list(names=[name]) if n.name == name]
    if existing:
        network = existing[0]
        if network.attrs.get("Labels", {}).get(LABEL_LAB) != spec.name:
            raise LabError(
                f"a Docker network named {name} exists but is not this lab's; rename the lab"
                " (name:) or remove that network yourself"
            )
        return network, False
    import docker

    subnet = ipaddress.IPv4Network(spec.subnet)
    ipam = docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=str(next(subnet.hosts())))]
    )
    try:
        network = client.networks.create(name, driver="bridge", ipam=ipam,
                                         labels={LABEL_LAB: spec.name})
    except docker.errors.APIError as exc:
        raise LabError(
            f"cannot create Docker network {name} on {subnet}: {exc.explanation};"
            " pick another subnet in the lab file"
        ) from None
    return network, True


def remove_network(client: Any, spec: LabSpec) -> list[str]:
    from ..providers.local import LABEL_LAB

    removed = []
    for network in client.networks.list(filters={"label": f"{LABEL_LAB}={spec.name}"}):
        network.remove()
        removed.append(f"network {network.name}")
    return removed
