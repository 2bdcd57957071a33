"""The result of converging one resource on one node."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Change:
    resource: str
    status: str  # ok, changed, absent (the thing does not exist on this node), skipped
    detail: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
