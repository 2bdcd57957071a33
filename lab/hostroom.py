"""Room on this host for node containers: what a kernel limit allows before nodes fail."""

from __future__ import annotations

import os
from pathlib import Path

INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")
# inotify instances one container node takes from root's allowance, measured on this host
# (`ls -l /proc/PID/fd | grep inotify` over the node's processes, sampled from its start):
# 8 once it runs (systemd 5, dbus-daemon, systemd-logind, containerd; nested tasks add
# none), 9 at the peak of its boot. Past the limit a new node's systemd exits at once
# (status 255, no output), so both the local provider and the classroom's gate count this.
INOTIFY_PER_NODE = 9


def inotify_free() -> tuple[int, int]:
    """(instances free, the limit): the limit less every inotify instance open on the host."""
    limit = int(INOTIFY_LIMIT.read_text())
    used = 0
    for process in os.scandir("/proc"):
        if not process.name.isdigit():
            continue
        try:
            for fd in os.scandir(f"/proc/{process.name}/fd"):
                if os.readlink(fd.path) == "anon_inode:inotify":
                    used += 1
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return limit - used, limit
