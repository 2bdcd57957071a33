"""Failures broken on purpose: the seed's four, each with Docker's own error, its cause
and fix (English and Chinese), and a fix that also undoes a break interrupted halfway.

base.py is the shape every failure has; show.py draws commands as a teacher types them;
swarmops.py holds the swarm moves they share. This module is the registry by name.
"""

from __future__ import annotations

from ..errors import SpecError
from .already_in_swarm import AlreadyInSwarm
from .base import Failure
from .clock_skew_ca import ClockSkewCA
from .firewall_blocks_join import FirewallBlocksJoin
from .non_overlay_network import NonOverlayNetwork

FAILURES: dict[str, type[Failure]] = {
    cls.name: cls for cls in (AlreadyInSwarm, NonOverlayNetwork, FirewallBlocksJoin, ClockSkewCA)
}


def get(name: str) -> Failure:
    try:
        return FAILURES[name]()
    except KeyError:
        raise SpecError(
            f"no failure named {name!r}; known: {', '.join(FAILURES)} (`invoke failure.list`)"
        ) from None
