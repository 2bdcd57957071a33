"""lab.up on trixie nodes (Docker 26.1) beside bookworm nodes (Docker 20.10), in one run.

Figures per release: lab.up of three local nodes from nothing to a verified swarm (node
images already built), its phases as lab.up reports them, a converged rerun, the idle
memory of each node, the node image's size and the Docker version. The two releases take
turns (bookworm, trixie, bookworm, trixie) so a busy moment of a shared machine does not
fall on one release only.

    python -m bench bench_releases
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

from lab.context import Lab
from lab.images import ensure_images
from lab.lifecycle import down, up
from lab.spec import LAB_DEFAULTS, RELEASES, parse_spec

from .bench_incus import local_memory_mib, timed
from .common import write

ROUNDS = 2
IDLE_SECONDS = 20
LABS = {"bookworm": ("t-h10-benchb", 227), "trixie": ("t-h10-bencht", 228)}
# lab.up's summary line of a phase: "    prepare: changed (3.1 s) - ..."
PHASE = re.compile(r"^\s+(\w+): \w+ \(([\d.]+) s\)")


def make_lab(release: str, state_dir: Path, log: Any) -> Lab:
    name, octet = LABS[release]
    layout = [("manager1", "manager"), ("manager2", "manager"), ("worker1", "worker")]
    data = {**LAB_DEFAULTS, "name": name, "release": release, "local": {},
            "subnet": f"10.201.{octet}.0/24", "state_dir": str(state_dir),
            "nodes": [{"name": n, "role": r, "address": f"10.201.{octet}.{11 + i}"}
                      for i, (n, r) in enumerate(layout)]}
    return Lab(parse_spec(data), log=log)


def one_up(release: str, state_dir: Path) -> dict[str, Any]:
    phases: dict[str, float] = {}

    def log(line: str) -> None:
        match = PHASE.match(line)
        if match:
            phases[match.group(1)] = float(match.group(2))

    lab = make_lab(release, state_dir, log)
    down(lab, log=lambda line: None)
    lab = make_lab(release, state_dir, log)
    try:
        figures: dict[str, Any] = {"up_seconds": timed(lambda: up(lab, log=log))}
        figures["phases"] = dict(phases)
        figures["rerun_seconds"] = timed(lambda: up(lab, log=lambda line: None))
        time.sleep(IDLE_SECONDS)
        figures["idle_node_mib"] = local_memory_mib(lab)
    finally:
        down(lab, log=lambda line: None)
    return figures


def main() -> None:
    names = [f"swarmlab/node:{release}" for release in RELEASES]
    ensure_images(names, log=lambda line: None)
    client = docker.from_env()
    figures: dict[str, Any] = {
        release: {"image_mb": round(client.images.get(image).attrs["Size"] / 1e6),
                  "dockerd": client.containers.run(image, "--version", entrypoint="dockerd",
                                                   remove=True).decode().strip(),
                  "runs": []}
        for release, image in zip(RELEASES, names, strict=True)}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(ROUNDS):
            for release in RELEASES:
                figures[release]["runs"].append(one_up(release, Path(tmp)))
    for release in RELEASES:
        runs = figures[release]["runs"]
        figures[release]["up_seconds_min"] = min(r["up_seconds"] for r in runs)
    write("releases", figures)


if __name__ == "__main__":
    main()
