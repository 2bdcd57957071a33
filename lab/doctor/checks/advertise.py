"""The address each node advertises to the swarm: the lab's, never a NAT one.

VirtualBox gives every VM eth0 = 10.0.2.15 behind NAT: a node advertising it is unreachable
by the others. A node with several addresses and no --advertise-addr may pick any of them.
"""

from __future__ import annotations

from ..finding import ERROR, WARNING, Finding, ok
from ..survey import Survey
from ..text import Text

NAME = "advertise"
NAT_ADDRESSES = ("10.0.2.15",)


def check(survey: Survey) -> list[Finding]:
    findings = []
    judged = 0
    for facts in survey.reachable():
        if facts.addresses and facts.address not in facts.addresses:
            findings.append(Finding(
                NAME, facts.name, ERROR,
                Text(f"the lab address {facts.address} is not on {facts.name} (it has"
                     f" {', '.join(facts.addresses)})",
                     f"{facts.name} 上没有实验地址 {facts.address}（现有 "
                     f"{', '.join(facts.addresses)}）"),
                Text("the lab network's interface is down or was configured differently",
                     "实验网络的网卡未启用或配置不同"),
                Text("`invoke lab.up` to bring the machine's network back as the lab file says",
                     "执行 `invoke lab.up`，按实验配置恢复网络")))
            continue
        if facts.state != "active" or not facts.node_addr:
            continue
        judged += 1
        if facts.node_addr == facts.address:
            continue
        nat = facts.node_addr in NAT_ADDRESSES
        findings.append(Finding(
            NAME, facts.name, ERROR if nat else WARNING,
            Text(f"{facts.name} advertises {facts.node_addr}, not its lab address {facts.address}"
                 + (" (a NAT address every VirtualBox VM has)" if nat else ""),
                 f"{facts.name} 通告的地址是 {facts.node_addr}，而不是实验地址 {facts.address}"
                 + ("（每台 VirtualBox 虚拟机都有的 NAT 地址）" if nat else "")),
            Text("it joined or initialised without --advertise-addr, and picked the wrong"
                 " interface",
                 "加入或初始化时没有指定 --advertise-addr，选错了网卡"),
            Text(f"`docker swarm leave -f` on it and join again with --advertise-addr"
                 f" {facts.address} (`invoke swarm.join` does)",
                 f"在该节点 `docker swarm leave -f`，再以 --advertise-addr {facts.address}"
                 "重新加入（`invoke swarm.join` 即如此）")))
    if not findings and judged:
        findings.append(ok(NAME, Text(
            f"{judged} nodes advertise their lab addresses", f"{judged} 个节点均通告实验地址")))
    return findings
