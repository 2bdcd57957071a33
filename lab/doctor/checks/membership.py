"""Nodes pending, down, gone or in another swarm, and a swarm without a leader.

Each node says what it is (`docker info`: LocalNodeState, NodeID, cluster); a manager that
answers says what the swarm thinks (`docker node ls`). Both views are needed: a node that
left shows `inactive` itself and `Down` (or still `Ready` for a few heartbeats) to the
managers.
"""

from __future__ import annotations

from ..finding import ERROR, WARNING, Finding, ok
from ..survey import NodeFacts, Survey
from ..text import Text

NAME = "membership"

JOIN_FIX = Text(
    "join it again: `invoke swarm.join` (which also removes its stale entry), or by hand on"
    " the node `docker swarm join --token <{role}-token> --advertise-addr {address}"
    " MANAGER:2377` and on a manager `docker node rm` of the old entry",
    "重新加入：`invoke swarm.join`（会同时删除旧的节点记录）；或在该节点上手动执行"
    " `docker swarm join --token <{role}-token> --advertise-addr {address} MANAGER:2377`，"
    "再在管理节点上 `docker node rm` 旧记录",
)


def check(survey: Survey) -> list[Finding]:
    findings: list[Finding] = []
    cluster = survey.lab_cluster()
    known_ids = {member.id for member in survey.members}
    for facts in survey.nodes.values():
        findings += _node(survey, facts, cluster, known_ids)
    findings += _quorum(survey, cluster)
    findings += _entries(survey)
    if not findings and survey.leader is not None:
        leader = survey.leader.name
        findings.append(ok(NAME, Text(
            f"every node is in the lab's swarm with its role; {leader} lists them all Ready",
            f"所有节点都在实验环境的 swarm 中且角色正确；{leader} 列出的节点均为 Ready",
        )))
    return findings


def _node(survey: Survey, facts: NodeFacts, cluster: str, known_ids: set[str]) -> list[Finding]:
    name, role = facts.name, facts.role
    fix = JOIN_FIX.format(role=role, address=facts.address)
    if facts.stopped:
        return [Finding(NAME, name, ERROR,
                        Text(f"{name}'s machine is {facts.stopped}: {facts.error}",
                             f"{name} 的机器状态为 {facts.stopped}：{facts.error}"),
                        Text("it was shut down, or it crashed, or it was removed behind the"
                             " lab's back",
                             "机器被关机、崩溃，或在实验工具之外被删除"),
                        Text("`invoke lab.up` starts (or rebuilds) it and joins it again",
                             "`invoke lab.up` 会启动（或重建）它并重新加入"))]
    if not facts.reachable:
        return [Finding(NAME, name, ERROR,
                        Text(f"cannot reach {name}: {facts.error}",
                             f"无法连接 {name}：{facts.error}"),
                        Text("the machine runs, but sshd or its network is down",
                             "机器在运行，但 sshd 或网络不可用"),
                        Text("`invoke lab.status` shows what answers; `invoke lab.up` repairs it",
                             "`invoke lab.status` 查看哪些可以连接；`invoke lab.up` 修复它"))]
    if facts.dockerd_down:
        listed = sorted({m.status for m in survey.members if m.hostname == name})
        seen = (f"the managers list it {'/'.join(listed)}" if listed else
                "no manager could list the swarm's nodes" if survey.leader is None else
                "the managers do not list it")
        seen_zh = (f"管理节点显示它为 {'/'.join(listed)}" if listed else
                   "没有管理节点能列出 swarm 的节点" if survey.leader is None else
                   "管理节点的列表中没有它")
        return [Finding(
            NAME, name, ERROR,
            Text(f"dockerd is not running on {name} (systemctl is-active docker.service:"
                 f" {facts.dockerd}); {seen}",
                 f"{name} 上的 dockerd 没有运行（systemctl is-active docker.service："
                 f"{facts.dockerd}）；{seen_zh}"),
            Text("dockerd was stopped (`systemctl stop docker`) or crashed; the doctor does not"
                 " start it, so that what you see is what the lab is",
                 "dockerd 被停止（`systemctl stop docker`）或崩溃；doctor 不会启动它，以便如实"
                 "反映实验环境"),
            Text(f"`systemctl start docker` on {name} (`invoke lab.exec {name} 'systemctl start"
                 " docker'`); `journalctl -u docker` tells why it stopped",
                 f"在 {name} 上执行 `systemctl start docker`（`invoke lab.exec {name}"
                 " 'systemctl start docker'`）；`journalctl -u docker` 可查看停止原因"))]
    # The quorum finding below covers a leaderless manager that claims control in the lab's
    # own (leaderless) cluster; one left outside it (another manager made a new swarm, as a
    # `swarm init` does) or no longer claiming control is said here, node by node.
    covered = facts.is_manager and facts.cluster_id == cluster
    if facts.leaderless_manager and not covered:
        said = f"; Docker says: {facts.swarm_error}" if facts.swarm_error else ""
        return [Finding(
            NAME, name, ERROR,
            Text(f"{name} is stuck as a manager of a swarm without a leader (LocalNodeState"
                 f" active, ControlAvailable {str(facts.is_manager).lower()}, no cluster ID)"
                 f"{said}",
                 f"{name} 困在一个没有 leader 的 swarm 中担任管理节点（LocalNodeState active，"
                 f"ControlAvailable {str(facts.is_manager).lower()}，集群 ID 为空）{said}"),
            Text("the other managers of its swarm are gone: one left with `docker swarm leave"
                 " --force` (or was rebuilt, or ran `docker swarm init` anew), and with two"
                 " managers losing one loses the Raft quorum; its services and networks are"
                 " still in its Raft log",
                 "它所在 swarm 的其他管理节点已不在：有管理节点执行了 `docker swarm leave"
                 " --force`（或被重建、重新 `docker swarm init`），两个管理节点失去一个即失去"
                 " Raft 法定人数；服务和网络仍保存在它的 Raft 日志中"),
            Text(f"on {name}: `docker swarm init --force-new-cluster --advertise-addr"
                 f" {facts.address}` (keeps its services), then join the other nodes to it"
                 " (`invoke swarm.join`); `invoke lab.up` recovers it the same way",
                 f"在 {name} 上执行 `docker swarm init --force-new-cluster --advertise-addr"
                 f" {facts.address}`（保留服务），再让其他节点加入（`invoke swarm.join`）；"
                 "`invoke lab.up` 也会这样恢复"))]
    state = facts.state
    if state == "inactive":
        return [Finding(
            NAME, name, ERROR,
            Text(f"{name} is in no swarm (LocalNodeState inactive); the lab file makes it a {role}",
                 f"{name} 不在任何 swarm 中（LocalNodeState 为 inactive）；实验配置中它是 {role}"),
            Text("it left (`docker swarm leave`), or its join never succeeded: 2377/tcp blocked"
                 " on the manager, a wrong token, or a CA certificate not valid on its clock",
                 "它已离开（`docker swarm leave`），或加入从未成功：管理节点的 2377/tcp 被防火墙拦"
                 "截、"
                 "令牌错误，或 CA 证书在它的时钟下无效"),
            fix)]
    if state == "pending":
        return [Finding(
            NAME, name, ERROR,
            Text(f"{name}'s join is still pending: it never reached a manager",
                 f"{name} 的加入仍处于 pending 状态：一直没有连上管理节点"),
            Text("packets to 2377/tcp on the manager are dropped (a firewall DROP rule): Docker"
                 " said 'Timeout was reached before node joined' and keeps trying",
                 "发往管理节点 2377/tcp 的数据包被丢弃（防火墙 DROP 规则）：Docker 提示"
                 " 'Timeout was reached before node joined' 并在后台继续尝试"),
            Text("open 2377/tcp on the managers, then `docker swarm leave -f` on the node and join"
                 " again (`invoke swarm.join`)",
                 "在管理节点上放行 2377/tcp，然后在该节点 `docker swarm leave -f` 并重新加入"
                 "（`invoke swarm.join`）"))]
    if state != "active":
        detail = facts.swarm_error or "docker info gave no swarm state"
        return [Finding(
            NAME, name, ERROR,
            Text(f"{name}'s swarm state is {state}: {detail}",
                 f"{name} 的 swarm 状态为 {state}：{detail}"),
            Text("dockerd does not answer, or the swarm is locked or failed to start on it",
                 "dockerd 没有响应，或 swarm 已锁定 / 启动失败"),
            Text("`systemctl restart docker` on the node; if it stays so, `docker swarm leave -f`"
                 " and join again",
                 "在该节点 `systemctl restart docker`；若仍如此，`docker swarm leave -f` 后重新加"
                 "入"))]
    foreign = (facts.cluster_id and cluster and facts.cluster_id != cluster) or (
        not facts.is_manager and survey.members and facts.node_id not in known_ids)
    if foreign:
        return [Finding(
            NAME, name, ERROR,
            Text(f"{name} is active in another swarm (node {facts.node_id[:12]}), not the lab's",
                 f"{name} 处于另一个 swarm 中（节点 {facts.node_id[:12]}），不是实验环境的 swarm"),
            Text("someone ran `docker swarm init` on it, or it joined another swarm; every join"
                 ' now says "This node is already part of a swarm"',
                 "有人在它上面执行了 `docker swarm init`，或它加入了别的 swarm；此后任何加入都会报"
                 ' "This node is already part of a swarm"'),
            Text("`docker swarm leave -f` on it (it leaves that other swarm), then join the lab's:"
                 " `invoke swarm.join --force`",
                 "在该节点执行 `docker swarm leave -f` 离开那个 swarm，再加入实验环境的："
                 "`invoke swarm.join --force`"))]
    if (role == "manager") != facts.is_manager:
        actual = "manager" if facts.is_manager else "worker"
        verb = "promote" if role == "manager" else "demote"
        return [Finding(
            NAME, name, WARNING,
            Text(f"{name} is a {actual}; the lab file makes it a {role}",
                 f"{name} 当前是 {actual}；实验配置中它是 {role}"),
            Text("it was promoted or demoted by hand", "它被手动提升或降级过"),
            Text(f"`docker node {verb} {name}` on a manager, or `invoke swarm.join`",
                 f"在管理节点执行 `docker node {verb} {name}`，或 `invoke swarm.join`"))]
    return []


def _quorum(survey: Survey, cluster: str) -> list[Finding]:
    """A swarm whose Raft lost its majority: no leader, or none within seconds.

    Counted from the managers' own states (Raft members against managers still in the
    cluster), so it shows in the half minute before the last manager gives up leading too.
    """
    in_cluster = [f for f in survey.nodes.values()
                  if f.reachable and f.is_manager and f.cluster_id == cluster]
    if not in_cluster:
        return []
    raft = max(({m.get("Addr", "") for m in f.swarm.get("RemoteManagers") or []}
                for f in in_cluster), key=len)
    alive = {f"{f.node_addr}:2377" for f in in_cluster}
    lost = bool(raft) and len(raft & alive) * 2 <= len(raft)
    if survey.leader is not None and not lost:
        return []
    up = ", ".join(f.name for f in in_cluster)
    survivor = in_cluster[0]  # the one the fix names; any survivor holds the Raft log
    said = next((f.swarm_error for f in in_cluster if f.swarm_error), survey.members_error)
    if survey.leader is None:
        saw = Text(f"the swarm has no leader: Raft has {len(raft)} manager(s), only {up} still"
                   f" in it; Docker says: {said}",
                   f"swarm 没有 leader：Raft 中有 {len(raft)} 个管理节点，只剩 {up}；Docker 提示："
                   f"{said}")
    else:
        saw = Text(f"the swarm has lost its Raft quorum: {len(raft)} manager(s) in Raft, only"
                   f" {up} still in it; within seconds no manager will lead",
                   f"swarm 已失去 Raft 法定人数：Raft 中有 {len(raft)} 个管理节点，只剩 {up}；"
                   "几秒之内将没有管理节点能担任 leader")
    return [Finding(
        NAME, "", ERROR, saw,
        Text("a manager left without being demoted first (`docker swarm leave --force`, the usual"
             ' answer to "This node is already part of a swarm" and to the quorum warning), or'
             " managers are down or cannot reach each other on 2377/tcp; with two managers,"
             " losing one loses the quorum",
             "有管理节点未先降级就离开了（`docker swarm leave --force`，常见于遇到"
             ' "This node is already part of a swarm" 或法定人数警告之后），或管理节点宕机、'
             "彼此无法通过 2377/tcp 通信；只有两个管理节点时，失去一个就失去法定人数"),
        Text("bring the lost manager back if it still has its state; otherwise on"
             f" {survivor.name} `docker swarm init --force-new-cluster --advertise-addr"
             f" {survivor.address}` (keeps the services), then `docker node rm` the lost"
             " manager's entry and join it again (`invoke swarm.join`); `invoke lab.up` recovers"
             " it the same way. Next time: `docker node demote`, `docker swarm leave`,"
             " `docker node rm`",
             "若丢失的管理节点仍保留状态，让它恢复即可；否则在"
             f" {survivor.name} 上执行 `docker swarm init --force-new-cluster --advertise-addr"
             f" {survivor.address}`（保留服务），再 `docker node rm` 旧记录并重新加入"
             "（`invoke swarm.join`）；`invoke lab.up` 也会这样恢复。"
             "下次请按 `docker node demote`、`docker swarm leave`、`docker node rm` 的顺序操作"),
    )]


def _entries(survey: Survey) -> list[Finding]:
    """What the managers list: nodes Down, stale entries, nodes that are not the lab's."""
    findings = []
    lab_names = {spec.name for spec in survey.lab.spec.nodes}
    for member in survey.members:
        facts = survey.nodes.get(member.hostname)
        if facts is None or member.hostname not in lab_names:
            findings.append(Finding(
                NAME, member.hostname, WARNING,
                Text(f"the swarm lists {member.hostname} ({member.status}), not a node of the lab",
                     f"swarm 中有 {member.hostname}（{member.status}），它不是实验环境的节点"),
                Text("a machine outside the lab joined", "实验环境以外的机器加入了 swarm"),
                Text(f"`docker node rm --force {member.id}` on a manager",
                     f"在管理节点执行 `docker node rm --force {member.id}`")))
            continue
        active = facts.reachable and facts.state == "active"
        # A node that left, or whose entry is not its own ID, leaves a stale entry behind.
        stale = (active and member.id != facts.node_id) or (
            facts.reachable and facts.state == "inactive")
        if stale:
            findings.append(Finding(
                NAME, member.hostname, WARNING,
                Text(f"a stale entry {member.id[:12]} for {member.hostname} ({member.status})"
                     " is left in `docker node ls`",
                     f"`docker node ls` 中残留 {member.hostname} 的旧记录 {member.id[:12]}"
                     f"（{member.status}）"),
                Text("the node left or was rebuilt, and nobody ran `docker node rm`",
                     "节点离开或被重建后，没有执行 `docker node rm`"),
                Text(f"`docker node rm --force {member.id}` on a manager (demote it first if it"
                     " was a manager)",
                     f"在管理节点执行 `docker node rm --force {member.id}`（若为管理节点先降级）")))
        elif active and member.status != "Ready":
            findings.append(Finding(
                NAME, member.hostname, ERROR,
                Text(f"the managers see {member.hostname} as {member.status}",
                     f"管理节点看到 {member.hostname} 的状态为 {member.status}"),
                Text("its dockerd stopped, or it cannot reach the managers on 2377/tcp",
                     "它的 dockerd 已停止，或无法通过 2377/tcp 连接管理节点"),
                Text("`systemctl restart docker` on it; check 2377/tcp (the ports finding)",
                     "在该节点 `systemctl restart docker`；检查 2377/tcp（见 ports 检查）")))
    return findings
