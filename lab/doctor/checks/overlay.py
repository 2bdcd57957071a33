"""Overlay health end to end: gossip on 7946 and the VXLAN data path on 4789/udp.

Neither can be proven by probing a port (UDP does not answer, and a blocked 7946 shows only
in dockerd's log). So the check does what a service would: a short-lived overlay network and
a global busybox service put one task on every Ready node, and each task pings the others'
overlay addresses. A reply crosses nodes over VXLAN (4789/udp) to an address each node only
knows through gossip (7946). Everything it makes is labelled and removed afterwards (the
network a few seconds later, once its tasks are gone), and leftovers of an interrupted run
are removed first.
"""

from __future__ import annotations

import secrets
import shlex

from ...context import Lab
from ...remote import Node, run_parallel
from ...waits import wait_until
from ..finding import ERROR, SKIPPED, Finding, ok
from ..survey import Survey, take
from ..text import Text

NAME = "overlay"
PREFIX = "swarmlab-doctor"
LABEL = "swarmlab.doctor"
PLACE_SECONDS = 60
# Gossip may need a while to tell a node about tasks elsewhere right after nodes (re)join;
# a healthy lab answers at once, so the window only costs time when something is wrong.
PING_WINDOW_SECONDS = 30
# What a cross-node overlay packet needs open between the nodes, named in every finding.
PORTS = "4789/udp (VXLAN data) and 7946/tcp+udp (gossip)"
PORTS_ZH = "4789/udp（VXLAN 数据）和 7946/tcp+udp（gossip）"
CLEAN = (
    f"docker service ls -q --filter label={LABEL} | xargs -r docker service rm >/dev/null;"
    f" for i in $(seq 30); do ids=$(docker network ls -q --filter label={LABEL});"
    " [ -z \"$ids\" ] && break; docker network rm $ids >/dev/null 2>&1; sleep 1; done"
)
CAUSE = Text(
    "4789/udp (VXLAN data) or 7946/tcp+udp (gossip) is blocked between these nodes, or the"
    " NIC mangles VXLAN checksums (vmxnet3: TCP hangs while ping works); right after nodes"
    " rejoin or a `--force-new-cluster`, gossip can take a minute to find the new cluster"
    " (run the doctor again)",
    "这两个节点之间的 4789/udp（VXLAN 数据）或 7946/tcp+udp（gossip）被拦截，或网卡破坏了 VXLAN"
    " 校验和（vmxnet3：ping 通但 TCP 卡住）；节点刚重新加入或执行 `--force-new-cluster` 之后，"
    "gossip 可能需要一分钟才能找到新集群（稍后再运行一次 doctor）",
)
FIX = Text(
    "open 7946/tcp, 7946/udp and 4789/udp on every node (`firewall-cmd --permanent"
    " --add-port=7946/tcp --add-port=7946/udp --add-port=4789/udp && firewall-cmd --reload`);"
    " on vmxnet3 `ethtool -K IFACE tx-checksum-ip-generic off`, persisted",
    "在每个节点放行 7946/tcp、7946/udp 和 4789/udp（`firewall-cmd --permanent"
    " --add-port=7946/tcp --add-port=7946/udp --add-port=4789/udp && firewall-cmd --reload`）；"
    "vmxnet3 网卡执行 `ethtool -K IFACE tx-checksum-ip-generic off` 并持久化",
)


def _skipped(en: str, zh: str) -> list[Finding]:
    return [Finding(NAME, "", SKIPPED, Text(f"not proven: {en}", f"未验证：{zh}"))]


def _placed(leader: Node, name: str, wanted: set[str], seconds: float) -> dict[str, str]:
    """Wait until every wanted node runs a task; returns node -> state for those that do not."""

    def lagging() -> dict[str, str]:
        listing = leader.run(
            f"docker service ps --no-trunc --filter desired-state=running"
            f" --format '{{{{.Node}}}}|{{{{.CurrentState}}}}|{{{{.Error}}}}' {shlex.quote(name)}",
            timeout=30, check=True).stdout
        states = {}
        for line in listing.splitlines():
            node, _, rest = line.partition("|")
            states[node] = rest.replace("|", " ").strip()
        return {n: states.get(n, "no task") for n in wanted
                if not states.get(n, "").startswith("Running")}

    # At the bound the nodes still lagging come back, and the caller's finding names them.
    return wait_until(lagging, timeout=seconds, interval=1, what=f"a task of {name} on each node",
                      done=lambda left: not left, error=None)


def _address(node: Node, name: str) -> tuple[str, str]:
    """The task's container on this node and its address on the probe network."""
    template = f"{{{{(index .NetworkSettings.Networks \"{name}\").IPAddress}}}}"
    service = shlex.quote(f"label=com.docker.swarm.service.name={name}")
    result = node.run(
        f"c=$(docker ps -q --filter {service} | head -n1);"
        f" [ -n \"$c\" ] && echo \"$c\" $(docker inspect -f {shlex.quote(template)} \"$c\")",
        timeout=30, check=True)
    container, _, address = result.stdout.strip().partition(" ")
    return container, address


def _pings(node: Node, container: str, targets: list[str], window: int) -> dict[str, bool]:
    """Ping each target until it answers or the window closes; prints the ones that did."""
    script = (
        f"left={shlex.quote(' '.join(targets))}; end=$(( $(date +%s) + {int(window)} ));"
        " while [ -n \"$left\" ] && [ $(date +%s) -lt $end ]; do still='';"
        f" for ip in $left; do if docker exec {shlex.quote(container)} ping -c 1 -W 1 \"$ip\""
        " >/dev/null 2>&1;"
        " then echo $ip; else still=\"$still $ip\"; fi; done; left=$still; done"
    )
    result = node.run(script, timeout=window + 30)
    answered = set(result.stdout.split())
    return {ip: ip in answered for ip in targets}


def prove(lab: Lab) -> list[Finding]:
    """The check on its own, for a fix that must show the lab works end to end again."""
    return check(take(lab))


def check(survey: Survey) -> list[Finding]:
    leader = survey.leader
    if leader is None:
        return _skipped("no manager answers, so no service can be placed",
                        "没有可响应的管理节点，无法部署服务")
    lab_names = {f.name for f in survey.reachable()}
    ready = {m.hostname for m in survey.members
             if m.status == "Ready" and m.availability == "Active" and m.hostname in lab_names}
    if len(survey.lab.spec.nodes) < 2:
        return [ok(NAME, Text("a one-node lab: no overlay traffic crosses nodes",
                              "单节点实验环境：没有跨节点的 overlay 流量"))]
    if len(ready) < 2:
        return _skipped("fewer than two Ready nodes, so there is nothing to cross",
                        "Ready 节点少于两个，没有可跨越的节点")
    image = survey.lab.spec.images.get("busybox")
    if not image:
        return [Finding(
            NAME, "", ERROR,
            Text("not proven: the lab file's `images` names no busybox image, which the overlay"
                 " probe runs",
                 "未验证：实验配置的 `images` 中没有 busybox 镜像，overlay 探测需要它"),
            fix=Text("add `busybox: swarmlab/busybox:latest` (or an image of yours with ping)"
                     " under `images:` in the lab file, then `invoke lab.up`",
                     "在实验配置的 `images:` 下加入 `busybox: swarmlab/busybox:latest`（或自备的带"
                     " ping 的镜像），再执行 `invoke lab.up`"))]
    name = f"{PREFIX}-{secrets.token_hex(3)}"
    quoted = shlex.quote(name)
    leader.run(CLEAN, timeout=60)
    try:
        leader.run(f"docker network create -d overlay --label {LABEL}=1 {quoted}",
                   timeout=60, check=True)
        # sleep as PID 1 ignores SIGTERM: KILL makes the removal quick.
        leader.run(f"docker service create -d --name {quoted} --label {LABEL}=1 --mode global"
                   f" --network {quoted} --stop-signal KILL --no-resolve-image"
                   f" {shlex.quote(image)} sleep 600",
                   timeout=60, check=True)
        return _prove(survey, leader, name, ready)
    finally:
        # The network can go only once the tasks are gone (a few seconds): that wait runs
        # on the node, detached, rather than in the doctor's time.
        retry = shlex.quote(f"for i in $(seq 60); do docker network rm {quoted} && exit 0;"
                            " sleep 1; done")
        leader.run(f"docker service rm {quoted} >/dev/null 2>&1; nohup sh -c {retry}"
                   " >/dev/null 2>&1 </dev/null &", timeout=60)


def _prove(survey: Survey, leader: Node, name: str, ready: set[str]) -> list[Finding]:
    # Emulated CPUs (QEMU without KVM) start a task in a minute or two, not seconds.
    scale = survey.lab.provider.time_scale
    place, window = int(PLACE_SECONDS * scale), int(PING_WINDOW_SECONDS * scale)
    findings = [
        Finding(NAME, node, ERROR,
                Text(f"the probe task did not start on {node} within {place} s: {state}",
                     f"探测任务在 {place} 秒内未能在 {node} 上启动：{state}"),
                Text("the node cannot run tasks: its image is missing or dockerd is unhealthy",
                     "该节点无法运行任务：镜像缺失或 dockerd 不正常"),
                Text("`invoke lab.up` loads the images; `journalctl -u docker` on the node",
                     "`invoke lab.up` 会加载镜像；在该节点查看 `journalctl -u docker`"))
        for node, state in sorted(_placed(leader, name, ready, place).items())
    ]
    placed = sorted(ready - {f.node for f in findings})
    nodes = [survey.lab.node(n) for n in placed]
    found = run_parallel(nodes, lambda node: _address(node, name), deadline=60)
    tasks = {n: o.value for n, o in found.items() if o.ok and o.value[1]}
    # A task that runs but whose address cannot be read is a node the probe could not judge:
    # that is something wrong, never a reason to pass.
    findings += [
        Finding(NAME, n, ERROR,
                Text(f"the probe task's overlay address on {n} could not be read:"
                     f" {o.error or 'no address on network ' + name}",
                     f"无法读取 {n} 上探测任务的 overlay 地址：{o.error or '无地址'}"),
                Text("dockerd on the node did not attach the task to the overlay network"
                     " (gossip on 7946 not working) or does not answer",
                     "节点上的 dockerd 未把任务接入 overlay 网络（7946 上的 gossip 不通）或无响应"),
                FIX)
        for n, o in sorted(found.items()) if n not in tasks]
    if len(tasks) < 2:
        return findings + _skipped("fewer than two probe tasks got an overlay address",
                                   "获得 overlay 地址的探测任务少于两个")
    where = {address: n for n, (_, address) in tasks.items()}

    def ping_others(node: Node) -> dict[str, bool]:
        container, own = tasks[node.name]
        return _pings(node, container, [a for a in where if a != own], window)

    results = run_parallel([survey.lab.node(n) for n in tasks], ping_others,
                           deadline=window + 150)
    answered = tried = 0
    for source, outcome in results.items():
        for address, replied in (outcome.value or {}).items():
            tried += 1
            answered += int(replied)
            if not replied:
                findings.append(Finding(
                    NAME, source, ERROR,
                    Text(f"the task on {source} got no answer from the task on {where[address]}"
                         f" ({address}) over overlay network {name}; that needs {PORTS}"
                         " open between them",
                         f"{source} 上的任务通过 overlay 网络 {name} 得不到 {where[address]}"
                         f"（{address}）上任务的回应；这需要两者之间放行 {PORTS_ZH}"),
                    CAUSE, FIX))
        if not outcome.ok:
            findings.append(Finding(NAME, source, ERROR,
                                    Text(f"pings from {source} could not run: {outcome.error}",
                                         f"无法从 {source} 执行 ping：{outcome.error}")))
    if not findings:
        on = ", ".join(sorted(tasks))
        findings.append(ok(NAME, Text(
            f"proven end to end: a global busybox service on a fresh overlay network put a task"
            f" on {on}; each pinged the others' overlay addresses and {answered}/{tried}"
            " answered, which crosses nodes over VXLAN (4789/udp) to addresses learnt by gossip"
            " (7946); the service and network are removed",
            f"端到端验证：在新建的 overlay 网络上以 global 模式部署 busybox 服务，任务分布于 {on}；"
            f"各任务互相 ping 对方的 overlay 地址，{answered}/{tried} 有回应，这需要经 VXLAN"
            "（4789/udp）跨节点通信，且地址由 gossip（7946）获知；测试用的服务和网络随即删除")))
    return findings
