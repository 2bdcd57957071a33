"""IPVS: swarm's service VIPs and the ingress routing mesh run on it.

Without it (dockerd logs "Could not get ipvs family information from the kernel") task
names, `tasks.NAME`, dnsrr and host-mode ports still work; VIPs and the mesh do not answer.
On the local and incus providers (containers) the kernel is the host's: nothing in the lab
can change it, so it is reported as unavailable rather than as a fault of the lab.
"""

from __future__ import annotations

from ..finding import UNAVAILABLE, WARNING, Finding, ok
from ..survey import Survey
from ..text import Text

NAME = "ipvs"


def check(survey: Survey) -> list[Finding]:
    reachable = survey.reachable()
    missing = [f.name for f in reachable if not f.ipvs]
    if not reachable:
        return []
    if not missing:
        return [ok(NAME, Text("IPVS present on every node: VIPs and the routing mesh can work",
                              "所有节点都有 IPVS：VIP 和路由网格可以工作"))]
    where = ", ".join(missing)
    shared = survey.lab.spec.provider in ("local", "incus")  # containers: the host's kernel
    return [Finding(
        NAME, "", UNAVAILABLE if shared else WARNING,
        Text(f"no IPVS on {where} (no /proc/net/ip_vs after `modprobe ip_vs`): service VIPs and"
             " the ingress routing mesh will not answer; tasks.NAME, --endpoint-mode dnsrr and"
             " --publish mode=host still work",
             f"{where} 上没有 IPVS（`modprobe ip_vs` 后仍无 /proc/net/ip_vs）：服务 VIP 和 ingress"
             " 路由网格无法响应；tasks.NAME、--endpoint-mode dnsrr 和 --publish mode=host 仍可用"),
        Text("the nodes share this host's kernel, which is built without IPVS" if shared else
             "the kernel has no ip_vs module (a minimal or custom kernel)",
             "节点共用宿主机内核，而该内核未编译 IPVS" if shared else
             "内核没有 ip_vs 模块（精简或自定义内核）"),
        Text("nothing to do in the lab; use a VM provider (vagrant, vmware) to teach the mesh"
             if shared else "install the kernel's extra modules (e.g. linux-modules-extra) and"
             " `modprobe ip_vs`",
             "实验环境内无法解决；如需讲解路由网格请使用虚拟机（vagrant、vmware）" if shared else
             "安装内核附加模块（如 linux-modules-extra）并执行 `modprobe ip_vs`"))]
