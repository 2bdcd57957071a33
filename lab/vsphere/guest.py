"""Waiting for guests to report their lab address, with a progress line and a deadline.

The address appearing is not proof that customization worked (a guest may show a DHCP
address first), so a node counts as up only when it reports the address the lab file gives
it. On real vCenter a failed customization shows as an event on the VM, not as a missing
address: those events end the wait at once with vCenter's own words. vcsim's WaitForUpdates
does not report container addresses, so addresses are polled, all VMs in one call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pyVmomi import vim

from ..errors import NodeError
from ..waits import wait_until
from .inventory import retrieve

POLL_SECONDS = 1.0
PROGRESS_SECONDS = 15.0
EVENT_CHECK_SECONDS = 5.0
CUSTOMIZATION_FAILURES = [
    "CustomizationFailed",
    "CustomizationLinuxIdentityFailed",
    "CustomizationNetworkSetupFailed",
    "CustomizationUnknownFailure",
]
GUEST_PATHS = ["name", "guest.ipAddress", "guest.net", "guest.toolsRunningStatus",
               "runtime.powerState"]


def addresses(props: dict[str, Any]) -> list[str]:
    found = [props["guest.ipAddress"]] if props.get("guest.ipAddress") else []
    for nic in props.get("guest.net", []) or []:
        found += [ip for ip in nic.ipAddress or [] if ip not in found]
    return found


def customization_failure(content: Any, vm: Any, since: Any) -> str | None:
    spec = vim.event.EventFilterSpec(
        entity=vim.event.EventFilterSpec.ByEntity(entity=vm, recursion="self"),
        eventTypeId=CUSTOMIZATION_FAILURES,
        time=vim.event.EventFilterSpec.ByTime(beginTime=since) if since else None,
    )
    events = content.eventManager.QueryEvents(spec) or []
    if not events:
        return None
    event = events[-1]
    return (getattr(event, "fullFormattedMessage", "") or type(event).__name__).strip()


def wait_for_addresses(
    content: Any,
    vms: dict[str, tuple[Any, str]],
    *,
    timeout: int,
    log: Callable[[str], None],
    since: Any = None,
) -> dict[str, str]:
    """Wait until each VM (node -> (vm, wanted address)) reports its address; node -> address.

    `since` (vCenter's time when the VMs were powered on) limits the customization events
    looked at to this run's.
    """
    start = time.monotonic()
    ready: dict[str, str] = {}
    clock = {"progress": start, "events": start}
    seen: dict[str, dict[str, Any]] = {}
    by_id = {vm._moId: node for node, (vm, _wanted) in vms.items()}

    def waiting() -> list[str]:
        return [node for node in vms if node not in ready]

    def probe() -> dict[str, str] | None:
        if waiting():
            found = retrieve(content, [vms[n][0] for n in waiting()], vim.VirtualMachine,
                             GUEST_PATHS)
            for item in found:
                node = by_id[item.obj._moId]
                seen[node] = item.props
                if vms[node][1] in addresses(item.props):
                    ready[node] = vms[node][1]
        now = time.monotonic()
        if not waiting():
            log(f"    guest addresses: {len(ready)}/{len(vms)} after {now - start:.0f} s")
            return ready
        if now - clock["events"] >= EVENT_CHECK_SECONDS:
            clock["events"] = now
            for node in waiting():
                failure = customization_failure(content, vms[node][0], since)
                if failure:
                    name = seen.get(node, {}).get("name", node)
                    raise NodeError(node, f"guest customization of VM {name} failed: {failure}")
        if now - clock["progress"] >= PROGRESS_SECONDS:
            clock["progress"] = now
            log(f"    guest addresses: {len(ready)}/{len(vms)} after {now - start:.0f} s"
                f" (waiting for {', '.join(waiting())})")
        return None

    def last_seen(_none: None) -> str:
        node = waiting()[0]
        props = seen.get(node, {})
        shown = ", ".join(addresses(props)) or "no address"
        power, tools = props.get("runtime.powerState"), props.get("guest.toolsRunningStatus")
        return (f"VM {props.get('name', node)} reports {shown}, not {vms[node][1]} (power"
                f" {power}, tools {tools}); {len(waiting())} of {len(vms)} VMs still without"
                " theirs")

    found = wait_until(
        probe, timeout=timeout, interval=POLL_SECONDS, what="the VMs' guest addresses",
        done=lambda result: result is not None, last_seen=last_seen,
        hint="check VMware Tools and customization in the template, or raise"
             " vmware.guest_timeout",
        error=lambda message: NodeError(waiting()[0], message),
    )
    assert found is not None  # done() holds
    return found
