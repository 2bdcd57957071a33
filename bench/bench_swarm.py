"""swarm.leave and the rebuild after it, on three local nodes (`python -m bench bench_swarm`).

Before the leave order was fixed (workers, other managers demoted by the leader, the leader
last) `swarm.leave` took 31-33 s every time here: the leader left first and the next
manager's `docker info` waited 20 s for a quorum that was gone. Ansible's community.docker
reset of the same nodes: 8-10 s. Target: 10 s.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from lab import swarm
from lab.images import IMAGE_NAMES, ensure_images
from lab.lifecycle import down, up

from .bench_up import make_lab, quiet
from .common import write

TARGETS = {"leave_median_seconds": 10.0}
RUNS = 5


def main() -> None:
    ensure_images(IMAGE_NAMES, log=quiet)
    with tempfile.TemporaryDirectory() as tmp:
        lab = make_lab("t-h1-bench", 105, 3, Path(tmp))
        down(lab, log=quiet)
        lab = make_lab("t-h1-bench", 105, 3, Path(tmp))
        leaves, joins = [], []
        try:
            up(lab, log=quiet)
            for _ in range(RUNS):
                start = time.monotonic()
                swarm.leave(lab, None, log=quiet)
                leaves.append(time.monotonic() - start)
                start = time.monotonic()
                swarm.converge(lab, log=quiet)
                joins.append(time.monotonic() - start)
        finally:
            down(lab, log=quiet)
    figures = {
        "leave_seconds": [round(s, 2) for s in leaves],
        "leave_median_seconds": round(statistics.median(leaves), 2),
        "rejoin_seconds": [round(s, 2) for s in joins],
        "before_fix_leave_seconds": "31-33 (18 of 18 runs, December)",
        "targets": TARGETS,
    }
    figures["met"] = {"leave_median_seconds":
                      figures["leave_median_seconds"] <= TARGETS["leave_median_seconds"]}
    write("swarm", figures)


if __name__ == "__main__":
    main()
