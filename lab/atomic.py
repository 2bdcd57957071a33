"""Files that are either whole or untouched: the one way swarmlab writes a file it must trust.

The state file, the class record, the pinned host keys and the Vagrant project's files are
read back by later runs. Rewritten in place, a run killed (or a disk filled) half-way leaves
a truncated file: every node's pin, or the record of what exists, gone. So each is written to
a temporary file beside it (same file system, so the rename is atomic), flushed to disk, and
renamed over the old one; on any fault the old file stays as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace `path` with `text` (file mode `mode`) in one step: readers see old or new."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
