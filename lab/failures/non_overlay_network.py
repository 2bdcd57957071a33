"""non-overlay-network: a service asked for on a local bridge network.

`docker network create NAME` makes a bridge (the default driver), local to the node that
made it. Services only run on networks scoped to the swarm: the CLI, which looks the name up
among those, says "Error: No such network: NAME" (Docker 20.10, bookworm) or "Error response
from daemon: network NAME not found" (26.1, trixie); the daemon itself, asked through the
API, names the reason in the same words on both. Both are shown where the node has curl.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from ..context import Lab
from ..doctor.text import Text
from ..errors import LabError
from ..remote import Node
from ..waits import wait_until
from .base import Explanation, Failure
from .show import Show
from .swarmops import wait_for_leader

NETWORK = "lesson-net"
SERVICE = "lesson-web"
# The CLI's words, one stable part per Docker generation (real output:
# tests/fixtures/docker_words/*/non_overlay_cli.txt).
CLI_TEXTS = (f"No such network: {NETWORK}", f"network {NETWORK} not found")
DAEMON_TEXT = "cannot be used with services"
RUNNING_WAIT = 60


class NonOverlayNetwork(Failure):
    name = "non-overlay-network"
    title = "A service on a local bridge network"
    teaches = (
        "Networks have a scope: a bridge made with `docker network create` lives on one node;"
        " services need a network scoped to the swarm, made with the overlay driver."
    )
    explanation = Explanation(
        cause=Text(
            f"`docker network create {NETWORK}` made a bridge network (the default driver) on"
            " this node only: its scope is local. A service runs its tasks across the swarm and"
            " can only use networks scoped to the swarm. The CLI looks the name up among those"
            f" and says \"Error: No such network: {NETWORK}\" (Docker 20.10) or \"network"
            f" {NETWORK} not found\" (Docker 26.1); the daemon says \"The"
            f" network {NETWORK} cannot be used with services. Only networks scoped to the swarm"
            " can be used, such as those created with the overlay driver.\"",
            f"`docker network create {NETWORK}` 创建的是 bridge 网络（默认驱动），只存在于当前节点"
            "，"
            "作用域为 local。服务的任务分布在整个 swarm 上，只能使用作用域为 swarm 的网络。"
            f"命令行只在这类网络中查找该名字，于是报 \"Error: No such network: {NETWORK}\""
            f"（Docker 20.10）或 \"network {NETWORK} not found\"（Docker 26.1）；守护进"
            "程"
            f"的原话是 \"The network {NETWORK} cannot be used with services. Only networks scoped"
            " to the swarm can be used, such as those created with the overlay driver.\"",
        ),
        fix=Text(
            f"On a manager: `docker network rm {NETWORK}`, `docker network create -d overlay"
            f" {NETWORK}`, then `docker service create --network {NETWORK} ...`. `docker network"
            " ls` shows the SCOPE column: swarm is what services need.",
            f"在管理节点执行 `docker network rm {NETWORK}`、`docker network create -d overlay"
            f" {NETWORK}`，再 `docker service create --network {NETWORK} ...`。`docker network ls`"
            " 的 SCOPE 列为 swarm 的网络才能给服务使用。",
        ),
    )
    # Using an overlay network is both the seed's fix and the right one.
    ways = ("seed",)

    def _service_command(self, lab: Lab) -> str:
        image = shlex.quote(lab.spec.images["busybox"])
        return (f"docker service create --detach --name {SERVICE} --network {NETWORK}"
                f" --no-resolve-image {image} sleep 1d")

    def _api_request(self, lab: Lab) -> str:
        body = json.dumps({
            "Name": SERVICE,
            "TaskTemplate": {
                "ContainerSpec": {"Image": lab.spec.images["busybox"], "Command": ["sleep", "1d"]},
                "Networks": [{"Target": NETWORK}],
            },
        })
        return ("curl -s --unix-socket /var/run/docker.sock -H 'Content-Type: application/json'"
                f" -X POST http://localhost/services/create -d {shlex.quote(body)}")

    def do_break(self, lab: Lab, show: Show) -> None:
        manager = wait_for_leader(lab)
        self.note(lab, node=manager.name)
        # Leftovers of an earlier run's fix (the service and its overlay) would change the lesson.
        manager.run(f"docker service rm {SERVICE} >/dev/null 2>&1; for i in $(seq 30); do"
                    f" docker network inspect {NETWORK} >/dev/null 2>&1 || break;"
                    f" docker network rm {NETWORK} >/dev/null 2>&1; sleep 1; done", timeout=60)
        show.say("A network for the service, made the way one makes one for containers:")
        show.run(manager, f"docker network create {NETWORK}")
        show.run(manager, f"docker network ls --filter name={NETWORK}")
        result = show.run(manager, self._service_command(lab))
        show.expect(result, CLI_TEXTS, "the CLI: no such network")
        if manager.run("command -v curl", timeout=30).ok:
            show.say("The CLI hides the daemon's reason; ask the daemon itself, through its API:")
            result = show.run(manager, self._api_request(lab))
            show.expect(result, DAEMON_TEXT, "the daemon: only networks scoped to the swarm")
        else:
            show.say(f"{manager.name} has no curl to ask the daemon itself; its words are:"
                     f" \"The network {NETWORK} cannot be used with services. Only networks"
                     " scoped to the swarm can be used, such as those created with the overlay"
                     " driver.\"")

    def do_fix(self, lab: Lab, show: Show, way: str, record: dict[str, Any]) -> None:
        manager = wait_for_leader(lab)
        # The bridge lives on the node that made it, which may no longer be the leader.
        holders = [lab.node(record["node"])] if record.get("node") else lab.managers()
        for node in holders:
            if self._driver(node) not in ("", "overlay"):
                if node.run(f"docker service inspect {SERVICE}", timeout=30).ok:
                    show.run(manager, f"docker service rm {SERVICE}")
                show.run(node, f"docker network rm {NETWORK}")
        if self._driver(manager) != "overlay":
            show.run(manager, f"docker network create -d overlay {NETWORK}")
        if not manager.run(f"docker service inspect {SERVICE}", timeout=30).ok:
            show.run(manager, self._service_command(lab))
        self._wait_running(manager, show)

    def _driver(self, node: Node) -> str:
        return node.run(f"docker network inspect -f '{{{{.Driver}}}}' {NETWORK}",
                        timeout=30).stdout.strip()

    def _wait_running(self, manager: Node, show: Show) -> None:
        listing = f"docker service ls --filter name={SERVICE}"
        quiet = wait_until(
            lambda: manager.run(f"{listing} --format '{{{{.Replicas}}}}'", timeout=30),
            timeout=RUNNING_WAIT, interval=2, what=f"{SERVICE} to run",
            done=lambda result: result.stdout.strip().startswith("1/1"), error=None,
        )
        show.run(manager, listing)
        if not quiet.stdout.strip().startswith("1/1"):
            raise LabError(f"{SERVICE} did not reach 1/1 replicas on overlay {NETWORK} within"
                           f" {RUNNING_WAIT} s; `docker service ps {SERVICE}` on"
                           f" {manager.name} says why")
        show.passed(f"{SERVICE} runs on the overlay network {NETWORK}")
