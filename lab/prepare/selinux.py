"""SELinux: permissive now and in its config where it exists; reported absent where not."""

from __future__ import annotations

from ..remote import Node
from .result import Change


def mode(node: Node) -> str:
    result = node.run("getenforce", timeout=30)
    return result.stdout.strip() if result.ok else "absent"


def converge(node: Node, policy: str) -> Change:
    current = mode(node)
    if current == "absent" or current == "Disabled":
        return Change("selinux", "absent" if current == "absent" else "ok", current,
                      {"selinux": current})
    if policy == "unchanged":
        return Change("selinux", "ok", f"{current} (left as it is)", {"selinux": current})
    changes = []
    if current == "Enforcing":
        node.run("setenforce 0", timeout=30, check=True)
        changes.append("permissive now")
    if node.run("grep -q '^SELINUX=enforcing' /etc/selinux/config", timeout=30).ok:
        node.run("sed -i 's/^SELINUX=enforcing/SELINUX=permissive/' /etc/selinux/config",
                 timeout=30, check=True)
        changes.append("permissive at boot")
    return Change("selinux", "changed" if changes else "ok", ", ".join(changes) or "Permissive",
                  {"selinux": "Permissive"})
