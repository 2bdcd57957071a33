"""`python -m bench [NAME...]`: run the benchmarks (all by default), JSON in bench/results/."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("bench_up", "bench_swarm", "bench_releases", "bench_vsphere", "bench_classroom",
              "bench_incus", "bench_web")


def main(names: list[str]) -> None:
    for name in names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        module.main()


if __name__ == "__main__":
    main(sys.argv[1:])
