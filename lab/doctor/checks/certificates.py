"""The swarm CA and each node's certificate, judged against that node's own clock.

A certificate is valid from NotBefore to NotAfter; swarm backdates NotBefore by an hour.
A CA made on a manager whose clock ran well over an hour ahead is "not yet valid" on every
correct clock: joins then fail with "x509: certificate has expired or is not yet valid".
"""

from __future__ import annotations

import time

from ..finding import ERROR, Finding, ok
from ..survey import CERT_DIR, Survey
from ..text import Text

NAME = "certificates"
LABELS = {"swarm-node.crt": "node certificate", "swarm-root-ca.crt": "swarm root CA"}


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def check(survey: Survey) -> list[Finding]:
    findings = []
    judged = 0
    for facts in survey.reachable():
        if facts.state != "active":
            continue
        for file, dates in facts.certs.items():
            label = LABELS[file]
            path = f"{CERT_DIR}/{file}"
            if dates.error:
                findings.append(Finding(NAME, facts.name, ERROR,
                                        Text(f"{path}: {dates.error}", f"{path}：{dates.error}")))
                continue
            judged += 1
            now = facts.clock
            if dates.not_before <= now <= dates.not_after:
                continue
            early = now < dates.not_before
            state = "not yet valid" if early else "expired"
            state_zh = "尚未生效" if early else "已过期"
            bound = dates.not_before if early else dates.not_after
            findings.append(Finding(
                NAME, facts.name, ERROR,
                Text(f"the {label} on {facts.name} is {state} by its clock: valid"
                     f" {'from' if early else 'until'} {_when(bound)}, the node says"
                     f" {_when(now)} ({path})",
                     f"按 {facts.name} 的时钟，{label} {state_zh}：有效期"
                     f"{'始于' if early else '止于'} {_when(bound)}，节点时间为 {_when(now)}（"
                     f"{path}）"),
                Text("it was made under a clock more than an hour off this node's (a manager's"
                     " clock was wrong at `docker swarm init` or at renewal)",
                     "证书签发时的时钟与本节点相差超过 1 小时（执行 `docker swarm init`"
                     "或续期时管理节点的时钟有误）"),
                Text("make the clocks right (chrony, `chronyc makestep`), then `docker swarm ca"
                     " --rotate` on a manager and join with fresh tokens (the seed's way:"
                     " re-initialise the swarm)",
                     "先校正时钟（chrony、`chronyc makestep`），再在管理节点执行"
                     " `docker swarm ca --rotate` 并用新令牌加入（原方案：重新初始化 swarm）")))
    if not findings and judged:
        findings.append(ok(NAME, Text(
            f"{judged} swarm certificates valid by their own node's clock",
            f"{judged} 个 swarm 证书在各自节点的时钟下均有效")))
    return findings
