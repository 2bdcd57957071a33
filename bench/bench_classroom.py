"""Classes at scale: ten students on the local provider, thirty against the vSphere simulator.

Local (targets on 2 cores, 24 GiB): ten labs (thirty nodes) up with swarms <= 300 s (past
the class's room gate, as class.up; thirty nodes need fs.inotify.max_user_instances above
the stock 128, see lab/classroom/capacity.py); all ten
reset to `prepared` <= 120 s; memory per idle node <= 100 MiB, read from each node
container's own memory cgroup (usage less inactive file cache, as `docker stats` counts it,
with the resident set beside it) after the labs sat idle.

vSphere (govmomi's vcsim): thirty students, ninety linked clones, each lab's create step
(clone, customize, power on, wait for the guest address) through the class runner with a
bound on labs at once and, inside each lab, the provider's bound on tasks at once. Plain
simulated VMs (no containers): this measures the control plane, which is what a bound on
tasks protects on a real vCenter. The peak is counted at the task starters themselves.

Everything runs through the same code as `invoke class.up` (plan, runner, ops).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from lab import vcsim
from lab.classroom import ops, runner
from lab.classroom.capacity import RoomGate, inotify_free
from lab.classroom.plan import ClassPlan, make_plan
from lab.classroom.record import ClassRecord
from lab.classroom.roster import Student
from lab.classroom.settings import parse_settings
from lab.context import Lab
from lab.images import IMAGE_NAMES, ensure_images
from lab.spec import LAB_DEFAULTS, parse_spec

from .common import write

TARGETS = {"up_seconds": 300.0, "reset_seconds": 120.0, "idle_node_mib": 100.0}
LOCAL_STUDENTS = 10
LOCAL_PARALLEL = 4
IDLE_SECONDS = 30
VSPHERE_STUDENTS = 30
VSPHERE_LABS_AT_ONCE = 6
VSPHERE_TASKS_PER_LAB = 4
CGROUP = Path("/sys/fs/cgroup/memory/docker")


def quiet(line: str) -> None:
    """Benchmarks print figures, not progress."""


def class_plan(name: str, state_dir: Path, students: int, pool: str,
               **lab: Any) -> ClassPlan:
    data = {**LAB_DEFAULTS, "name": name, "state_dir": str(state_dir), **lab}
    base = parse_spec(data)
    settings = parse_settings({"address_pool": pool}, base)
    record = ClassRecord.load(base.state_dir, settings.name)
    roster = [Student(id=f"s{i:02d}", name=f"Student {i}", row=i + 1)
              for i in range(1, students + 1)]
    return make_plan(base, settings, data, roster, record, "bench")


def timed(plan: ClassPlan, work: runner.Work, parallel: int, what: str,
          reruns: list[str] | None = None, gate: RoomGate | None = None) -> float:
    """Seconds for `work` on every lab. With `reruns`, labs that failed are run again one at
    a time (as rerunning the class task would) and named there; else a failure ends the
    benchmark."""
    start = time.monotonic()
    labs = list(plan.labs)
    results = runner.run(labs, work, what=what, parallel=parallel, say=quiet,
                         log_dir=plan.directory / "logs", gate=gate,
                         release=gate.release if gate else None)
    failed = [r for r in results if not r.ok]
    if failed and reruns is not None:
        reruns += [f"{r.student}: {r.detail.split(' (log: ')[0]}" for r in failed]
        again = [entry for entry in labs if entry.id in {r.student for r in failed}]
        results = runner.run(again, work, what=what, parallel=1, say=quiet,
                             log_dir=plan.directory / "logs")
        failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"{what} failed for {len(failed)} labs: {failed[0].detail}")
    return time.monotonic() - start


def node_memory(plan: ClassPlan) -> dict[str, float]:
    """MiB per node container, from its memory cgroup (cgroup v1, cgroupfs driver)."""
    import docker

    client = docker.from_env()
    working, resident = [], []
    for entry in plan.labs:
        for node in entry.spec.nodes:
            container = client.containers.get(f"swarmlab-{entry.lab}-{node.name}")
            group = CGROUP / container.id
            usage = int((group / "memory.usage_in_bytes").read_text())
            stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
            working.append((usage - int(stat["total_inactive_file"])) / 2**20)
            resident.append(int(stat["total_rss"]) / 2**20)
    return {"nodes": len(working), "mean_mib": round(statistics.mean(working), 1),
            "max_mib": round(max(working), 1), "mean_rss_mib": round(statistics.mean(resident), 1),
            "max_rss_mib": round(max(resident), 1)}


def local(tmp: Path) -> dict[str, Any]:
    ensure_images(IMAGE_NAMES, log=quiet)
    plan = class_plan("b-class", tmp / "local", LOCAL_STUDENTS, "10.220.0.0/16")
    timed(plan, ops.down, LOCAL_PARALLEL, "clean")  # an interrupted run's labs, by name
    try:
        up = timed(plan, lambda e, log: ops.up(e, log, skip_swarm=False, force=False),
                   LOCAL_PARALLEL, "up", gate=RoomGate(plan.settings.memory_per_node_mib))
        time.sleep(IDLE_SECONDS)
        memory = node_memory(plan)
        reset = timed(plan, lambda e, log: ops.reset(e, log, to="prepared"), LOCAL_PARALLEL,
                      "reset")
    finally:
        timed(plan, ops.down, LOCAL_PARALLEL, "down")
    return {
        "students": LOCAL_STUDENTS, "nodes": LOCAL_STUDENTS * 3, "parallel": LOCAL_PARALLEL,
        "inotify_max_user_instances": inotify_free()[1],
        "up_with_swarms_seconds": round(up, 1), "reset_to_prepared_seconds": round(reset, 1),
        "idle_node_memory": {**memory, "idle_seconds_before": IDLE_SECONDS},
        "met": {"up_seconds": up <= TARGETS["up_seconds"],
                "reset_seconds": reset <= TARGETS["reset_seconds"],
                "idle_node_mib": memory["max_mib"] <= TARGETS["idle_node_mib"]},
    }


class TaskCounter:
    """Counts vSphere tasks in flight across every lab: started and not yet finished."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = self.total = 0

    def wrap(self, run_tasks: Any) -> Any:
        def counted(service: Any, starters: dict, *, on_done: Any = None, **kwargs: Any) -> Any:
            def start_of(start: Any) -> Any:
                def begin() -> Any:
                    with self.lock:
                        self.now += 1
                        self.total += 1
                        self.peak = max(self.peak, self.now)
                    return start()
                return begin

            def done(outcome: Any) -> None:
                with self.lock:
                    self.now -= 1
                if on_done is not None:
                    on_done(outcome)

            return run_tasks(service, {k: start_of(v) for k, v in starters.items()},
                             on_done=done, **kwargs)
        return counted


def vsphere(tmp: Path) -> dict[str, Any]:
    import lab.hostkeys
    import lab.providers.vmware as vmware

    os.environ.setdefault("SWARMLAB_VSPHERE_PASSWORD", "bench")
    # Plain simulated VMs run no sshd: pin a fixed key rather than scanning for one.
    lab.hostkeys.scan = lambda host, port, timeout: (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlainSimulatedVMsHaveNoSSHServerAtAll0")
    counter = TaskCounter()
    vmware.run_tasks = counter.wrap(vmware.run_tasks)
    sim = vcsim.start(tmp / "vcsim")
    try:
        plan = class_plan(
            "b-vclass", tmp / "vsphere", VSPHERE_STUDENTS, "127.78.0.0/16", provider="vmware",
            subnet="127.77.0.0/24",
            nodes=[{"name": n, "role": r, "address": f"127.77.0.{11 + i}"} for i, (n, r) in
                   enumerate([("manager1", "manager"), ("manager2", "manager"),
                              ("worker1", "worker")])],
            vmware={"vcenter": sim.endpoint, "user": "bench", "insecure": True,
                    "datacenter": "DC0", "cluster": "DC0_C0", "datastore": "LocalDS_0",
                    "network": "DC0_DVPG0", "template": vcsim.TEMPLATE, "linked_clone": True,
                    "simulator": True, "guest_timeout": 120,
                    "parallel": VSPHERE_TASKS_PER_LAB},
        )
        from lab.classroom import vsphere as class_vsphere

        made = class_vsphere.before_up(plan.labs[0].spec, [])

        def create(entry: Any, log: runner.Log) -> tuple[str, Any]:
            with Lab(entry.spec, log=log) as lab_:
                lab_.provider.preflight()
                return "cloned", lab_.provider.create()

        def destroy(entry: Any, log: runner.Log) -> tuple[str, Any]:
            with Lab(entry.spec, log=log) as lab_:
                return "destroyed", lab_.provider.destroy()

        up_reruns: list[str] = []
        down_reruns: list[str] = []
        seconds = timed(plan, create, VSPHERE_LABS_AT_ONCE, "clone", up_reruns)
        peak, clones_tasks = counter.peak, counter.total
        down = timed(plan, destroy, VSPHERE_LABS_AT_ONCE, "destroy", down_reruns)
        kept = class_vsphere.after_down(plan.labs[0].spec, made)
    finally:
        sim.stop()
    return {
        "students": VSPHERE_STUDENTS, "clones": VSPHERE_STUDENTS * 3,
        "labs_at_once": VSPHERE_LABS_AT_ONCE, "tasks_per_lab_at_once": VSPHERE_TASKS_PER_LAB,
        # A lab has three VMs, so it never has more than three tasks in flight.
        "bound_on_tasks": VSPHERE_LABS_AT_ONCE * min(VSPHERE_TASKS_PER_LAB, 3),
        "up_seconds": round(seconds, 1), "peak_tasks_in_flight": peak,
        "tasks_started": clones_tasks, "down_seconds": round(down, 1),
        # Labs whose first try failed and a rerun finished, with the first try's error.
        "up_reruns": up_reruns, "down_reruns": down_reruns,
        "class_folder_left": kept,
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-classroom-") as tmp:
        figures: dict[str, Any] = {"targets": TARGETS, "local": local(Path(tmp))}
        try:
            figures["vsphere"] = vsphere(Path(tmp))
        except Exception as exc:  # the local figures stand on their own
            figures["vsphere"] = {"error": f"{type(exc).__name__}: {exc}"}
    write("classroom", figures)


if __name__ == "__main__":
    main()
