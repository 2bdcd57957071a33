"""Container-backed VMs for govmomi's vcsim (`vmware.simulator_container_image`).

vcsim turns a VM whose extraConfig holds `RUN.container` (a JSON list of `docker run`
arguments, image last) into a real container: power on/off/destroy start/stop/remove it and
the guest address is the container's. This only exists in the simulator, so it is an explicit
setting, never a guess. Clones do not inherit extraConfig: the provider puts these arguments
into each clone spec. vcsim joins the arguments with spaces and runs them through /bin/sh,
so every one is shell-quoted here.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from .. import container_node, hostkeys
from ..errors import SpecError
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
    """`docker run` arguments of one node: a container node (lab/container_node.py, the
    local provider's flags) on the lab's own network at the node's fixed address."""
    return [
        # vcsim mounts a volume at /sys/class/dmi/id, which kernels without DMI lack and
        # sysfs cannot create: a tmpfs /sys (cgroups are still mounted below it) makes room.
        "--tmpfs", "/sys",
        *container_node.node_run_args(spec.name, node.name, network_name(spec), node.address),
        # An anonymous volume: vcsim's `docker rm -v` removes it with the VM.
        *container_node.volume_mount(spec.name, node.name),
        "--hostname", node.name,
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
    return container_node.ensure_network(client, network_name(spec), spec.name, spec.subnet)


def remove_network(client: Any, spec: LabSpec) -> list[str]:
    return container_node.remove_labelled(client, spec.name, kinds=("networks",))
