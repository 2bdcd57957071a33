"""lab.up on the incus provider beside the local provider, measured in one run.

Figures: lab.up of three nodes to Ready (node image already imported), a converged rerun,
snapshot, reset to it, down, and the memory of an idle node (Incus's own figure for the
container's cgroup). The local provider's up and idle memory are measured in the same run
for comparison.

Targets (issue 15, 2 cores): up <= 15 s; idle node <= 110 MiB.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from lab import lifecycle
from lab.context import Lab
from lab.images import IMAGE_NAMES, ensure_images
from lab.incus.client import Incus
from lab.lifecycle import down, up
from lab.spec import LAB_DEFAULTS, parse_spec

from .common import write

TARGETS = {"up_seconds": 15.0, "idle_node_mib": 110.0}
IDLE_SECONDS = 20  # let boot-time work settle before memory is read


def quiet(line: str) -> None:
    """Benchmarks print figures, not progress."""


def make_lab(name: str, provider: str, octet: int, state_dir: Path) -> Lab:
    layout = [("manager1", "manager"), ("manager2", "manager"), ("worker1", "worker")]
    data = {**LAB_DEFAULTS, "name": name, "provider": provider,
            "subnet": f"10.201.{octet}.0/24", "state_dir": str(state_dir),
            "nodes": [{"name": n, "role": r, "address": f"10.201.{octet}.{11 + i}"}
                      for i, (n, r) in enumerate(layout)]}
    return Lab(parse_spec(data), log=quiet)


def timed(step: Any) -> float:
    start = time.monotonic()
    step()
    return round(time.monotonic() - start, 2)


def incus_memory_mib(lab: Lab) -> list[float]:
    """The container cgroup's usage less its page cache, as `docker stats` counts for local
    nodes (Incus's own memory.usage includes the cache: 270 MiB a node on btrfs here)."""
    api = Incus()
    project = f"swarmlab-{lab.spec.name}"
    found = []
    for node in lab.spec.nodes:
        usage = api.get(f"/1.0/instances/{node.name}/state", project=project)["memory"]["usage"]
        v1 = Path(f"/sys/fs/cgroup/memory/lxc.payload.{project}_{node.name}/memory.stat")
        v2 = Path(f"/sys/fs/cgroup/lxc.payload.{project}_{node.name}/memory.stat")
        stat = v1 if v1.exists() else v2
        fields = dict(line.split() for line in stat.read_text().splitlines())
        cache = int(fields.get("total_cache", fields.get("file", 0)))
        found.append(round((usage - cache) / 2**20, 1))
    return found


def local_memory_mib(lab: Lab) -> list[float]:
    """What `docker stats` shows: the cgroup's usage less its page cache."""
    import docker

    client = docker.from_env()
    found = []
    for node in lab.spec.nodes:
        stats = client.containers.get(f"swarmlab-{lab.spec.name}-{node.name}").stats(stream=False)
        memory = stats["memory_stats"]
        found.append(round((memory["usage"] - memory.get("stats", {}).get("cache", 0)) / 2**20, 1))
    return found


def main() -> None:
    ensure_images(IMAGE_NAMES, log=quiet)
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp)
        incus = make_lab("t-h8-bench", "incus", 198, state_dir)
        local = make_lab("t-h8-benchl", "local", 197, state_dir)
        for lab in (incus, local):
            down(lab, log=quiet)
        incus = make_lab("t-h8-bench", "incus", 198, state_dir)
        local = make_lab("t-h8-benchl", "local", 197, state_dir)
        try:
            incus.provider.preflight()  # the node image import is not part of an up
            figures: dict[str, Any] = {"incus": {}, "local": {}}
            figures["incus"]["up_seconds"] = timed(lambda: up(incus, log=quiet))
            figures["incus"]["rerun_seconds"] = timed(lambda: up(incus, log=quiet))
            time.sleep(IDLE_SECONDS)
            figures["incus"]["idle_node_mib"] = incus_memory_mib(incus)
            figures["incus"]["snapshot_seconds"] = timed(
                lambda: lifecycle.snapshot(incus, "bench", log=quiet))
            figures["incus"]["reset_seconds"] = timed(
                lambda: lifecycle.revert(incus, "bench", log=quiet))
            figures["incus"]["down_seconds"] = timed(lambda: down(incus, log=quiet))
            figures["local"]["up_seconds"] = timed(lambda: up(local, log=quiet))
            time.sleep(IDLE_SECONDS)
            figures["local"]["idle_node_mib"] = local_memory_mib(local)
            figures["local"]["down_seconds"] = timed(lambda: down(local, log=quiet))
        finally:
            for lab in (incus, local):
                down(lab, log=quiet)
    figures["targets"] = TARGETS
    figures["met"] = {
        "up_seconds": figures["incus"]["up_seconds"] <= TARGETS["up_seconds"],
        "idle_node_mib": max(figures["incus"]["idle_node_mib"]) <= TARGETS["idle_node_mib"],
    }
    write("incus", figures)


if __name__ == "__main__":
    main()
