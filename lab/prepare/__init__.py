"""Host preparation: the same steps for every provider, over SSH, in parallel across nodes.

One module per resource (testinfra's shape): facts (what the node is), docker, timesync,
firewall, selinux, images. Each probes first, changes only what differs, and reports
`changed`, `ok` or `absent` for its node.
"""

from __future__ import annotations

from .result import Change
from .runner import prepare_nodes

__all__ = ["Change", "prepare_nodes"]
