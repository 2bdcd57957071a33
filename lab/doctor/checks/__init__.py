"""The doctor's checks, one module per concern (testinfra's shape): each has NAME and
`check(survey) -> list[Finding]`, and reports an `ok` finding when nothing is wrong so the
report says what was looked at, not only what failed."""

from __future__ import annotations

from . import (
    advertise,
    certificates,
    clock,
    firewall,
    ipvs,
    membership,
    networks,
    overlay,
    ports,
)

# Cheap reads first; the overlay check creates (and removes) a service, so it runs last.
CHECKS = (membership, clock, firewall, ports, certificates, advertise, networks, ipvs, overlay)
