"""Reachability of 2377/tcp (cluster management) from every node to every manager.

Proven from each node itself with a plain TCP connect (bash's /dev/tcp, bounded by
`timeout`), so it sees what a join from that node would see: 'No route to host' from
firewalld's reject, 'Connection refused' from a TCP reset or nothing listening, a timeout
where packets are dropped.
"""

from __future__ import annotations

import shlex

from ...remote import Node, run_parallel
from ..finding import ERROR, Finding, ok
from ..survey import NodeFacts, Survey
from ..text import Text

NAME = "ports"
PORT = 2377
CONNECT_SECONDS = 3


def probe_command(addresses: list[str]) -> str:
    """One line per address: ADDRESS|exit code|what bash said.

    Each address reaches the inner bash as its $0, never inside the script it runs, so no
    value can become a command there.
    """
    lines = [
        f"out=$(timeout {CONNECT_SECONDS} bash -c '</dev/tcp/\"$0\"/{PORT}' {shlex.quote(a)}"
        " 2>&1);"
        f" echo {shlex.quote(a)}\"|$?|$(echo $out | tr '\\n' ' ')\""
        for a in addresses
    ]
    return "; ".join(lines)


def _why(code: str, said: str) -> tuple[str, Text]:
    lowered = said.lower()
    if code == "124":
        return "no answer within 3 s", Text(
            "packets are dropped silently (a firewall DROP rule): a join from here waits 20 s,"
            " says 'Timeout was reached before node joined' and stays pending",
            "数据包被无声丢弃（防火墙 DROP 规则）：从这里加入会等待 20 秒，提示"
            " 'Timeout was reached before node joined' 并一直处于 pending")
    if "no route to host" in lowered:
        return "No route to host", Text(
            "the manager rejects it with icmp-host-prohibited, which is what firewalld does with"
            " a port it was not told to open",
            "管理节点以 icmp-host-prohibited 拒绝连接，这正是 firewalld 对未放行端口的处理方式")
    if "refused" in lowered:
        return "Connection refused", Text(
            "nothing listens on 2377 there, or a firewall answers with a TCP reset",
            "该节点的 2377 端口没有监听，或防火墙以 TCP reset 拒绝")
    return said or f"exit {code}", Text("the connection failed", "连接失败")


def check(survey: Survey) -> list[Finding]:
    # Only managers that are managers now listen on 2377; a missing one is membership's news.
    targets = [f for f in survey.nodes.values()
               if f.reachable and f.role == "manager" and f.is_manager]
    if not targets:
        return []
    sources = [survey.lab.node(f.name) for f in survey.reachable()]

    def connect(node: Node) -> list[tuple[NodeFacts, str, str]]:
        mine = [t for t in targets if t.name != node.name]
        if not mine:
            return []
        result = node.run(probe_command([t.address for t in mine]), timeout=30,
                          shown=f"connect to {PORT}/tcp on every manager")
        seen = {}
        for line in result.stdout.splitlines():
            address, _, rest = line.partition("|")
            code, _, said = rest.partition("|")
            seen[address] = (code, said.strip())
        return [(t, *seen.get(t.address, ("?", "no result"))) for t in mine]

    outcomes = run_parallel(sources, connect, parallel=survey.lab.spec.ssh.parallel, deadline=90)
    findings = []
    tried = 0
    for name, outcome in outcomes.items():
        if not outcome.ok:
            findings.append(Finding(NAME, name, ERROR,
                                    Text(f"could not test from {name}: {outcome.error}",
                                         f"无法从 {name} 测试：{outcome.error}")))
            continue
        for target, code, said in outcome.value:
            tried += 1
            if code == "0":
                continue
            reason, cause = _why(code, said)
            findings.append(Finding(
                NAME, name, ERROR,
                Text(f"{name} cannot connect to {target.name} ({target.address}):{PORT}/tcp:"
                     f" {reason}",
                     f"{name} 无法连接 {target.name}（{target.address}）:{PORT}/tcp：{reason}"),
                cause,
                Text(f"open {PORT}/tcp on {target.name}: `firewall-cmd --permanent"
                     f" --add-port={PORT}/tcp && firewall-cmd --reload`, or remove the iptables"
                     " rule that turns it away (see the firewall finding)",
                     f"在 {target.name} 上放行 {PORT}/tcp：`firewall-cmd --permanent"
                     f" --add-port={PORT}/tcp && firewall-cmd --reload`，或删除拒绝它的 iptables"
                     "规则（见 firewall 检查）")))
    if not findings and tried:
        findings.append(ok(NAME, Text(
            f"every node opened a TCP connection to {PORT} on every manager ({tried} tried)",
            f"每个节点都能与每个管理节点的 {PORT} 端口建立 TCP 连接（共测试 {tried} 次）")))
    return findings
