"""Room on this host for more labs, checked before each lab makes machines here.

Only machines that run on this host take its room: local nodes (containers), vagrant VMs,
vagrant's docker provider's containers, or Incus containers on the local incusd (their
`incus.memory`, the limit Incus sets on each). vSphere's room is vCenter's business; its own
admission faults come back per student as that lab's failure. Two things run out here:

- memory: each new node needs its budget (classroom.memory_per_node_mib; a VM its own
  `vagrant.memory`) out of MemAvailable;
- inotify instances, for node containers: systemd and the services of every node take
  INOTIFY_PER_NODE of them (lab/hostroom.py), all counted against one user's limit
  (fs.inotify.max_user_instances, often 128). Past it a new node's systemd exits at once
  (status 255, no output), so about fourteen nodes fill a stock host, and a class of ten
  needs the limit raised.

Labs being made at the same moment have not taken their room yet, so each lab's share stays
reserved from the moment it passes the gate until its work ends. The gate runs in one lab's
thread while others finish and release theirs: one lock guards the reservations, or the
sums below meet a dict that changes size under them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import SpecError
from ..hostroom import INOTIFY_PER_NODE, inotify_free
from ..spec import LabSpec
from ..state import LabState
from .plan import StudentLab


def available_mib() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def needs(spec: LabSpec, per_node_mib: int) -> tuple[int, int] | None:
    """(MiB, inotify instances) one node of this lab takes from this host, or None."""
    if spec.provider == "local":
        return per_node_mib, INOTIFY_PER_NODE
    if spec.provider == "vagrant":
        from ..providers.vagrant import parse_settings

        settings = parse_settings(spec)
        if settings.provider == "docker":
            return per_node_mib, INOTIFY_PER_NODE
        return settings.memory, 0
    if spec.provider == "incus":
        from ..providers.incus import DEFAULT_SETTINGS

        settings = {**DEFAULT_SETTINGS, **spec.provider_settings}
        if settings["remote"]:
            return None  # a remote server's room is that server's (its project quota) business
        # Measured (tests/test_incus_class.py): an Incus container's systemd, though root
        # in its own user namespace, is charged its inotify instances against the host's
        # root, like a local node: the kernel counts them at every namespace level up.
        return memory_mib(str(settings["memory"])), INOTIFY_PER_NODE
    return None


def memory_mib(size: str) -> int:
    """MiB of an Incus size such as 512MiB, 2GiB, 1GB (decimal units rounded up to MiB)."""
    number = size.rstrip("KMGTiB")
    unit = size[len(number):]
    scale = {"MiB": 1, "GiB": 1024, "MB": 1, "GB": 954}.get(unit)
    if not number.isdigit() or scale is None:
        raise SpecError(f"lab file: incus.memory is {size!r}; allowed: a size such as 512MiB"
                        " or 2GiB")
    return int(number) * scale


def _memory_setting(spec: LabSpec) -> str:
    """The setting a node's memory budget comes from, for the message that names it."""
    if spec.provider == "incus":
        return "incus.memory"
    if spec.provider == "vagrant" and needs(spec, 0) != (0, INOTIFY_PER_NODE):
        return "vagrant.memory"
    return "classroom.memory_per_node_mib"


class RoomGate:
    def __init__(
        self,
        per_node_mib: int,
        free_mib: Callable[[], int] = available_mib,
        free_inotify: Callable[[], tuple[int, int]] = inotify_free,
    ):
        self.per_node_mib = per_node_mib
        self.free_mib = free_mib
        self.free_inotify = free_inotify
        self.reserved: dict[str, tuple[int, int]] = {}
        self.lock = threading.Lock()

    def __call__(self, entry: StudentLab) -> str | None:
        # Counting free room and reserving it is one step: two labs never take the same room.
        with self.lock:
            return self._admit(entry)

    def _admit(self, entry: StudentLab) -> str | None:
        per_node = needs(entry.spec, self.per_node_mib)
        if per_node is None:
            return None
        made = LabState.load(entry.spec.state_dir, entry.spec.name).machines
        new = len([node for node in entry.spec.nodes if node.name not in made])
        if not new:
            return None
        mib, watches = per_node[0] * new, per_node[1] * new
        free = self.free_mib() - sum(r[0] for r in self.reserved.values())
        if free < mib:
            return (f"not enough memory here for {new} new nodes: they need {mib} MiB"
                    f" ({per_node[0]} MiB a node) and {max(free, 0)} MiB are free beside the"
                    " labs being made; free memory, run fewer students, or lower"
                    f" {_memory_setting(entry.spec)}")
        if watches:
            instances, limit = self.free_inotify()
            instances -= sum(r[1] for r in self.reserved.values())
            if instances < watches:
                return (f"no room here for {new} new node containers: their systemd needs"
                        f" {watches} inotify instances and {max(instances, 0)} of the host's"
                        f" {limit} (fs.inotify.max_user_instances) are free; raise the limit"
                        " (sysctl -w fs.inotify.max_user_instances=1024) or run fewer students")
        self.reserved[entry.id] = (mib, watches)
        return None

    def release(self, entry: StudentLab) -> None:
        with self.lock:
            self.reserved.pop(entry.id, None)
