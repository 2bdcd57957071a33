"""Clocks: chrony where nodes own their clocks, and the measured skew everywhere.

Swarm backdates its certificates by one hour, so a node whose clock runs more than an hour
off the manager that made the CA cannot join. Containers share the host's clock: there the
skew is measured and reported, never "fixed" (a node must not set the host's clock).
"""

from __future__ import annotations

import time

from ..remote import Node
from .facts import Facts, install
from .result import Change

# Swarm tolerates an hour (its certificates are backdated by that much).
SWARM_TOLERANCE_SECONDS = 3600
# A node further off than this after time sync is stepped to the controller's clock.
STEP_THRESHOLD_SECONDS = 2.0


def measure_skew(node: Node) -> float:
    """Node clock minus controller clock, in seconds, corrected for the round trip."""
    before = time.time()
    remote = float(node.run("date +%s.%N", timeout=30, check=True).stdout.strip())
    after = time.time()
    return remote - (before + after) / 2


def service_name(facts: Facts) -> str:
    return "chrony" if facts.package_manager == "apt-get" else "chronyd"


def converge(node: Node, facts: Facts, owns_clock: bool, wanted: bool, timeout: int) -> Change:
    if not owns_clock:
        skew = measure_skew(node)
        return Change("time", "ok", f"shares the host clock (skew {skew:+.3f} s)",
                      {"skew": skew, "source": "host"})
    changes: list[str] = []
    if wanted:
        if not node.run("command -v chronyd", timeout=30).ok:
            install(node, facts, ["chrony"], timeout)
            changes.append("chrony installed")
        service = service_name(facts)
        if not node.run(f"systemctl is-active --quiet {service}", timeout=30).ok:
            node.run(f"systemctl enable --now {service}", timeout=60, check=True)
            changes.append("chrony started")
    skew = measure_skew(node)
    if abs(skew) > STEP_THRESHOLD_SECONDS:
        skew = step_from_controller(node)
        changes.append(f"clock stepped to the controller's (skew now {skew:+.3f} s)")
    detail = ", ".join(changes) or f"skew {skew:+.3f} s"
    return Change("time", "changed" if changes else "ok", detail, {"skew": skew, "source": "node"})


def step_from_controller(node: Node) -> float:
    """Set the node's clock to the controller's: for labs whose nodes reach no NTP server
    (isolated networks, as here), where chrony alone cannot put a clock right."""
    node.run(f"date -s @{time.time():.3f} >/dev/null", timeout=30, check=True,
             shown="date -s @<controller time>")
    return measure_skew(node)


def make_time_right(node: Node) -> float:
    """Step the clock now (after a snapshot revert rewound it); returns the skew after.

    chrony first, as on any real network; if the node is still off (no NTP server answered
    it), the controller's clock is the reference."""
    node.run(
        "systemctl restart chrony 2>/dev/null || systemctl restart chronyd 2>/dev/null;"
        " for i in 1 2 3 4 5; do chronyc -a makestep >/dev/null 2>&1 &&"
        " chronyc waitsync 1 0.5 >/dev/null 2>&1 && break; sleep 1; done",
        timeout=60, shown="chronyc makestep",
    )
    skew = measure_skew(node)
    if abs(skew) > STEP_THRESHOLD_SECONDS:
        skew = step_from_controller(node)
    return skew
