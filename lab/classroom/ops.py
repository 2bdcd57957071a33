"""What the class does to one student's lab: each function is one lab's work for the runner.

Each takes the student's planned lab and a log, and returns (one line for the summary, a
value for the caller). They raise LabError on a fault; the runner turns it into that
student's failure without touching the others.

Reset to `prepared` on every provider (the only way where nothing can snapshot, as with
local) keeps the machines and wipes their Docker: first the machines are brought back and
prepared again (a student may have stopped Docker or a node), clocks are made right where
nodes own them, failures broken on purpose are undone by their own fixes (they know what
they changed beyond Docker); then every node leaves the swarm by force and every container,
network, volume and image other than the lab's service images is removed. The lab is then
what `lab.up --skip-swarm` gives, in seconds, where new machines take most of a minute.
Files elsewhere on a node are kept: `class.down` then `class.up` gives new machines.
"""

from __future__ import annotations

import shlex
from typing import Any

from .. import lifecycle
from ..context import Lab
from ..errors import LabError, NodeError
from ..remote import Node
from ..status import collect
from . import health
from .plan import StudentLab
from .runner import Log

TARGETS = ("prepared", "swarm")  # and any other word: a provider snapshot of that name


def _wipe_command(keep: list[str]) -> str:
    kept = " ".join(keep)
    return (
        "docker swarm leave --force >/dev/null 2>&1;"
        " docker ps -aq | xargs -r docker rm -f >/dev/null;"
        " docker network prune -f >/dev/null; docker volume prune -f >/dev/null;"
        f" keep=' {kept} ';"
        " docker image ls --format '{{.Repository}}:{{.Tag}}' | while read -r ref; do"
        ' case "$keep" in *" $ref "*) ;; *) docker rmi -f "$ref" >/dev/null 2>&1;; esac; done;'
        " docker image prune -f >/dev/null;"
        " docker info --format '{{.Swarm.LocalNodeState}}'"
    )


def up(entry: StudentLab, log: Log, *, skip_swarm: bool, force: bool) -> tuple[str, Any]:
    with Lab(entry.spec, log=log) as lab:
        report = lifecycle.up(lab, skip_swarm=skip_swarm, force=force, log=log)
        what = "prepared, no swarm" if skip_swarm else "swarm built"
        how = "changed" if report.changed else "already up, nothing changed"
        return f"{len(entry.spec.nodes)} nodes, {what} ({how})", report.timings()


def reset(entry: StudentLab, log: Log, *, to: str) -> tuple[str, Any]:
    with Lab(entry.spec, log=log) as lab:
        lifecycle.require_up(lab)
        if to in TARGETS:
            return _reset_docker(lab, log, to)
        if not lab.provider.can_snapshot:
            raise LabError(
                f"provider {lab.spec.provider} cannot revert to a snapshot {to!r}; use --to"
                " prepared or --to swarm"
            )
        return f"reverted to snapshot {to}; " + lifecycle.revert(lab, to, log), {"to": to}


def snapshot(entry: StudentLab, log: Log, *, name: str) -> tuple[str, Any]:
    """A provider snapshot of one lab, for a later `class.reset --to NAME`."""
    with Lab(entry.spec, log=log) as lab:
        lifecycle.require_up(lab)
        if not lab.provider.can_snapshot or name in TARGETS:
            raise LabError(
                f"provider {lab.spec.provider} cannot take a snapshot" if name not in TARGETS
                else f"{name!r} is a reset target, not a snapshot name; choose another name"
            )
        lifecycle.snapshot(lab, name, log)
        return f"snapshot {name} taken", {"snapshot": name}


def _reset_docker(lab: Lab, log: Log, to: str) -> tuple[str, Any]:
    # Machines back and prepared first: a student may have stopped Docker or a node.
    lifecycle.up(lab, skip_swarm=True, log=log)
    clocks = lifecycle.make_clocks_right(lab, log)
    undone = health.undo_recorded(lab, log)
    log("==> wipe")
    command = _wipe_command([shlex.quote(image) for image in lab.spec.images.values()])

    def wipe(node: Node) -> str:
        state = node.run(command, timeout=300, shown="leave the swarm, remove containers,"
                         " networks, volumes and stray images").stdout.strip()
        if state.splitlines()[-1:] != ["inactive"]:
            raise NodeError(node.name, f"still in a swarm after the wipe ({state or 'no answer'})")
        return state

    lifecycle.on_nodes(lab, lab.nodes(), wipe, "wiping Docker")
    lab.state.invalidate_steps("swarm")
    # The lab is reset: no failure is broken on purpose any more (undone above, or wiped).
    lab.state.broken.clear()
    lab.state.save()
    log("    wipe: ok")
    failures = f"; failures: {', '.join(undone)}" if undone else ""
    if to == "swarm":
        lifecycle.up(lab, log=log)
        return f"swarm built anew; {clocks}{failures}", {"to": to}
    return f"Docker installed, no swarm; {clocks}{failures}", {"to": to}


def status(entry: StudentLab, log: Log) -> tuple[str, dict[str, Any]]:
    with Lab(entry.spec, log=log) as lab:
        if not lab.state.machines:
            return "no lab", {"nodes_total": len(entry.spec.nodes), "nodes_up": 0,
                              "swarm": "no lab", "problems": [], "doctor": [], "lab": None}
        found = collect(lab)
        problems = swarm_problems(found)
        up_count = sum(1 for node in found["nodes"] if node["reachable"])
        doctor = health.findings(lab) if up_count else []
        if not any(node["swarm_state"] == "active" for node in found["nodes"]):
            word = "none"
        elif problems:
            word = "partial"
        else:
            word = "ok"
        value = {"nodes_total": len(found["nodes"]), "nodes_up": up_count, "swarm": word,
                 "problems": problems, "doctor": doctor, "lab": found}
        return f"{up_count}/{len(found['nodes'])} up, swarm {word}", value


def swarm_problems(found: dict[str, Any]) -> list[str]:
    """What keeps the swarm from being as the lab file says, one phrase per node."""
    problems = []
    for node in found["nodes"]:
        if not node["reachable"]:
            problems.append(f"{node['name']} unreachable ({node['power']})")
        elif node["swarm_state"] != "active":
            # Its own word first: the leader lists a node that just left as Ready for a while.
            problems.append(f"{node['name']} not in a swarm ({node['swarm_state']})")
        elif not node["ready"]:
            problems.append(f"{node['name']} {node['swarm_status'] or 'not a member'}")
        elif node["swarm_role"] != node["role"]:
            problems.append(f"{node['name']} is a {node['swarm_role']}, not a {node['role']}")
    return problems


def check(entry: StudentLab, log: Log) -> tuple[str, dict[str, Any]]:
    """Healthy: the swarm as the lab file says and no failing doctor finding."""
    _detail, found = status(entry, log)
    reasons = found["problems"] + found["doctor"] if found["lab"] else ["no lab"]
    healthy = not reasons
    return ("healthy" if healthy else "; ".join(reasons)), {"healthy": healthy,
                                                            "reasons": reasons}


def break_(entry: StudentLab, log: Log, *, failure: str) -> tuple[str, Any]:
    with Lab(entry.spec, log=log) as lab:
        lifecycle.require_up(lab)
        log(f"==> break {failure}")
        return health.break_lab(lab, failure, log), {"failure": failure}


def down(entry: StudentLab, log: Log) -> tuple[str, Any]:
    with Lab(entry.spec, log=log) as lab:
        log("==> down")
        removed = lifecycle.down(lab, log=log)
    entry.lab_file.unlink(missing_ok=True)
    return f"{len(removed)} things removed", removed

