"""Docker on the node: installed, told not to pull, enabled and answering."""

from __future__ import annotations

from ..remote import Node
from .facts import Facts, install
from .result import Change

# No registry may be reachable from a lab: tasks start from images loaded on the node.
DROP_IN_PATH = "/etc/systemd/system/docker.service.d/swarmlab.conf"
DROP_IN = """# No registry is reachable from a lab: tasks must start from images loaded on the node.
[Service]
Environment=DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
"""
DOCKER_CE_REPO = "https://download.docker.com/linux/centos/docker-ce.repo"


def converge(node: Node, facts: Facts, timeout: int) -> Change:
    changes: list[str] = []
    if not node.run("command -v dockerd", timeout=30).ok:
        if facts.package_manager == "apt-get":
            install(node, facts, ["docker.io"], timeout)
        else:
            # CentOS/Rocky have no Docker in their own repositories: the seed's nodes used
            # Docker CE from Docker's repository.
            node.run(
                f"{facts.package_manager} install -y -q dnf-plugins-core yum-utils || true;"
                f" yum-config-manager --add-repo {DOCKER_CE_REPO}",
                timeout=timeout, check=True, shown="add the Docker CE repository",
            )
            install(node, facts, ["docker-ce", "docker-ce-cli", "containerd.io"], timeout)
        changes.append("installed")
    current = node.run(f"cat {DROP_IN_PATH} 2>/dev/null", timeout=30).stdout
    if current != DROP_IN:
        node.write_file(DROP_IN_PATH, DROP_IN)
        node.run("systemctl daemon-reload", timeout=60, check=True)
        if node.run("systemctl is-active --quiet docker", timeout=30).ok:
            node.run("systemctl restart docker", timeout=120, check=True)
        changes.append("offline images preferred")
    if not node.run("systemctl is-enabled --quiet docker", timeout=30).ok:
        node.run("systemctl enable docker", timeout=60, check=True)
        changes.append("enabled")
    if not node.run("systemctl is-active --quiet docker", timeout=30).ok:
        node.run("systemctl start docker", timeout=120, check=True)
        changes.append("started")
    version = node.run(
        "for i in $(seq 60); do docker version --format '{{.Server.Version}}' 2>/dev/null"
        " && exit 0; sleep 1; done; exit 1",
        timeout=90, check=True, shown="docker version",
    ).stdout.strip()
    return Change("docker", "changed" if changes else "ok", ", ".join(changes) or version,
                  {"version": version})
