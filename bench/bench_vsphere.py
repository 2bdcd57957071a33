"""The vmware provider's create step against vcsim: nine clones (three labs of three) made in
parallel, against the same nine made one at a time, in one run, as a ratio.

Each VM is container-backed (the local node image), so a clone is really followed by a
container start, an address and an SSH host key, as on vCenter a clone is followed by a boot.
"Parallel": the three labs' create steps at once, each cloning with its default bound (4).
"One at a time": the labs one after the other with vmware.parallel = 1.

On a 2-core machine the ratio is bounded by the host, not by vSphere: vcsim clones one
template's copies one at a time, and nine systemd nodes booting at once share two cores and
one dockerd. On real vCenter a clone is mostly the datastore's work, so the gain is larger.
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab import vcsim
from lab.images import ensure_images
from lab.providers.vmware import VMwareProvider
from lab.spec import parse_spec
from lab.state import LabState

from .common import write

IMAGE = "swarmlab/node:bookworm"
LABS = 3


def make_provider(sim: vcsim.Vcsim, state_dir: Path, index: int, parallel: int) -> VMwareProvider:
    name = f"b-vs{index}"
    prefix = f"10.203.{index}"
    spec = parse_spec({
        "name": name, "provider": "vmware", "subnet": f"{prefix}.0/24",
        "state_dir": str(state_dir),
        "nodes": [{"name": node, "role": role, "address": f"{prefix}.{11 + i}"}
                  for i, (node, role) in enumerate(
                      [("manager1", "manager"), ("manager2", "manager"), ("worker1", "worker")])],
        "vmware": {
            "vcenter": sim.endpoint, "user": "bench", "insecure": True, "datacenter": "DC0",
            "cluster": "DC0_C0", "datastore": "LocalDS_0", "network": "DC0_DVPG0",
            "template": vcsim.TEMPLATE, "linked_clone": True, "simulator": True,
            "simulator_container_image": IMAGE, "parallel": parallel, "guest_timeout": 120,
        },
    })
    return VMwareProvider(spec, LabState.load(state_dir, name), log=lambda line: None)


def timed_round(sim: vcsim.Vcsim, state_dir: Path, parallel: bool) -> float:
    providers = [make_provider(sim, state_dir, index, 4 if parallel else 1)
                 for index in range(1, LABS + 1)]
    for provider in providers:
        provider.destroy()  # leftovers of an interrupted run: these labs' own
    start = time.monotonic()
    if parallel:
        with ThreadPoolExecutor(max_workers=LABS) as pool:
            list(pool.map(lambda p: p.create(), providers))
    else:
        for provider in providers:
            provider.create()
    seconds = time.monotonic() - start
    for provider in providers:
        provider.destroy()
        provider.close()
    return seconds


def main() -> None:
    ensure_images([IMAGE], log=lambda line: None)
    os.environ.setdefault("SWARMLAB_VSPHERE_PASSWORD", "bench")
    with tempfile.TemporaryDirectory(prefix="bench-vsphere-") as tmp:
        sim = vcsim.start(Path(tmp) / "vcsim")
        try:
            state_dir = Path(tmp) / "state"
            serial = timed_round(sim, state_dir, parallel=False)
            parallel = timed_round(sim, state_dir, parallel=True)
        finally:
            sim.stop()
    ratio = parallel / serial
    write("vsphere", {
        "clones": LABS * 3,
        "one_at_a_time_seconds": round(serial, 2),
        "parallel_seconds": round(parallel, 2),
        "parallel_over_one_at_a_time": round(ratio, 3),
        "seconds_per_vm_one_at_a_time": round(serial / (LABS * 3), 2),
    })


if __name__ == "__main__":
    main()
