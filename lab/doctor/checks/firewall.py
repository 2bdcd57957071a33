"""firewalld and SELinux state, and iptables rules (INPUT and the chains it jumps to) that
turn away swarm ports.

Rules are read, not trusted to be complete (firewalld on nftables does not show in
`iptables -S`): the ports and overlay checks prove reachability end to end. What this check
adds is the culprit: which service or rule closes which port.
"""

from __future__ import annotations

from ...prepare.firewall import SWARM_PORTS
from ..finding import ERROR, WARNING, Finding, ok
from ..survey import NodeFacts, Survey
from ..text import Text

NAME = "firewall"
# firewalld ships a service definition with exactly the swarm's ports.
FIREWALLD_SWARM_SERVICE = "docker-swarm"


def _value(words: list[str], flag: str) -> str:
    return words[words.index(flag) + 1] if flag in words[:-1] else ""


def _port_matches(port: int, spec: str) -> bool:
    for part in spec.split(","):
        low, _, high = part.partition(":")
        if low.isdigit() and int(low) <= port <= int(high or low):
            return True
    return False


VERDICTS = ("ACCEPT", "REJECT", "DROP")


def _matches(words: list[str], proto: str, port: int) -> bool:
    """Whether a rule's match part covers a new connection to port/proto."""
    if _value(words, "-i") == "lo":
        return False
    rule_proto = _value(words, "-p")
    if rule_proto and rule_proto != proto:
        return False
    ports = _value(words, "--dport") or _value(words, "--dports")
    if ports and not _port_matches(port, ports):
        return False
    states = _value(words, "--ctstate") or _value(words, "--state")
    # e.g. RELATED,ESTABLISHED: says nothing about a new connection
    return not states or "NEW" in states.split(",")


def _walk(rules: list[str], chain: str, chains: set[str], proto: str, port: int,
          depth: int = 0) -> tuple[str, str] | None:
    """(verdict, rule) of the first rule of `chain` that decides, or None: it falls through.

    A jump to a chain of the user's is followed (a DROP of 4789/udp in such a chain is as
    real as one in INPUT); RETURN, or the end of that chain, goes on after the jump.
    """
    if depth > 10:  # iptables itself refuses loops; this only bounds a malformed listing
        return None
    for line in rules:
        words = line.split()
        if words[:2] != ["-A", chain] or "!" in words or not _matches(words, proto, port):
            continue
        target = _value(words, "-j") or _value(words, "-g")
        if target in VERDICTS:
            return target, line
        if target == "RETURN":
            return None
        if target in chains:
            decided = _walk(rules, target, chains, proto, port, depth + 1)
            if decided is not None:
                return decided
    return None


def deciding_rule(rules: list[str], proto: str, port: int) -> str | None:
    """The filter rule (or INPUT policy) that turns away a new connection to port/proto, or
    None.

    First match wins, as in iptables, starting at INPUT and following jumps into the user's
    own chains. Rules this reading cannot judge (negations, loopback-only) are passed over.
    """
    policy = "ACCEPT"
    chains = set()
    for line in rules:
        words = line.split()
        if words[:2] == ["-P", "INPUT"] and len(words) > 2:
            policy = words[2]
        elif words[:1] == ["-N"] and len(words) > 1:
            chains.add(words[1])
    decided = _walk(rules, "INPUT", chains, proto, port)
    if decided is not None:
        return None if decided[0] == "ACCEPT" else decided[1]
    return None if policy == "ACCEPT" else f"-P INPUT {policy}"


def _firewalld(facts: NodeFacts) -> list[Finding]:
    if facts.firewalld.get("state") != "running":
        return []
    services = facts.firewalld.get("services", "").split()
    if FIREWALLD_SWARM_SERVICE in services:
        return []
    opened = set(facts.firewalld.get("ports", "").split())
    missing = [port for port in SWARM_PORTS if port not in opened]
    if not missing:
        return []
    ports = ", ".join(missing)
    adds = " ".join(f"--add-port={port}" for port in missing)
    return [Finding(
        NAME, facts.name, ERROR,
        Text(f"firewalld runs on {facts.name} and does not open {ports}",
             f"{facts.name} 上运行着 firewalld，且未放行 {ports}"),
        Text("firewalld rejects everything not allowed ('no route to host' for 2377/tcp);"
             " 7946 (gossip) and 4789/udp (overlay data) fail silently",
             "firewalld 会拒绝所有未放行的连接（2377/tcp 报 'no route to host'）；7946（gossip）"
             "和 4789/udp（overlay 数据）则无声地失败"),
        Text(f"`firewall-cmd --permanent {adds} && firewall-cmd --reload` (the seed's way,"
             " `systemctl disable --now firewalld`, also works but leaves the node open)",
             f"`firewall-cmd --permanent {adds} && firewall-cmd --reload`（原方案"
             "`systemctl disable --now firewalld` 也可行，但节点将完全不设防）"))]


def _selinux(survey: Survey, facts: NodeFacts) -> list[Finding]:
    if facts.selinux != "Enforcing" or survey.lab.spec.selinux != "permissive":
        return []
    return [Finding(
        NAME, facts.name, WARNING,
        Text(f"SELinux is Enforcing on {facts.name}; the lab file wants it permissive",
             f"{facts.name} 的 SELinux 为 Enforcing；实验配置要求 permissive"),
        Text("someone set it back (setenforce 1), or /etc/selinux/config made it so at boot",
             "有人执行了 setenforce 1，或 /etc/selinux/config 在开机时启用了它"),
        Text("`setenforce 0` and SELINUX=permissive in /etc/selinux/config (`invoke lab.up`"
             " does both)",
             "执行 `setenforce 0` 并在 /etc/selinux/config 中设置 SELINUX=permissive"
             "（`invoke lab.up` 会完成这两步）"))]


def _iptables(facts: NodeFacts) -> list[Finding]:
    findings = []
    for item in SWARM_PORTS:
        number, _, proto = item.partition("/")
        rule = deciding_rule(facts.iptables, proto, int(number))
        if rule is None:
            continue
        removal = rule.replace("-A ", "-D ", 1) if rule.startswith("-A ") else "-P INPUT ACCEPT"
        jumped = rule.startswith("-A ") and rule.split()[1] != "INPUT"
        findings.append(Finding(
            NAME, facts.name, ERROR,
            Text(f"iptables on {facts.name} turns away {item}: `{rule}`"
                 + (" (a chain INPUT jumps to)" if jumped else ""),
                 f"{facts.name} 的 iptables 拒绝了 {item}：`{rule}`"
                 + ("（INPUT 跳转到的链）" if jumped else "")),
            Text("a firewall rule on the node (a REJECT with icmp-host-prohibited is what"
                 " firewalld does, and gives 'connect: no route to host')",
                 "节点上的防火墙规则（带 icmp-host-prohibited 的 REJECT 正是 firewalld 的做法，"
                 "会得到 'connect: no route to host'）"),
            Text(f"open the port ahead of it: `iptables -I INPUT -p {proto} --dport {number}"
                 f" -j ACCEPT`, or remove the rule: `iptables {removal}`",
                 f"在该规则之前放行端口：`iptables -I INPUT -p {proto} --dport {number}"
                 f" -j ACCEPT`，或删除该规则：`iptables {removal}`")))
    return findings


def check(survey: Survey) -> list[Finding]:
    findings = []
    for facts in survey.reachable():
        findings += _firewalld(facts) + _selinux(survey, facts) + _iptables(facts)
    if not findings:
        states = sorted({f"firewalld {f.firewalld.get('state', '?')}, SELinux {f.selinux}"
                         for f in survey.reachable()})
        findings.append(ok(NAME, Text(
            "no firewall closes a swarm port (" + "; ".join(states) + ")",
            "没有防火墙关闭 swarm 端口（" + "; ".join(states) + "）")))
    return findings
