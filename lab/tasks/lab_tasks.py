"""`lab.*`: bring a lab up, look at it, get into it, take it down."""

from __future__ import annotations

import json
import os
import shlex

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from .. import status as lab_status
from ..config import runtime_path
from ..errors import LabError
from ..lifecycle import down as lab_down
from ..lifecycle import require_up, revert
from ..lifecycle import snapshot as take_snapshot
from ..lifecycle import up as lab_up
from ..remote import run_parallel
from .common import err, open_lab, say, user_errors
from .doctor_tasks import doctor

HELP_PROVIDER = "local (default), vagrant or vmware; overrides the lab file"
HELP_INSECURE = "accept a self-signed vCenter certificate (vmware only)"


@task(help={"provider": HELP_PROVIDER, "skip_swarm": "prepare the nodes but build no swarm",
            "force": "make nodes that are in another swarm leave it (never one holding services)",
            "discard_services": "with --force: also leave a swarm that holds services (lost)",
            "insecure": HELP_INSECURE})
@user_errors
def up(ctx: Context, provider: str | None = None, skip_swarm: bool = False, force: bool = False,
       discard_services: bool = False, insecure: bool = False) -> None:
    """Create, prepare and build the lab (preflight, create, prepare, swarm, verify)."""
    with open_lab(ctx, provider, insecure, log=say) as lab:
        report = lab_up(lab, skip_swarm=skip_swarm, force=force,
                        discard_services=discard_services, log=say)
        say("")
        reach = lab_status.reach_command(runtime_path(ctx), provider)
        say(lab_status.table(lab_status.collect(lab, reach)))
        say("" if report.changed else "nothing changed: the lab was already up")


@task(help={"provider": HELP_PROVIDER, "insecure": HELP_INSECURE})
@user_errors
def down(ctx: Context, provider: str | None = None, insecure: bool = False) -> None:
    """Remove everything that carries this lab's label, and nothing else."""
    with open_lab(ctx, provider, insecure, log=say) as lab:
        removed = lab_down(lab, log=say)
        say(f"lab {lab.spec.name} is down ({len(removed)} things removed)")


@task(name="status", help={"provider": HELP_PROVIDER, "json": "print one JSON object",
                           "insecure": HELP_INSECURE})
@user_errors
def status_(ctx: Context, provider: str | None = None, json_: bool = False,
            insecure: bool = False) -> None:
    """Each node: role, address, power, OS, Docker, swarm state, clock skew, how to reach it.

    Exits 1 when the lab differs from its file (a node stopped, Down, of another role, no
    leader...), each difference said; looking starts nothing, not even a stopped dockerd.
    """
    with open_lab(ctx, provider, insecure, log=say) as lab:
        found = lab_status.collect(lab, lab_status.reach_command(runtime_path(ctx), provider))
        say(json.dumps(found, indent=2) if json_ else lab_status.table(found))
    if found["differences"]:
        raise Exit(code=1)


@task(help={"node": "a node of the lab file, e.g. manager1", "provider": HELP_PROVIDER})
@user_errors
def ssh(ctx: Context, node: str, provider: str | None = None) -> None:
    """Open a shell on a node, with the lab's key and pinned host key."""
    with open_lab(ctx, provider) as lab:
        require_up(lab)
        target = lab.node(node).target
        argv = ssh_argv(target)
    os.execvp("ssh", argv)


def ssh_argv(target) -> list[str]:
    # Only the key pinned for the lab vouches for a node: not the host's ssh_known_hosts.
    return [
        "ssh", "-i", target.key_filename, "-p", str(target.port),
        "-o", f"UserKnownHostsFile={target.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=30",
        *(["-o", f"HostKeyAlias={target.host_key_alias}"] if target.host_key_alias else []),
        f"{target.user}@{target.host}",
    ]


@task(name="exec", help={"node": "a node name, or 'all'", "command": "the shell command to run",
                         "provider": HELP_PROVIDER})
@user_errors
def exec_(ctx: Context, node: str, command: str, provider: str | None = None) -> None:
    """Run a command on a node (or on every node with 'all') and show its output."""
    with open_lab(ctx, provider) as lab:
        require_up(lab)
        nodes = lab.nodes() if node == "all" else [lab.node(node)]
        outcomes = run_parallel(nodes, lambda n: n.run(command), parallel=lab.spec.ssh.parallel)
        failed = False
        for name, outcome in outcomes.items():
            if not outcome.ok:
                if len(nodes) == 1:
                    raise LabError(outcome.error or "failed")
                err(f"error: {outcome.error}")
                failed = True
                continue
            result = outcome.value
            prefix = f"[{name}] " if len(nodes) > 1 else ""
            for line in result.output.splitlines():
                say(prefix + line)
            failed = failed or not result.ok
        if failed:
            raise LabError(f"`{shlex.quote(command)}` failed on at least one node")


@task(help={"name": "the snapshot's name", "provider": HELP_PROVIDER, "insecure": HELP_INSECURE})
@user_errors
def snapshot(ctx: Context, name: str, provider: str | None = None, insecure: bool = False) -> None:
    """Take a snapshot of every machine (providers that can)."""
    with open_lab(ctx, provider, insecure, log=say) as lab:
        require_up(lab)
        take_snapshot(lab, name, log=say)
        say(f"snapshot {name} taken of {len(lab.spec.nodes)} machines")


@task(help={"to": "the snapshot to go back to (default: the latest)",
            "provider": HELP_PROVIDER, "insecure": HELP_INSECURE})
@user_errors
def reset(ctx: Context, to: str = "", provider: str | None = None, insecure: bool = False) -> None:
    """Revert every machine to a snapshot, then make clocks right before anything else."""
    with open_lab(ctx, provider, insecure, log=say) as lab:
        require_up(lab)
        snapshots = lab.provider.list_snapshots()
        target = to or (snapshots[-1] if snapshots else "")
        if not target:
            raise LabError("no snapshot to reset to; take one with `invoke lab.snapshot NAME`")
        say(f"lab {lab.spec.name} reset to {target}: " + revert(lab, target, log=say))


namespace = Collection("lab", up, down, status_, ssh, exec_, snapshot, reset, doctor)
