"""lab.up on the incus provider beside the local provider, measured in one run.

Figures: lab.up of three nodes to Ready (node image already imported), a converged rerun,
snapshot, reset to it, down, and the memory of an idle node (Incus's own figure for the
container's cgroup). The local provider's up and idle memory are measured in the same run
for comparison.

Then a class of ten (thirty nodes, 3-node labs) on incus through the class's own code (plan,
room gate, runner, ops, as `invoke class.up`): up with swarms, a snapshot of every lab,
reset to it, reset to `prepared`, idle memory per node; and the same class of ten on the
local provider in the same run, beside it.

Targets (issue 15, 2 cores): up <= 15 s; idle node <= 110 MiB; a class of ten up <= 300 s,
reset to a snapshot <= 120 s.

`python -m bench bench_incus` (all of it), or `python -m bench.bench_incus class` (the
classes only).
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
from lab.spec import LAB_DEFAULTS, LabSpec, parse_spec

from .common import write

TARGETS = {"up_seconds": 15.0, "idle_node_mib": 110.0, "class_up_seconds": 300.0,
           "class_reset_to_snapshot_seconds": 120.0}
CLASS_STUDENTS = 10
CLASS_PARALLEL = 4
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


def incus_memory_mib(lab: Lab | LabSpec) -> list[float]:
    """The container cgroup's usage less its page cache, as `docker stats` counts for local
    nodes (Incus's own memory.usage includes the cache: 270 MiB a node on btrfs here)."""
    spec = lab.spec if isinstance(lab, Lab) else lab
    api = Incus()
    project = f"swarmlab-{spec.name}"
    found = []
    for node in spec.nodes:
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


def class_of_ten(tmp: Path, provider: str, name: str, octet: int) -> dict[str, Any]:
    """A class of ten, 3-node labs, as `invoke class.up` makes it (plan, room gate, runner,
    ops): up with swarms, idle memory, then on incus a snapshot and a reset to it; reset to
    `prepared` on both."""
    from lab.classroom import ops
    from lab.classroom.capacity import RoomGate
    from lab.classroom.plan import make_plan
    from lab.classroom.record import ClassRecord
    from lab.classroom.roster import Student
    from lab.classroom.settings import parse_settings

    from .bench_classroom import node_memory
    from .bench_classroom import timed as class_timed

    # Ten /28s of 10.201.<octet>.0/24 (this bench's range); 512 MiB an incus node keeps the
    # room gate's count (incus.memory, reserved per node) at 15 GiB for thirty nodes.
    data = {**LAB_DEFAULTS, "name": name, "provider": provider,
            "subnet": f"10.201.{octet}.0/28", "state_dir": str(tmp / name),
            "nodes": [{"name": n, "role": r, "address": f"10.201.{octet}.{11 + i}"} for i, (n, r)
                      in enumerate([("manager1", "manager"), ("manager2", "manager"),
                                    ("worker1", "worker")])],
            **({"incus": {"cpus": 1, "memory": "512MiB"}} if provider == "incus" else {})}
    base = parse_spec(data)
    settings = parse_settings({"address_pool": f"10.201.{octet}.0/24", "student_prefix": 28},
                              base)
    roster = [Student(id=f"s{i:02d}", name=f"Student {i}", row=i + 1)
              for i in range(1, CLASS_STUDENTS + 1)]
    plan = make_plan(base, settings, data, roster,
                     ClassRecord.load(base.state_dir, settings.name), "bench")
    reruns: list[str] = []
    figures: dict[str, Any] = {"students": CLASS_STUDENTS, "nodes": CLASS_STUDENTS * 3,
                               "parallel": CLASS_PARALLEL}
    class_timed(plan, ops.down, CLASS_PARALLEL, "clean")  # an interrupted run's labs

    def step(key: str, work: Any, what: str, **extra: Any) -> None:
        figures[key] = round(class_timed(plan, work, CLASS_PARALLEL, what, **extra), 1)

    try:
        step("up_with_swarms_seconds",
             lambda e, log: ops.up(e, log, skip_swarm=False, force=False), "up",
             reruns=reruns, gate=RoomGate(plan.settings.memory_per_node_mib))
        time.sleep(IDLE_SECONDS)
        if provider == "incus":
            memory = [mib for entry in plan.labs for mib in incus_memory_mib(entry.spec)]
            figures["idle_node_mib"] = {"mean": round(sum(memory) / len(memory), 1),
                                        "max": max(memory)}
            step("snapshot_seconds", lambda e, log: ops.snapshot(e, log, name="bench"),
                 "snapshot")
            step("reset_to_snapshot_seconds", lambda e, log: ops.reset(e, log, to="bench"),
                 "reset to snapshot")
        else:
            found = node_memory(plan)
            figures["idle_node_mib"] = {"mean": found["mean_mib"], "max": found["max_mib"]}
        step("reset_to_prepared_seconds", lambda e, log: ops.reset(e, log, to="prepared"),
             "reset to prepared")
    finally:
        step("down_seconds", ops.down, "down")
    figures["up_reruns"] = reruns
    return figures


def classes() -> dict[str, Any]:
    """A class of ten on incus, then one on local, in one run."""
    with tempfile.TemporaryDirectory() as tmp:
        figures: dict[str, Any] = {"incus": class_of_ten(Path(tmp), "incus", "t-h12-b", 254)}
        figures["local"] = class_of_ten(Path(tmp), "local", "t-h12-bl", 251)
    incus = figures["incus"]
    figures["met"] = {
        "class_up_seconds": incus["up_with_swarms_seconds"] <= TARGETS["class_up_seconds"],
        "class_reset_to_snapshot_seconds": incus["reset_to_snapshot_seconds"]
        <= TARGETS["class_reset_to_snapshot_seconds"],
        "idle_node_mib": incus["idle_node_mib"]["max"] <= TARGETS["idle_node_mib"],
    }
    return figures


def main(parts: tuple[str, ...] = ("lab", "class")) -> None:
    figures: dict[str, Any] = {}
    if "lab" in parts:
        figures.update(one_lab())
    if "class" in parts:
        figures["class_of_ten"] = classes()
    figures["targets"] = TARGETS
    # The classes alone (a quarter of an hour) go to a file of their own, keeping the lab's.
    write("incus" if "lab" in parts else "incus_class", figures)


def one_lab() -> dict[str, Any]:
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
    figures["met"] = {
        "up_seconds": figures["incus"]["up_seconds"] <= TARGETS["up_seconds"],
        "idle_node_mib": max(figures["incus"]["idle_node_mib"]) <= TARGETS["idle_node_mib"],
    }
    return figures


if __name__ == "__main__":
    import sys

    main(tuple(sys.argv[1:]) or ("lab", "class"))
