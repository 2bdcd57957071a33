"""What `docker inspect` must show of every node that is a container, whoever made it (the
local provider through the API, Vagrant's docker provider and vcsim through `docker run`):
lab/container_node.py's flags, read back from the engine rather than from our own lists."""

from __future__ import annotations

from typing import Any

from lab.container_node import CAPS_DROPPED, MASKED_PATHS, PROC_SYS_TREES

# Docker 20.10's default list lacks powercap (a later engine masks it too): a node made with
# `docker run` gets the engine's list, since the CLI cannot name paths.
MASKED_BY_EVERY_ENGINE = [path for path in MASKED_PATHS if "powercap" not in path]


def hardening_gaps(inspected: dict[str, Any]) -> list[str]:
    """Every way this container is less closed than a container node must be; [] if none."""
    host = inspected["HostConfig"]
    gaps = []
    dropped = {cap.removeprefix("CAP_") for cap in host.get("CapDrop") or []}
    gaps += [f"{cap} not dropped" for cap in CAPS_DROPPED if cap not in dropped]
    if host.get("Privileged"):
        gaps.append("privileged")
    if host.get("DeviceCgroupRules") or host.get("Devices"):
        gaps.append(f"device rules {host.get('DeviceCgroupRules')} {host.get('Devices')}")
    masked = set(host.get("MaskedPaths") or [])
    gaps += [f"{path} not masked" for path in MASKED_BY_EVERY_ENGINE if path not in masked]
    readonly = set(host.get("ReadonlyPaths") or [])
    gaps += [f"/proc/sys/{tree} writable" for tree in PROC_SYS_TREES
             if "/proc/sys" not in readonly and f"/proc/sys/{tree}" not in readonly]
    if host.get("CgroupnsMode") != "private":
        gaps.append(f"cgroupns {host.get('CgroupnsMode')}")
    return gaps
