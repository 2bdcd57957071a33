"""The provider interface: what every kind of machine (container, VM) must offer.

A provider makes, finds and removes the lab's machines and tells how to reach each one
over SSH. Everything after that (preparation, the swarm, scenarios) is shared code that
only ever talks SSH, so it cannot fork per provider.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .. import hostkeys
from ..errors import LabError
from ..spec import LabSpec, NodeSpec
from ..state import LabState


@dataclass(frozen=True)
class SSHTarget:
    """How to reach a node: the controller connects here with the lab's key and pinned host key."""

    host: str
    port: int
    user: str
    key_filename: str
    known_hosts: str
    host_key_alias: str | None = None  # the name its key is pinned under, when host:port is shared


@dataclass
class MachineStatus:
    """What the provider itself knows of one machine, before any SSH."""

    name: str
    exists: bool
    running: bool
    address: str | None = None
    power: str = "unknown"  # provider's own word: running, exited, poweredOn, saved...
    detail: dict[str, Any] = field(default_factory=dict)


class Provider(ABC):
    """Base class of the providers; subclasses register themselves by `name`."""

    name: ClassVar[str]
    # Do the nodes keep their own clocks? Containers share the host's: a clock-skew
    # failure cannot be made on them, and time sync is the host's business.
    owns_clock: bool = True
    # Can the provider snapshot and revert machines?
    can_snapshot: ClassVar[bool] = False
    # How much slower than real hardware the nodes run: scenario timeouts are stretched by it
    # (emulated CPUs start a container in a minute, not seconds).
    time_scale: float = 1.0

    def __init__(self, spec: LabSpec, state: LabState, log: Any = print):
        self.spec = spec
        self.state = state
        self.log = log

    @property
    def lab_dir(self) -> Path:
        return self.state.path.parent

    # --- names of what the lab makes on this host: unique per lab, so labs never collide --
    @property
    def network_name(self) -> str:
        return f"swarmlab-{self.spec.name}"

    def machine_name(self, node: NodeSpec) -> str:
        """The VM's or container's name."""
        return f"swarmlab-{self.spec.name}-{node.name}"

    def volume_name(self, node: NodeSpec) -> str:
        return f"{self.machine_name(node)}-docker"

    # --- lifecycle -----------------------------------------------------------------------
    @abstractmethod
    def preflight(self) -> list[str]:
        """Check the host and the provider's inputs; raise LabError on a fault.

        Returns lines worth reporting (versions found, choices made).
        """

    @abstractmethod
    def create(self) -> dict[str, str]:
        """Make every missing machine and start every stopped one; record them in the state.

        Idempotent: machines that exist and run are left alone. Returns node -> 'created',
        'started' or 'ok'.
        """

    @abstractmethod
    def destroy(self) -> list[str]:
        """Remove everything this lab made (and only that); returns what was removed."""

    @abstractmethod
    def status(self) -> list[MachineStatus]:
        """One entry per node in the spec, whether it exists or not."""

    def ssh_target(self, node: NodeSpec) -> SSHTarget:
        """Connection parameters for a created node: by default its lab address, port 22,
        the lab's key and the host key pinned when the machine was made."""
        return SSHTarget(
            host=node.address,
            port=22,
            user=self.spec.ssh.user,
            key_filename=str(self.lab_dir / hostkeys.KEY_NAME),
            known_hosts=str(hostkeys.known_hosts_path(self.lab_dir)),
        )

    def advertise_address(self, node: NodeSpec) -> str:
        """The address the swarm must advertise: the lab network's, never a NAT one."""
        return node.address

    # --- optional abilities --------------------------------------------------------------
    def snapshot(self, name: str) -> None:
        raise LabError(f"provider {self.name} cannot take snapshots; use vmware or vagrant")

    def revert(self, name: str) -> None:
        raise LabError(f"provider {self.name} cannot revert snapshots; use vmware or vagrant")

    def list_snapshots(self) -> list[str]:
        return []

    def close(self) -> None:
        """Let go of sessions to the provider's API (a vCenter login, say); most hold none."""
        return None

    def node_setup_commands(self, node: NodeSpec) -> list[str]:
        """Provider-specific shell commands run over SSH during prepare (e.g. NIC fixes)."""
        return []
