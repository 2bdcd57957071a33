"""What a node is: its OS, package family, init system. Probed, never assumed."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..errors import NodeError
from ..remote import Node

PACKAGE_MANAGERS = ("apt-get", "dnf", "yum")
PROBE = r"""
. /etc/os-release 2>/dev/null
echo "os=${PRETTY_NAME:-unknown}"
echo "id=${ID:-unknown}"
echo "like=${ID_LIKE:-}"
for pm in apt-get dnf yum; do command -v $pm >/dev/null 2>&1 && { echo "pm=$pm"; break; }; done
[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && echo init=systemd || echo init=other
"""


@dataclass(frozen=True)
class Facts:
    os: str
    os_id: str
    package_manager: str  # apt-get, dnf, yum or "" when none is found
    systemd: bool

    @property
    def family(self) -> str:
        return {"apt-get": "debian", "dnf": "rhel", "yum": "rhel"}.get(self.package_manager, "?")


def gather(node: Node) -> Facts:
    result = node.run(PROBE, timeout=30, check=True, shown="probe os-release and package manager")
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    # The package manager goes back into commands: only a name the probe itself can print.
    package_manager = values.get("pm", "")
    facts = Facts(
        os=values.get("os", "unknown"),
        os_id=values.get("id", "unknown"),
        package_manager=package_manager if package_manager in PACKAGE_MANAGERS else "",
        systemd=values.get("init") == "systemd",
    )
    if not facts.package_manager:
        raise NodeError(node.name, f"{facts.os} has neither apt-get, dnf nor yum; use a Debian,"
                        " Ubuntu, CentOS, Rocky or Fedora image")
    return facts


def install(node: Node, facts: Facts, packages: list[str], timeout: int) -> None:
    names = " ".join(shlex.quote(package) for package in packages)
    if facts.package_manager == "apt-get":
        command = (
            "export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null &&"
            f" apt-get install -y -q --no-install-recommends {names}"
        )
    else:
        command = f"{shlex.quote(facts.package_manager)} install -y -q {names}"
    node.run(command, timeout=timeout, check=True, shown=f"install {names}")
