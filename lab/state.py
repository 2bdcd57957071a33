"""The lab's state file: what exists and what converged, so that reruns are cheap.

One JSON file per lab (`<state_dir>/<lab>/state.json`), written atomically after every
change so that an interrupted run leaves a true record. It never holds secrets: no join
tokens, no passwords.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from .atomic import write_atomic
from .errors import LabError

FORMAT = 1


class LabState:
    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    @classmethod
    def load(cls, state_dir: str | Path, lab: str) -> LabState:
        path = Path(state_dir) / lab / "state.json"
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise LabError(
                    f"state file {path} is unreadable ({exc}); move it aside and rerun lab.up"
                ) from None
        else:
            data = {}
        data.setdefault("format", FORMAT)
        data.setdefault("lab", lab)
        for section in ("machines", "steps", "resources", "broken"):
            data.setdefault(section, {})
        return cls(path, data)

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        write_atomic(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")

    # --- machines: what the provider made --------------------------------------------
    @property
    def machines(self) -> dict[str, dict[str, Any]]:
        return self.data["machines"]

    def record_machine(self, node: str, **facts: Any) -> None:
        self.machines.setdefault(node, {}).update(facts)
        self.save()

    def forget_machine(self, node: str) -> None:
        self.machines.pop(node, None)
        self.save()

    # --- resources: other things the provider made (networks, folders, volumes) -------
    @property
    def resources(self) -> dict[str, Any]:
        return self.data["resources"]

    def record_resource(self, key: str, value: Any) -> None:
        self.resources[key] = value
        self.save()

    def forget_resource(self, key: str) -> None:
        self.resources.pop(key, None)
        self.save()

    # --- steps: what converged, for which version of the lab file ---------------------
    def step_done(self, step: str, digest: str) -> bool:
        entry = self.data["steps"].get(step)
        return bool(entry and entry.get("digest") == digest and entry.get("ok"))

    def record_step(self, step: str, digest: str, ok: bool, **facts: Any) -> None:
        self.data["steps"][step] = {"digest": digest, "ok": ok, "at": time.time(), **facts}
        self.save()

    def invalidate_steps(self, *steps: str) -> None:
        for step in steps or list(self.data["steps"]):
            self.data["steps"].pop(step, None)
        self.save()

    # --- broken: failures broken on purpose and not yet fixed -------------------------
    @property
    def broken(self) -> dict[str, Any]:
        return self.data["broken"]

    def remove(self) -> None:
        """Forget the lab entirely (after lab.down removed everything it made).

        The folder holds only the lab's own files: state, key pair, pinned host keys, caches.
        """
        shutil.rmtree(self.path.parent, ignore_errors=True)
