"""Services on networks that are not swarm overlays, and local networks made for services.

Only networks scoped to the swarm can carry a service. A local `docker network create NAME`
(bridge, the default driver) on a manager is what a service was usually meant for: the CLI
then says "Error: No such network: NAME" (Docker 20.10) or "network NAME not found" (26.1),
the daemon "The network NAME cannot be used with services". A service on a swarm-scoped
bridge or the host network runs, but its tasks on different nodes cannot reach each other.
"""

from __future__ import annotations

from ..finding import WARNING, Finding, ok
from ..survey import Survey
from ..text import Text

NAME = "networks"
# Per service: NAME|network IDs; then per network: ID|name|driver|scope. A service or
# network removed between the listing and its inspect (the overlay probe's own, while swarm
# removes it) is simply not there: its failed inspect is not the check's failure.
QUERY = r"""
docker service ls -q | while read -r id; do
  docker service inspect "$id" \
    -f '{{.Spec.Name}}|{{range .Spec.TaskTemplate.Networks}}{{.Target}} {{end}}' 2>/dev/null
done
echo @@networks
docker network ls -q | while read -r id; do
  docker network inspect -f '{{.Id}}|{{.Name}}|{{.Driver}}|{{.Scope}}' "$id" 2>/dev/null
done
true
"""


def _services(survey: Survey) -> list[Finding]:
    if survey.leader is None:
        return []
    output = survey.leader.run(QUERY, timeout=60, check=True, shown="list services and networks")
    services, _, networks_part = output.stdout.partition("@@networks")
    networks = {}
    for line in networks_part.splitlines():
        parts = line.split("|")
        if len(parts) == 4:
            networks[parts[0]] = (parts[1], parts[2])
    findings = []
    for line in services.splitlines():
        service, _, targets = line.partition("|")
        for target in targets.split():
            name, driver = next(
                (value for key, value in networks.items() if key.startswith(target)),
                (target, "?"))
            # "?": the network went between the two reads (a removal in flight, such as the
            # overlay probe's of an earlier run); not knowing its driver is no finding.
            if driver in ("overlay", "?"):
                continue
            findings.append(Finding(
                NAME, "", WARNING,
                Text(f"service {service} is on network {name} (driver {driver}), not an overlay",
                     f"服务 {service} 使用的网络 {name}（驱动 {driver}）不是 overlay"),
                Text("its tasks on different nodes cannot reach each other, and it has no"
                     " swarm service discovery across nodes",
                     "它在不同节点上的任务彼此无法通信，也没有跨节点的服务发现"),
                Text(f"`docker network create -d overlay NET` and `docker service update"
                     f" --network-rm {name} --network-add NET {service}`",
                     f"`docker network create -d overlay NET`，再 `docker service update"
                     f" --network-rm {name} --network-add NET {service}`")))
    return findings


def _unused_local(survey: Survey) -> list[Finding]:
    findings = []
    for facts in survey.reachable():
        if not facts.is_manager:
            continue
        for network in facts.local_networks:
            if network.containers:
                continue
            name = network.name
            findings.append(Finding(
                NAME, facts.name, WARNING,
                Text(f"{name} is a local-scope {network.driver} network on manager {facts.name}"
                     " and no container uses it: no service can either",
                     f"{name} 是管理节点 {facts.name} 上的本地（{network.driver}）网络，没有容器使"
                     "用它，"
                     "服务也无法使用"),
                Text(f"it was made with `docker network create {name}` (bridge by default) for a"
                     f" service; `docker service create --network {name}` says 'No such network:"
                     f" {name}' (Docker 20.10) or 'network {name} not found' (26.1), the daemon"
                     " 'Only networks scoped to the swarm can be used, such"
                     " as those created with the overlay driver'",
                     f"它多半是为服务用 `docker network create {name}`（默认 bridge 驱动）创建的；"
                     f"`docker service create --network {name}` 会报 'No such network: {name}'"
                     f"（Docker 20.10）或 'network {name} not found'（26.1），"
                     "守护进程的原话是 'Only networks scoped to the swarm can be used, such as"
                     " those created with the overlay driver'"),
                Text(f"`docker network rm {name}` and `docker network create -d overlay {name}`"
                     " on a manager, then create the service on it",
                     f"在管理节点执行 `docker network rm {name}` 和"
                     f" `docker network create -d overlay {name}`，再在其上创建服务")))
    return findings


def check(survey: Survey) -> list[Finding]:
    findings = _services(survey) + _unused_local(survey)
    if not findings and survey.leader is not None:
        findings.append(ok(NAME, Text(
            "every service is on overlay networks; no manager keeps a local network meant for one",
            "所有服务都在 overlay 网络上；管理节点上没有为服务准备的本地网络")))
    return findings
