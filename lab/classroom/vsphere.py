"""A vSphere class's own folder: the students' lab folders go inside it.

The vmware provider makes a lab's folder but expects its parents to exist, so the class
makes its folder (the levels that are missing) before any lab is cloned, and removes it at
class.down only if the class made it and it is empty by then.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyVmomi import vim, vmodl

from ..errors import LabError
from ..spec import LabSpec
from ..vsphere import inventory
from ..vsphere.connection import connect, disconnect, fault_text, resolve_password
from ..vsphere.settings import VSphereSettings, parse_settings
from ..vsphere.tasks import run_tasks

FOLDER_TIMEOUT = 300


@contextmanager
def _session(settings: VSphereSettings) -> Iterator[Any]:
    service = connect(settings, resolve_password(settings))
    try:
        yield service
    finally:
        disconnect(service)


def ensure_class_folder(spec: LabSpec) -> list[str]:
    """Make the missing levels above a student's lab folder; returns the paths made."""
    settings = parse_settings(spec)
    made: list[str] = []
    with _session(settings) as service:
        content = service.RetrieveContent()
        parent = inventory.datacenter(content, settings.datacenter).vm_folder
        for depth, part in enumerate(settings.folder[:-1]):
            child = inventory.child_folder(content, parent, part)
            if child is None:
                path = "/".join(settings.folder[: depth + 1])
                try:
                    child = parent.CreateFolder(part)
                except vmodl.MethodFault as exc:
                    raise LabError(f"cannot create the class's VM folder {path}:"
                                   f" {fault_text(exc)}") from None
                made.append(path)
            parent = child
    return made


def remove_class_folder(spec: LabSpec, path: str) -> bool:
    """Remove a folder the class made, if nothing is left in it; True when removed."""
    settings = parse_settings(spec)
    with _session(settings) as service:
        content = service.RetrieveContent()
        dc = inventory.datacenter(content, settings.datacenter)
        parts = path.split("/")
        folder, _parent = inventory.folder_path(content, dc, parts)
        if folder is None:
            return True
        children = inventory.retrieve(content, [folder], vim.Folder, ["childEntity"])
        if children and children[0].props.get("childEntity"):
            return False
        outcome = run_tasks(service, {path: folder.Destroy_Task}, bound=1,
                            timeout=FOLDER_TIMEOUT)[path]
        if not outcome.ok:
            raise LabError(f"the class's VM folder {path} was not removed: {outcome.error}")
    return True


def before_up(entry_spec: LabSpec, made_before: list[str]) -> list[str]:
    """Every folder the class made, now and at earlier runs (kept in the class record)."""
    return [*made_before, *ensure_class_folder(entry_spec)]


def after_down(spec: LabSpec, made: list[str]) -> list[str]:
    """Remove the class's folders it made, deepest first; returns those left in place."""
    return [path for path in sorted(made, key=len, reverse=True)
            if not remove_class_folder(spec, path)]
