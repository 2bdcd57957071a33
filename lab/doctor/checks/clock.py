"""Clock skew against the controller and between nodes, measured over SSH with the round
trip taken out. Swarm backdates its certificates by an hour, so skew under an hour never
stops a join; over it, a CA or node certificate made on one clock is not yet valid (or
already expired) on another.
"""

from __future__ import annotations

from ...prepare.timesync import SWARM_TOLERANCE_SECONDS
from ..finding import ERROR, WARNING, Finding, ok
from ..survey import Survey
from ..text import Text

NAME = "clock"
# Beyond this, something is not keeping time (chrony stopped, a snapshot revert) even if
# swarm does not mind yet.
DRIFT_WARNING_SECONDS = 30

CAUSE = Text(
    "chrony (or chronyd) is stopped on the node, or a snapshot revert rewound its clock",
    "节点上的 chrony（chronyd）已停止，或恢复快照把时钟倒回了过去",
)
FIX = Text(
    "`systemctl enable --now chrony && chronyc makestep` on the node (`invoke lab.reset` does it"
    " after a revert); a CA made under the wrong clock then needs `docker swarm ca --rotate`"
    " on a manager and fresh join tokens",
    "在节点执行 `systemctl enable --now chrony && chronyc makestep`（`invoke lab.reset` 恢复快照后"
    "会自动执行）；若 CA 是在错误时钟下生成的，再在管理节点执行 `docker swarm ca --rotate` 并重新获"
    "取"
    "加入令牌",
)


def check(survey: Survey) -> list[Finding]:
    measured = {f.name: f.skew for f in survey.reachable() if f.skew is not None}
    if not measured:
        return []
    findings = []
    for name, skew in measured.items():
        if abs(skew) > SWARM_TOLERANCE_SECONDS:
            findings.append(Finding(
                NAME, name, ERROR,
                Text(f"{name}'s clock is {skew:+.0f} s off the controller's: more than the hour"
                     " swarm tolerates",
                     f"{name} 的时钟与控制机相差 {skew:+.0f} 秒：超过 swarm 可容忍的 1 小时"),
                CAUSE, FIX))
        elif abs(skew) > DRIFT_WARNING_SECONDS:
            findings.append(Finding(
                NAME, name, WARNING,
                Text(f"{name}'s clock is {skew:+.0f} s off the controller's (swarm tolerates an"
                     " hour; something is not keeping time)",
                     f"{name} 的时钟与控制机相差 {skew:+.0f} 秒（swarm 可容忍 1 小时，但时间同步"
                     "没有在工作）"),
                CAUSE, FIX))
    spread = max(measured.values()) - min(measured.values())
    if spread > SWARM_TOLERANCE_SECONDS:
        ahead = max(measured, key=lambda n: measured[n])
        behind = min(measured, key=lambda n: measured[n])
        findings.append(Finding(
            NAME, "", ERROR,
            Text(f"{ahead} is {spread:.0f} s ahead of {behind}: certificates one makes are not"
                 " yet valid on the other (x509: certificate has expired or is not yet valid)",
                 f"{ahead} 比 {behind} 快 {spread:.0f} 秒：一方签发的证书在另一方看来尚未生效"
                 "（x509: certificate has expired or is not yet valid）"),
            CAUSE, FIX))
    if not findings:
        worst = max(abs(s) for s in measured.values())
        shared = "" if survey.lab.provider.owns_clock else " (the nodes share the host clock)"
        shared_zh = "" if survey.lab.provider.owns_clock else "（节点与宿主机共用时钟）"
        findings.append(ok(NAME, Text(
            f"clocks within {worst:.2f} s of the controller and {spread:.2f} s of each other;"
            f" swarm tolerates an hour{shared}",
            f"各节点时钟与控制机相差不超过 {worst:.2f} 秒，彼此相差 {spread:.2f} 秒；"
            f"swarm 可容忍 1 小时{shared_zh}")))
    return findings
