"""SELinux: permissive (the lesson's fix) or enforcing (a production host's way), now and in
its config where it exists; reported absent where not."""

from __future__ import annotations

from ..errors import LabError
from ..remote import Node
from .result import Change

CONFIG = "/etc/selinux/config"
# What /etc/selinux/config says at boot for each policy that changes it.
AT_BOOT = {"permissive": "SELINUX=permissive", "enforcing": "SELINUX=enforcing"}
NOW = {"permissive": ("Permissive", "setenforce 0"), "enforcing": ("Enforcing", "setenforce 1")}


def mode(node: Node) -> str:
    result = node.run("getenforce", timeout=30)
    return result.stdout.strip() if result.ok else "absent"


def converge(node: Node, policy: str) -> Change:
    current = mode(node)
    if policy == "enforcing" and current in ("absent", "Disabled"):
        # Turning SELinux on needs the kernel's `security=selinux` and a relabelled disk:
        # a rebuild, not a step of prepare.
        raise LabError(
            f"{node.name}: selinux enforcing asked for, but SELinux is {current.lower()} on this"
            " node; use nodes_like: seed (swarmlab's libvirt box has it) or selinux: permissive")
    if current in ("absent", "Disabled"):
        return Change("selinux", "absent" if current == "absent" else "ok", current,
                      {"selinux": current})
    if policy == "unchanged":
        return Change("selinux", "ok", f"{current} (left as it is)", {"selinux": current})
    wanted, command = NOW[policy]
    changes = []
    if current != wanted:
        node.run(command, timeout=30, check=True)
        changes.append(f"{wanted.lower()} now (was {current})")
    line = AT_BOOT[policy]
    if not node.run(f"grep -qx {line} {CONFIG}", timeout=30).ok:
        node.run(f"sed -i 's/^SELINUX=.*/{line}/' {CONFIG}", timeout=30, check=True)
        changes.append(f"{wanted.lower()} at boot")
    return Change("selinux", "changed" if changes else "ok", ", ".join(changes) or wanted,
                  {"selinux": wanted})
