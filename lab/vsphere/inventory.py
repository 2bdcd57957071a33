"""Finding vSphere objects by name: exactly one, or a one-line error that says why not.

On a shared vCenter, "the first datacenter found" is somebody else's: every lookup here
counts its matches and refuses both none and several. Properties are read through the
property collector in one call per question; never through pyVmomi's attribute access,
which fetches one property per round trip and, on vcsim, drops the connection when it
reads an unset `snapshot`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim, vmodl

from ..errors import SpecError
from ..waits import wait_until

PC = vmodl.query.PropertyCollector
# A folder path whose levels keep vanishing under a look-up is not a race any more.
PATH_RETRY_SECONDS = 10.0


@dataclass
class Found:
    """One managed object and the properties asked for (absent when unset)."""

    obj: Any
    props: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.props.get("name", ""))


def retrieve(content: Any, objects: Iterable[Any], kind: type, paths: Sequence[str]) -> list[Found]:
    """Properties of the given objects, in one property-collector round trip (plus paging).

    An object deleted since it was listed (a sibling lab's VM or folder, gone in parallel)
    is left out instead of failing the whole call with ManagedObjectNotFound.
    """
    object_set = [PC.ObjectSpec(obj=obj, skip=False) for obj in objects]
    if not object_set:
        return []
    prop_set = [PC.PropertySpec(type=kind, pathSet=list(paths))]
    spec = PC.FilterSpec(objectSet=object_set, propSet=prop_set,
                         reportMissingObjectsInResults=True)
    return _collect(content, spec)


def contained(content: Any, root: Any, kind: type, paths: Sequence[str]) -> list[Found]:
    """Every object of `kind` below `root` (recursively), with the given properties."""
    view = content.viewManager.CreateContainerView(root, [kind], True)
    try:
        traversal = PC.TraversalSpec(name="view", type=vim.view.ContainerView, path="view",
                                     skip=False)
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
            propSet=[PC.PropertySpec(type=kind, pathSet=list(paths))],
        )
        return _collect(content, spec)
    finally:
        view.DestroyView()


def _collect(content: Any, spec: Any) -> list[Found]:
    collector = content.propertyCollector
    found: list[Found] = []
    result = collector.RetrievePropertiesEx([spec], PC.RetrieveOptions())
    while result is not None:
        for item in result.objects or []:
            if _vanished(item):
                continue
            found.append(Found(item.obj, {prop.name: prop.val for prop in item.propSet or []}))
        if not result.token:
            break
        result = collector.ContinueRetrievePropertiesEx(result.token)
    return found


def _vanished(item: Any) -> bool:
    # vCenter reports an object deleted meanwhile in missingSet (vcsim leaves it out).
    return any(isinstance(getattr(missing.fault, "fault", None), vmodl.fault.ManagedObjectNotFound)
               for missing in item.missingSet or [])


def inventory_path(content: Any, obj: Any) -> str:
    """'/DC0/vm/labs/x' for messages: which of several same-named objects is which."""
    names: list[str] = []
    current = obj
    while current is not None and current != content.rootFolder:
        props = retrieve(content, [current], vim.ManagedEntity, ["name", "parent"])
        if not props:
            break
        names.append(props[0].name)
        current = props[0].props.get("parent")
    return "/" + "/".join(reversed(names))


def one(
    content: Any, matches: list[Found], *, what: str, name: str, field: str, where: str
) -> Found:
    """The single match, or SpecError naming the lab-file field, the name and the place."""
    if not matches:
        raise SpecError(f"lab file: vmware.{field}: no {what} named {name!r} in {where}")
    if len(matches) > 1:
        paths = ", ".join(sorted(inventory_path(content, m.obj) for m in matches))
        raise SpecError(
            f"lab file: vmware.{field}: {len(matches)} {what}s are named {name!r} in {where}"
            f" ({paths}); rename one, swarmlab does not guess"
        )
    return matches[0]


def by_name(
    content: Any, root: Any, kind: type, name: str, paths: Sequence[str] = ()
) -> list[Found]:
    return [f for f in contained(content, root, kind, ["name", *paths]) if f.name == name]


@dataclass
class Datacenter:
    obj: Any
    name: str
    vm_folder: Any
    host_folder: Any
    datastore_folder: Any
    network_folder: Any


def datacenter(content: Any, name: str) -> Datacenter:
    paths = ["name", "vmFolder", "hostFolder", "datastoreFolder", "networkFolder"]
    matches = [f for f in contained(content, content.rootFolder, vim.Datacenter, paths)
               if f.name == name]
    found = one(content, matches, what="datacenter", name=name, field="datacenter",
                where="vCenter")
    p = found.props
    return Datacenter(found.obj, name, p["vmFolder"], p["hostFolder"], p["datastoreFolder"],
                      p["networkFolder"])


def child_folder(content: Any, parent: Any, name: str) -> Any | None:
    """The direct child folder `name` of `parent` (folder names are unique per parent).

    One SearchIndex.FindChild call: the server looks the name up in its own inventory.
    Reading the children and then their names took two calls, and a sibling removed
    between them (students' labs torn down in parallel) failed the whole look-up.
    """
    found = content.searchIndex.FindChild(parent, name)
    return found if isinstance(found, vim.Folder) else None


def folder_path(content: Any, dc: Datacenter, parts: Sequence[str]) -> tuple[Any | None, Any]:
    """(the lab's folder or None, its parent); SpecError when a parent level is missing.

    A level found and then removed before its child is looked up (the class's folder
    removed by its last student) makes the walk start again: the second walk sees the
    inventory as it is now.
    """
    return wait_until(
        lambda: _walk(content, dc, parts), timeout=PATH_RETRY_SECONDS, interval=0.5,
        what=f"the VM folder path {'/'.join(parts)} to stay in place while it is looked up",
        retry_on=(vmodl.fault.ManagedObjectNotFound,), done=lambda _found: True,
    )


def _walk(content: Any, dc: Datacenter, parts: Sequence[str]) -> tuple[Any | None, Any]:
    parent = dc.vm_folder
    for depth, part in enumerate(parts[:-1]):
        child = child_folder(content, parent, part)
        if child is None:
            missing = "/".join(parts[: depth + 1])
            raise SpecError(
                f"lab file: vmware.folder: the parent folder {missing!r} does not exist in"
                f" {dc.name}'s VM folder; create it or shorten the path"
            )
        parent = child
    return child_folder(content, parent, parts[-1]), parent


def vms_in(content: Any, folder: Any, paths: Sequence[str]) -> list[Found]:
    """The VMs directly in `folder`, with properties."""
    children = retrieve(content, [folder], vim.Folder, ["childEntity"])
    entities = children[0].props.get("childEntity", []) if children else []
    vms = [e for e in entities if isinstance(e, vim.VirtualMachine)]
    return retrieve(content, vms, vim.VirtualMachine, ["name", *paths])


def extra_config(found: Found) -> dict[str, str]:
    return {opt.key: str(opt.value) for opt in found.props.get("config.extraConfig", []) or []}

