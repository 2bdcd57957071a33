"""clock-skew-ca: a swarm CA made under a clock well over an hour ahead.

The manager's clock is set three hours ahead with time sync stopped (well past the hour by
which swarm backdates node certificates; its root CA it backdates by five minutes only, as
measured on Docker 20.10), the swarm initialised (its root CA valid from "now" on that
clock), the clock corrected, and every join fails
with "x509: certificate has expired or is not yet valid".

It needs nodes that own their clocks. Containers share the host's clock (and nodes are
given no SYS_TIME): moving a node's clock would move the controller's, and libfaketime does
not reach dockerd. So on such providers it refuses, and never fakes the error.

The procedure is a plain list of steps per node, so that it can be read and tested without
machines; tests/test_vm_libvirt.py runs it on real VMs under QEMU.

The fix without a rebuild is `docker swarm ca --rotate` under the right clocks, and Docker
refuses it: it loads the old root before it rotates, and a root that is not yet valid does
not load ("error loading cluster rootCA for update"). So the rotation crosses a bridge: a
root made with openssl under the right clock (valid from now on, so also at the wrong time),
the manager's clock stepped for a moment into the old root's window, where Docker rotates to
that root; the clock put right; and one more rotation, because the manager's own certificate
was reissued under the wrong clock (swarm backdates it by only an hour). The nodes then join
with fresh tokens, and no node ever left the manager's swarm.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import swarm
from ..context import Lab
from ..doctor.certs import parse_cert
from ..doctor.text import Text
from ..errors import LabError
from ..remote import Node
from ..spec import LabSpec, NodeSpec
from .base import Explanation, Failure
from .show import Show
from .swarmops import JOINED, joined, listen_flags, token

X509 = "certificate has expired or is not yet valid"
ROTATION_REFUSED = "error loading cluster rootCA for update"
AHEAD_SECONDS = 3 * 3600
CLOCK_PROVIDERS = "vagrant (libvirt or VirtualBox VMs) or vmware"
NOW = "{now}"  # the controller's clock, filled in when the step runs
# A moment inside the old root's validity (or now, where the root is valid already: a rerun
# of the fix), filled in from the root the manager holds when the step runs.
ROOT_WINDOW = "{root_window}"
BRIDGE_DIR = "/root/swarmlab-bridge-ca"  # the bridge root's key: root only, removed after
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
        manager = shlex.quote(f"{address(first)}:2377")
        steps.append(Step(
            node.name,
            f"docker swarm join --token {{token:{node.role}}} {listen_flags(address(node))}"
            f" {manager}",
            expect=expect, label=label))
    return steps


def _init(spec: LabSpec, address: Address, say: str) -> Step:
    return Step(spec.first_manager.name,
                f"docker swarm init {listen_flags(address(spec.first_manager))}", say=say)


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
             say="Three hours ahead: well past the hour by which swarm backdates node"
                 " certificates."),
        _init(spec, address,
              "The root CA is made now: valid from the wrong time, less five minutes."),
        Step(first, f"date -s @{NOW}", say="The clock is corrected, as chrony would."),
        Step(first, f"systemctl start {_chrony(spec)}"),
        *_joins(spec, address, X509, "Docker's error: x509 certificate not yet valid"),
    ]


def rotation_bridge(spec: LabSpec) -> list[Step]:
    """Rotate from a root that is not yet valid: Docker loads the old root before it rotates,
    so the manager's clock visits the old root's window for the one rotation that needs it."""
    first = spec.first_manager.name
    cert, key = f"{BRIDGE_DIR}/ca.crt", f"{BRIDGE_DIR}/ca.key"
    return [
        Step(first, f"rm -rf {BRIDGE_DIR} && install -d -m 700 {BRIDGE_DIR} && openssl req"
                    " -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650"
                    f" -subj /CN=swarmlab-bridge-root -keyout {key} -out {cert} 2>&1",
             say="So the rotation crosses a bridge. First a root made with openssl under the"
                 " right clock: valid from now on, and so also at the wrong time. Its key"
                 " stays on the manager, readable by root only."),
        Step(first, f"systemctl stop {_chrony(spec)}",
             say="For one command the manager's clock goes back into the old root's window,"
                 " with time sync off."),
        Step(first, f"date -s @{ROOT_WINDOW}"),
        Step(first, f"docker swarm ca --rotate --quiet --ca-cert {cert} --ca-key {key}",
             say="There the old root loads, and the swarm rotates to the bridge root."),
        Step(first, f"date -s @{NOW}", say="The clock is put right again."),
        Step(first, f"systemctl start {_chrony(spec)}"),
        Step(first, "docker swarm ca --rotate --quiet",
             say="One more rotation, from a root that is valid now: the manager's own"
                 " certificate was reissued under the wrong clock (swarm backdates it by only"
                 " an hour), and is reissued from now, under a root swarm makes itself."),
        Step(first, f"rm -rf {BRIDGE_DIR}", say="The bridge root's key is not needed any more."),
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
        Step(first, "docker swarm ca --rotate", must=False,
             say="No rebuild: a new root CA under the right clock, which reissues every node"
                 " certificate and changes the join tokens. Docker refuses it while the old"
                 " root is not yet valid on this clock (\"error loading cluster rootCA for"
                 " update\"):"),
        *rotation_bridge(spec),
        *_leaves(others, "The nodes whose joins failed start clean."),
        *_joins(spec, address, JOINED, "joined with a fresh token"),
    ]


class ClockSkewCA(Failure):
    name = "clock-skew-ca"
    title = "A swarm CA made under a clock hours ahead"
    teaches = (
        "Certificates carry a validity window: a manager whose clock ran hours ahead when the"
        " CA was made locks every node out until the CA is rotated under the right time, and"
        " Docker only rotates from a root that is valid."
    )
    explanation = Explanation(
        cause=Text(
            "The manager's clock was hours ahead when `docker swarm init` made the root CA:"
            " the certificate is valid from that wrong time (swarm backdates its root by five"
            " minutes only). On every correct clock it is not yet valid, so joins fail with"
            " \"error while validating Root CA Certificate: x509: certificate has expired or is"
            " not yet valid\".",
            "执行 `docker swarm init` 生成根 CA 时，管理节点的时钟快了几个小时：证书的生效时间"
            "是那个错误时间（swarm 只把根证书提前 5 分钟生效）。在时钟正确的节点看来证书尚未生效，"
            "于是加入时报 \"error while validating Root CA Certificate: x509: certificate has"
            " expired or is not yet valid\"。",
        ),
        fix=Text(
            "Make the clocks right first (chrony running, `chronyc makestep`). Without a"
            " rebuild: rotate the root CA, then fetch the join tokens again (rotation changes"
            " them) and join. A plain `docker swarm ca --rotate` is refused while the old root"
            " is not yet valid (\"error loading cluster rootCA for update\"), so: make a root"
            " with openssl under the right clock, step the manager's clock (time sync off) into"
            " the old root's window, `docker swarm ca --rotate --ca-cert ca.crt --ca-key ca.key`,"
            " put the clock right, and `docker swarm ca --rotate` once more so the manager's own"
            " certificate is reissued under the right clock. The seed's way also works: `docker"
            " swarm leave --force` everywhere and `docker swarm init` again.",
            "先校正时钟（启动 chrony，执行 `chronyc makestep`）。不重建的方法：轮换根 CA，重新获取"
            "加入令牌（轮换后令牌会变）再加入。旧根证书尚未生效时，直接执行 `docker swarm ca"
            " --rotate` 会被拒绝（\"error loading cluster rootCA for update\"），因此：在正确时间下"
            "用 openssl 生成一个根证书，关闭时间同步，把管理节点的时钟暂时调到旧根证书的有效期"
            "内，执行"
            " `docker swarm ca --rotate --ca-cert ca.crt --ca-key ca.key`，再把时钟调回正确时间，"
            "然后再执行一次 `docker swarm ca --rotate`，让管理节点自己的证书在正确时间下重新签发。"
            "原方案同样可行：所有节点 `docker swarm leave --force`，再重新 `docker swarm init`。",
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
            if way != "safe":
                raise
            raise LabError(f"{exc}; the swarm can always be built again:"
                           f" `invoke failure.fix {self.name} --way seed`") from None


def root_window(manager: Node) -> int:
    """A minute inside the validity of the root CA the manager holds, or now if it is valid."""
    now = int(time.time())
    shown = manager.run("docker swarm ca", timeout=60)
    dates = parse_cert(shown.output)
    if not shown.ok or dates.error:
        raise LabError(f"{manager.name}: cannot read the swarm's root CA"
                       f" ({dates.error or shown.output.strip()[-200:]})")
    return max(now, int(dates.not_before) + 60)


def run_plan(lab: Lab, show: Show, steps: list[Step]) -> None:
    first = lab.node(lab.spec.first_manager.name)
    for step in steps:
        if step.say:
            show.say(step.say)
        command = shown = step.command.replace(NOW, str(int(time.time())))
        if ROOT_WINDOW in command:
            command = shown = command.replace(ROOT_WINDOW, str(root_window(first)))
        for role in ("worker", "manager"):
            marker = f"{{token:{role}}}"
            if marker in command:
                # Fetched at the step itself: a rotation or a re-init changes the tokens.
                command = command.replace(marker, shlex.quote(token(first, role)))
                shown = shown.replace(marker, f"<{role}-token>")
        node = lab.node(step.node)
        result = show.run(node, command, shown=shown, timeout=300)
        if step.expect == JOINED:
            joined(lab, show, node, result, step.label)
        elif step.expect:
            show.expect(result, step.expect, step.label)
        elif step.must and not result.ok:
            last = result.output.splitlines()[-1] if result.output else "no output"
            raise LabError(f"{node.name}: `{result.command}` failed: {last}")
