"""`swarm.*`: the swarm steps one at a time, for teaching and for repair."""

from __future__ import annotations

import json

from invoke import Collection, Context, task

from .. import swarm
from ..errors import LabError
from ..lifecycle import require_up
from .common import open_lab, say, user_errors


@task(help={"provider": "overrides the lab file"})
@user_errors
def init(ctx: Context, provider: str | None = None) -> None:
    """`docker swarm init` on the first manager, advertising its lab address."""
    with open_lab(ctx, provider, log=say) as lab:
        require_up(lab)
        node = lab.node(lab.spec.first_manager.name)
        states = swarm.infos(lab, lab.nodes())
        if states[node.name].state != "inactive":
            say(f"{node.name} is already in a swarm ({states[node.name].state}); nothing to do")
            return
        # A second swarm beside one a node already holds would split the lab.
        others = [name for name, state in states.items() if state.state != "inactive"]
        if others:
            raise LabError(f"{', '.join(others)} already in a swarm: `invoke swarm.join` joins"
                           " the lab to it (or recovers it) instead of starting a second one")
        found = swarm.init(lab, node, say)
        lab.state.record_step("swarm-init", lab.spec.digest(), True, cluster_id=found.cluster_id)
        say(f"swarm initialised on {node.name}")


@task(help={"force": "make nodes in another swarm leave it (never one holding services)",
            "discard_services": "with --force: also leave a swarm that holds services",
            "provider": "overrides the lab file"})
@user_errors
def join(ctx: Context, force: bool = False, discard_services: bool = False,
         provider: str | None = None) -> None:
    """Join every other node with its role's token (init first if needed)."""
    with open_lab(ctx, provider, log=say) as lab:
        require_up(lab)
        done = swarm.converge(lab, log=say, force=force, discard_services=discard_services)
        for name, what in done.items():
            say(f"  {name}: {what}")


@task(name="status", help={"json": "print JSON", "provider": "overrides the lab file"})
@user_errors
def status_(ctx: Context, json_: bool = False, provider: str | None = None) -> None:
    """`docker node ls` as the leader sees it, with problems against the lab file."""
    with open_lab(ctx, provider, log=say) as lab:
        require_up(lab)
        leader = swarm.find_leader(lab)
        if leader is None:
            raise LabError("no manager of the lab has a working swarm; run `invoke swarm.join`")
        current = swarm.members(leader)
        problems = swarm.problems_of(lab, current)
        if json_:
            say(json.dumps({"leader": leader.name, "members": [m.__dict__ for m in current],
                            "problems": problems}, indent=2))
        else:
            for m in current:
                say(f"{m.hostname:<12} {m.status:<8} {m.availability:<8} {m.manager_status or '-'}")
            say("problems: " + ("; ".join(problems) if problems else "none"))
        if problems:
            raise LabError("swarm not as the lab file says: " + "; ".join(problems))


@task(help={"node": "one node (default: all: workers, then managers, the leader last)",
            "provider": "overrides the lab file"})
@user_errors
def leave(ctx: Context, node: str = "", provider: str | None = None) -> None:
    """`docker swarm leave --force` on nodes: workers, then managers, the leader last."""
    with open_lab(ctx, provider, log=say) as lab:
        require_up(lab)
        for name, what in swarm.leave(lab, [node] if node else None, log=say).items():
            say(f"  {name}: {what}")


namespace = Collection("swarm", init, join, status_, leave)
