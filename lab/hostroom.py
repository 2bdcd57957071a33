"""Room on this host for node containers: what a kernel limit allows before nodes fail."""

from __future__ import annotations

import os
from pathlib import Path

INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")


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
