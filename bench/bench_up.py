"""lab.up on the local provider: to three Ready nodes, a converged rerun, prepare's scaling,
and the seed's own procedure (a plain sequential script over SSH) on the same nodes.

Targets (2 cores): up with images built <= 20 s; rerun <= 5 s; prepare of three nodes
<= 1.3 x prepare of one.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from lab import swarm
from lab.context import Lab
from lab.images import IMAGE_NAMES, ensure_images
from lab.lifecycle import down, up
from lab.spec import LAB_DEFAULTS, parse_spec
from lab.tasks.lab_tasks import ssh_argv

from .common import write

TARGETS = {"up_seconds": 20.0, "rerun_seconds": 5.0, "prepare_3_over_1": 1.3}


def quiet(line: str) -> None:
    """Benchmarks print figures, not progress."""


def make_lab(name: str, octet: int, count: int, state_dir: Path) -> Lab:
    layout = [("manager1", "manager"), ("manager2", "manager"), ("worker1", "worker")][:count]
    data = {**LAB_DEFAULTS, "name": name, "subnet": f"10.202.{octet}.0/24",
            "state_dir": str(state_dir),
            "nodes": [{"name": n, "role": r, "address": f"10.202.{octet}.{11 + i}"}
                      for i, (n, r) in enumerate(layout)]}
    return Lab(parse_spec(data), log=lambda line: None)


def timed_up(lab: Lab) -> tuple[float, dict[str, float]]:
    start = time.monotonic()
    report = up(lab, log=quiet)
    return time.monotonic() - start, report.timings()


def seed_procedure(lab: Lab) -> float:
    """The seed's steps, one node after another, each command its own `ssh` as a person would."""
    def ssh(node: str, command: str) -> str:
        argv = [*ssh_argv(lab.node(node).target), "-o", "BatchMode=yes", command]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()

    start = time.monotonic()
    for node in lab.spec.nodes:
        ssh(node.name, "systemctl disable --now firewalld 2>/dev/null; setenforce 0 2>/dev/null;"
                       " docker version --format '{{.Server.Version}}'")
        ssh(node.name, "date +%s")
    first = lab.spec.first_manager
    ssh(first.name, f"docker swarm init --advertise-addr {first.address}")
    tokens = {role: ssh(first.name, f"docker swarm join-token -q {role}")
              for role in ("manager", "worker")}
    for node in lab.spec.nodes:
        if node is not first:
            ssh(node.name, f"docker swarm join --token {tokens[node.role]}"
                           f" --advertise-addr {node.address} {first.address}:2377")
    ssh(first.name, "docker node ls")
    return time.monotonic() - start


def main() -> None:
    ensure_images(IMAGE_NAMES, log=lambda line: None)
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp)
        three = make_lab("b-three", 1, 3, state_dir)
        one = make_lab("b-one", 2, 1, state_dir)
        for lab in (three, one):
            down(lab, log=lambda line: None)
        three = make_lab("b-three", 1, 3, state_dir)
        one = make_lab("b-one", 2, 1, state_dir)
        try:
            up_seconds, up_steps = timed_up(three)
            rerun_seconds, rerun_steps = timed_up(three)
            _, one_steps = timed_up(one)
            swarm.leave(three, None, log=lambda line: None)
            seed_seconds = seed_procedure(three)
            swarm.leave(three, None, log=lambda line: None)
            three.state.invalidate_steps()
            ours_start = time.monotonic()
            up(three, log=quiet)
            ours_seconds = time.monotonic() - ours_start
        finally:
            for lab in (three, one):
                down(lab, log=lambda line: None)
    figures = {
        "up_seconds": round(up_seconds, 2),
        "up_steps": up_steps,
        "rerun_seconds": round(rerun_seconds, 2),
        "rerun_steps": rerun_steps,
        "prepare_one_node_seconds": one_steps["prepare"],
        "prepare_three_nodes_seconds": up_steps["prepare"],
        "prepare_3_over_1": round(up_steps["prepare"] / one_steps["prepare"], 2),
        "seed_sequential_script_seconds": round(seed_seconds, 2),
        "swarmlab_same_nodes_seconds": round(ours_seconds, 2),
        "seed_over_swarmlab": round(seed_seconds / ours_seconds, 2),
        "targets": TARGETS,
    }
    figures["met"] = {
        "up_seconds": figures["up_seconds"] <= TARGETS["up_seconds"],
        "rerun_seconds": figures["rerun_seconds"] <= TARGETS["rerun_seconds"],
        "prepare_3_over_1": figures["prepare_3_over_1"] <= TARGETS["prepare_3_over_1"],
    }
    write("up", figures)


if __name__ == "__main__":
    main()
