"""clock-skew-ca: a swarm CA made under a clock well over an hour ahead.

Swarm backdates its certificates by an hour, so only a bigger skew shows: the manager's
clock is set three hours ahead with time sync stopped, the swarm initialised (its root CA
valid from "now" on that clock, minus an hour), the clock corrected, and every join fails
with "x509: certificate has expired or is not yet valid".

It needs nodes that own their clocks. Containers share the host's clock (and nodes are
given no SYS_TIME): moving a node's clock would move the controller's, and libfaketime does
not reach dockerd. So on such providers it refuses, and never fakes the error.

The procedure is a plain list of steps per node, so that it can be read and tested without
machines; tests/test_vm_libvirt.py runs it on real VMs under QEMU.

The fix without a rebuild is `docker swarm ca --rotate` under the right clocks. Docker 20.10
(the box's and Debian's) refuses it while the old root is not yet valid, with "error loading
cluster rootCA for update", and the root is not backdated (its notBefore is the wrong clock's
minute), so stepping the clock into the old root's window for the rotation only makes a new
root that is again in the future. Where Docker refuses, the safe fix says so and rebuilds the
swarm, the seed's way, rather than leaving the lab broken.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import swarm
from ..context import Lab
from ..doctor.text import Text
from ..errors import LabError
from ..spec import LabSpec, NodeSpec
from .base import Explanation, Failure
from .show import Show
from .swarmops import JOINED, token

X509 = "certificate has expired or is not yet valid"
ROTATION_REFUSED = "error loading cluster rootCA for update"
AHEAD_SECONDS = 3 * 3600
CLOCK_PROVIDERS = "vagrant (libvirt or VirtualBox VMs) or vmware"
NOW = "{now}"  # the controller's clock, filled in when the step runs
Address = Callable[[NodeSpec], str]


@dataclass(frozen=True)
class Step:
    node: str
    command: str  # may hold {now} and {token:worker} / {token:manager}
    say: str = ""  # what the teacher says before it
    expect: str = ""  # the stable part of Docker's output the lesson is about
    label: str = ""
    must: bool = True  # a failure stops the procedure (leaving a swarm one is not in may fail)


def _chrony(spec: LabSpec) -> str:
    return "chrony" if spec.os_family == "debian" else "chronyd"


def _by_leave_order(spec: LabSpec) -> list[NodeSpec]:
    """Workers first, the first manager last: the order that never strands a quorum."""
    first = spec.first_manager
    return [*spec.workers, *[m for m in spec.managers if m != first], first]


def _leaves(nodes: list[NodeSpec], say: str) -> list[Step]:
    return [Step(n.name, "docker swarm leave --force", say=say if i == 0 else "", must=False)
            for i, n in enumerate(nodes)]


def _joins(spec: LabSpec, address: Address, expect: str, label: str) -> list[Step]:
    first = spec.first_manager
    steps = []
    for node in spec.nodes:
        if node == first:
            continue
        own = address(node)
        steps.append(Step(
            node.name,
            f"docker swarm join --token {{token:{node.role}}} --advertise-addr {own}"
            f" --listen-addr {own}:2377 {address(first)}:2377",
            expect=expect, label=label))
    return steps


def _init(spec: LabSpec, address: Address, say: str) -> Step:
    own = address(spec.first_manager)
    return Step(spec.first_manager.name,
                f"docker swarm init --advertise-addr {own} --listen-addr {own}:2377", say=say)


def _clocks_right(spec: LabSpec) -> list[Step]:
    steps = []
    for index, node in enumerate(spec.nodes):
        say = ("Clocks right first, on every node: the controller's time, then time sync on"
               " to keep it." if index == 0 else "")
        steps.append(Step(node.name, f"date -s @{NOW}", say=say))
        steps.append(Step(node.name, f"systemctl start {_chrony(spec)}"))
    return steps


def break_plan(spec: LabSpec, address: Address = lambda n: n.address) -> list[Step]:
    first = spec.first_manager.name
    return [
        *_leaves(_by_leave_order(spec),
                 "The swarm is re-initialised under a wrong clock: every node leaves first."),
        Step(first, f"systemctl stop {_chrony(spec)}",
             say="Time sync off, so nothing puts the clock back."),
        Step(first, f"date -s @$(( $(date +%s) + {AHEAD_SECONDS} ))",
             say="Three hours ahead: swarm backdates certificates by one hour, so less would"
                 " not show."),
        _init(spec, address, "The root CA is made now: valid from the wrong time minus an hour."),
        Step(first, f"date -s @{NOW}", say="The clock is corrected, as chrony would."),
        Step(first, f"systemctl start {_chrony(spec)}"),
        *_joins(spec, address, X509, "Docker's error: x509 certificate not yet valid"),
    ]


def fix_plan(spec: LabSpec, way: str, address: Address = lambda n: n.address) -> list[Step]:
    first = spec.first_manager.name
    others = [n for n in _by_leave_order(spec) if n.name != first]
    if way == "seed":
        return [
            *_leaves(_by_leave_order(spec), "The seed's fix: build the swarm again."),
            *_clocks_right(spec),
            _init(spec, address, "A new swarm, and a CA made under the right clock."),
            *_joins(spec, address, JOINED, "joined"),
        ]
    return [
        *_clocks_right(spec),
        Step(first, "docker swarm ca --rotate",
             say="No rebuild: a new root CA, valid from the right time; every node certificate"
                 " is reissued and the join tokens change with it."),
        *_leaves(others, "The nodes whose joins failed start clean."),
        *_joins(spec, address, JOINED, "joined with a fresh token"),
    ]


class ClockSkewCA(Failure):
    name = "clock-skew-ca"
    title = "A swarm CA made under a clock hours ahead"
    teaches = (
        "Certificates carry a validity window; swarm backdates by an hour, so a manager whose"
        " clock ran well over an hour ahead when the CA was made locks every node out until"
        " the CA is rotated under the right time."
    )
    explanation = Explanation(
        cause=Text(
            "The manager's clock was more than an hour ahead when `docker swarm init` made the"
            " root CA: the certificate is valid from that wrong time (minus the hour swarm"
            " allows). On every correct clock it is not yet valid, so joins fail with \"error"
            " while validating Root CA Certificate: x509: certificate has expired or is not yet"
            " valid\".",
            "执行 `docker swarm init` 生成根 CA 时，管理节点的时钟快了一个多小时：证书的生效时间是"
            "那个"
            "错误时间（减去 swarm 允许的 1 小时）。在时钟正确的节点看来证书尚未生效，于是加入时报"
            "\"error while validating Root CA Certificate: x509: certificate has expired or is not"
            " yet valid\"。",
        ),
        fix=Text(
            "Make the clocks right first (chrony running, `chronyc makestep`). Without a"
            " rebuild: `docker swarm ca --rotate` on a manager, then fetch the join tokens again"
            " (rotation changes them) and join. Docker 20.10 refuses that rotation while the"
            " old root is not yet valid (\"error loading cluster rootCA for update\"); then"
            " only the seed's way works: `docker swarm leave --force` everywhere and `docker"
            " swarm init` again.",
            "先校正时钟（启动 chrony，执行 `chronyc makestep`）。不重建的方法：在管理节点执行"
            " `docker swarm ca --rotate`，重新获取加入令牌（轮换后令牌会变）再加入。Docker 20.10"
            " 在旧根证书尚未生效时拒绝轮换（\"error loading cluster rootCA for update\"），"
            "此时只能用原方案：所有节点 `docker swarm leave --force`，再重新 `docker swarm init`。",
        ),
    )

    def refusal(self, lab: Lab) -> str | None:
        if lab.provider.owns_clock:
            return None
        return (f"the {lab.spec.provider} provider's nodes share this machine's clock, so"
                " setting a node's clock would set the host's (and a CA cannot be made under"
                f" another clock there); it runs on nodes that own their clocks: {CLOCK_PROVIDERS}")

    def do_break(self, lab: Lab, show: Show) -> None:
        self.note(lab, node=lab.spec.first_manager.name, ahead_seconds=AHEAD_SECONDS)
        run_plan(lab, show, break_plan(lab.spec, lab.provider.advertise_address))

    def do_fix(self, lab: Lab, show: Show, way: str, record: dict[str, Any]) -> None:
        first = lab.node(lab.spec.first_manager.name)
        if way == "safe" and not swarm.info(first).control:
            show.say("The break stopped before the swarm was made: there is no CA to rotate,"
                     " so the swarm is built instead.")
            way = "seed"
        try:
            run_plan(lab, show, fix_plan(lab.spec, way, lab.provider.advertise_address))
        except LabError as exc:
            if way != "safe" or ROTATION_REFUSED not in str(exc):
                raise
            show.say("Docker refuses to rotate a root CA that is not yet valid on the manager's"
                     " (now right) clock: \"error loading cluster rootCA for update\". This"
                     " Docker cannot fix it without a rebuild, so the swarm is built again, the"
                     " seed's way.")
            run_plan(lab, show, fix_plan(lab.spec, "seed", lab.provider.advertise_address))


def run_plan(lab: Lab, show: Show, steps: list[Step]) -> None:
    first = lab.node(lab.spec.first_manager.name)
    for step in steps:
        if step.say:
            show.say(step.say)
        command = shown = step.command.replace(NOW, str(int(time.time())))
        for role in ("worker", "manager"):
            marker = f"{{token:{role}}}"
            if marker in command:
                # Fetched at the step itself: a rotation or a re-init changes the tokens.
                command = command.replace(marker, token(first, role))
                shown = shown.replace(marker, f"<{role}-token>")
        node = lab.node(step.node)
        result = show.run(node, command, shown=shown, timeout=180)
        if step.expect:
            show.expect(result, step.expect, step.label)
        elif step.must and not result.ok:
            last = result.output.splitlines()[-1] if result.output else "no output"
            raise LabError(f"{node.name}: `{result.command}` failed: {last}")
