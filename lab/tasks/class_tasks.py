"""`class.*`: one lab per student, from the lab file and a roster, worked on together.

`class.up --roster FILE` records the class (students, their subnets, the provider) in the
class's folder under the state dir; every other class task works from that record, so the
roster is given once. Each task works on the labs in parallel (bounded), shows each lab's
progress and the class's, and ends with a summary that names every student whose lab
failed and why; one student's failure never stops the others. Rerunning a task finishes
what was left: each lab's own state file knows how far it got.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from ..classroom import cards as class_cards
from ..classroom import ops, runner
from ..classroom.capacity import RoomGate
from ..classroom.plan import ClassPlan, StudentLab, make_plan, write_lab_files
from ..classroom.record import ClassRecord
from ..classroom.roster import Student, read_roster
from ..classroom.settings import load_class
from ..context import Lab
from ..errors import LabError
from .common import say, user_errors

HELP_PROVIDER = "local, incus, vagrant or vmware; default: the one the class was made with"
HELP_PARALLEL = "labs worked on at once (default: classroom.parallel, 4)"
HELP_STUDENT = "one student's id (default: every student)"


def quiet(line: str) -> None:
    """Progress is not shown for tasks whose output is a table or JSON."""


def open_class(
    ctx: Context, provider: str | None = None, roster: str | None = None,
    everyone: bool = False,
) -> tuple[ClassPlan, ClassRecord]:
    """The class plan, from the roster given or the recorded one.

    `everyone` includes students who left the roster but still have a recorded lab.
    """
    base, settings, data = load_class(ctx, provider=provider)
    record = ClassRecord.load(base.state_dir, settings.name)
    made_with = record.data.get("provider")
    if provider is None and made_with and made_with != base.provider:
        base, settings, data = load_class(ctx, provider=made_with)
    if roster:
        students = read_roster(roster)
        label = roster
    else:
        students = [
            Student(id=sid, name=entry["name"], row=entry["row"],
                    overrides=entry.get("overrides", {}), note=entry.get("note", ""))
            for sid, entry in record.students.items()
            if entry.get("name") and (everyone or entry.get("in_roster", True))
        ]
        label = record.data.get("roster", "(recorded)")
        if not students:
            raise LabError(f"class {settings.name} has no students yet; run"
                           " `invoke class.up --roster FILE`")
    members = None
    if base.provider == "incus":
        from ..providers.incus import cluster_members

        members = cluster_members(base)
    return make_plan(base, settings, data, students, record, label, members), record


def remember(plan: ClassPlan, record: ClassRecord, roster: str) -> list[str]:
    """Record the class before any lab is made, so subnets stay put even if interrupted.

    Returns the students recorded earlier who are no longer on the roster.
    """
    record.data["provider"] = plan.base.provider
    record.data["roster"] = str(Path(roster).resolve())
    on_roster = {entry.id for entry in plan.labs}
    for entry in plan.labs:
        record.students.setdefault(entry.id, {}).update(
            name=entry.student.name, row=entry.student.row,
            overrides=dict(entry.student.overrides), note=entry.student.note,
            subnet=entry.spec.subnet, lab=entry.lab, in_roster=True,
        )
        if entry.spec.provider == "incus" and entry.spec.provider_settings.get("target"):
            record.students[entry.id]["member"] = entry.spec.provider_settings["target"]
    left = []
    for sid, entry in record.students.items():
        if sid not in on_roster:
            entry["in_roster"] = False
            left.append(sid)
    record.save()
    write_lab_files(plan)
    return left


def finish(results: list[runner.Result], what: str, record: ClassRecord, rerun: str) -> None:
    runner.summary(results, what, say)
    bad = [r for r in results if not r.ok]
    if bad:
        names = ", ".join(f"{r.student} ({r.status})" for r in bad)
        raise LabError(f"{what}: {len(bad)} of {len(results)} labs not done: {names}; each"
                       f" lab's log is in {record.directory / 'logs'}; {rerun}")


def _warm(plan: ClassPlan) -> None:
    """The first lab's preflight alone, so that missing images are built once, not per lab.

    A fault here is that lab's to report, in the runner, like any other.
    """
    try:
        with Lab(plan.labs[0].spec, log=quiet) as lab:
            lab.provider.preflight()
    except LabError:
        pass


@task(help={"roster": "CSV file: id,name[,subnet,os_family,firewall,selinux,time_sync,note]",
            "provider": "local (default), incus, vagrant or vmware; overrides the lab file",
            "parallel": HELP_PARALLEL, "skip_swarm": "prepare the nodes but build no swarm",
            "force": "make nodes that are in another swarm leave it"})
@user_errors
def up(ctx: Context, roster: str, provider: str | None = None, parallel: int = 0,
       skip_swarm: bool = False, force: bool = False) -> None:
    """One lab per student of the roster: create, prepare, swarm; reruns finish the job."""
    plan, record = open_class(ctx, provider, roster)
    left = remember(plan, record, roster)
    if left:
        say("not on the roster any more (their labs stay until class.down): " + ", ".join(left))
    bound = parallel or plan.settings.parallel
    say(f"class {plan.name}: {len(plan.labs)} labs, {bound} at a time, provider"
        f" {plan.base.provider}; student lab files in {record.directory / 'labs'}")
    if plan.base.provider == "local":
        say("warning: on the local provider root in a node is close to root on this host (nodes"
            " are containers that keep SYS_ADMIN); give students these nodes only on a machine"
            " you can lose, or use the incus provider (unprivileged nodes)")
    if plan.base.provider == "vmware":
        # The students' folders go inside the class's, which the provider will not make.
        from ..classroom import vsphere

        record.data["made_folders"] = vsphere.before_up(plan.labs[0].spec,
                                                        record.data.get("made_folders", []))
        record.save()
    _warm(plan)
    gate = RoomGate(plan.settings.memory_per_node_mib)

    def work(entry: StudentLab, log: runner.Log) -> tuple[str, Any]:
        return ops.up(entry, log, skip_swarm=skip_swarm, force=force)

    results = runner.run(plan.only(None), work, what="class.up", parallel=bound, say=say,
                         log_dir=record.directory / "logs", gate=gate, release=gate.release)
    finish(results, "class.up", record, "rerun `invoke class.up --roster FILE` to finish")


def _short(text: str, width: int = 72) -> str:
    """A table cell's share of a long finding; --json has it whole."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _last_reset(entry: dict[str, Any]) -> str:
    reset = entry.get("reset")
    if not reset:
        return "-"
    return f"{reset['to']} {time.strftime('%Y-%m-%d %H:%M', time.localtime(reset['at']))}"


@task(name="status", help={"json": "print one JSON object", "provider": HELP_PROVIDER})
@user_errors
def status_(ctx: Context, json_: bool = False, provider: str | None = None) -> None:
    """Each student: nodes up, swarm state, the doctor's findings, last reset."""
    plan, record = open_class(ctx, provider)
    results = runner.run(plan.only(None), ops.status, what="class.status",
                         parallel=plan.settings.parallel, say=quiet,
                         log_dir=record.directory / "logs")
    rows = []
    for entry, result in zip(plan.labs, results, strict=True):
        value = result.value or {}
        recorded = record.students.get(entry.id, {})
        rows.append({
            "student": entry.id, "name": entry.student.name, "lab": entry.lab,
            "nodes_up": value.get("nodes_up"), "nodes_total": len(entry.spec.nodes),
            "swarm": value.get("swarm", "unknown"), "problems": value.get("problems", []),
            "doctor": value.get("doctor", []), "last_reset": recorded.get("reset"),
            "error": "" if result.ok else result.detail,
        })
    if json_:
        say(json.dumps({"class": plan.name, "provider": plan.base.provider, "students": rows},
                       indent=2))
        return
    table = [["student", "name", "lab", "nodes up", "swarm", "doctor", "last reset"]]
    for row in rows:
        if row["error"]:
            doctor = f"error: {row['error']}"
        elif row["doctor"]:
            doctor = f"{len(row['doctor'])}: {_short(row['doctor'][0])}"
        else:
            doctor = "ok" if row["nodes_up"] else "-"
        swarm_word = row["swarm"] + (f" ({'; '.join(row['problems'])})"
                                     if row["swarm"] == "partial" else "")
        table.append([row["student"], row["name"], row["lab"],
                      f"{row['nodes_up'] or 0}/{row['nodes_total']}", swarm_word, doctor,
                      _last_reset(record.students.get(row["student"], {}))])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for r in table:
        say("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]))
    say(f"class {plan.name} ({plan.base.provider}): {len(rows)} students")


@task(help={"student": HELP_STUDENT, "provider": HELP_PROVIDER, "parallel": HELP_PARALLEL,
            "to": "prepared (Docker, no swarm; default), swarm (a built swarm) or a snapshot"
                  " name (providers that can)"})
@user_errors
def reset(ctx: Context, student: str | None = None, to: str = "prepared",
          provider: str | None = None, parallel: int = 0) -> None:
    """Put labs back: prepared, a built swarm, or a snapshot; clocks made right first."""
    plan, record = open_class(ctx, provider)
    labs = plan.only(student)

    def work(entry: StudentLab, log: runner.Log) -> tuple[str, Any]:
        detail, value = ops.reset(entry, log, to=to)
        record.note(entry.id, "reset", to=to)
        return detail, value

    bound = parallel or plan.settings.parallel
    say(f"class {plan.name}: reset {len(labs)} labs to {to}, {bound} at a time")
    results = runner.run(labs, work, what="class.reset", parallel=bound, say=say,
                         log_dir=record.directory / "logs")
    finish(results, "class.reset", record, "rerun the same class.reset to finish")


@task(help={"name": "the snapshot's name, for a later class.reset --to NAME",
            "student": HELP_STUDENT, "provider": HELP_PROVIDER, "parallel": HELP_PARALLEL})
@user_errors
def snapshot(ctx: Context, name: str, student: str | None = None,
             provider: str | None = None, parallel: int = 0) -> None:
    """Snapshot students' labs (providers that can: incus, vagrant) to reset them to later."""
    plan, record = open_class(ctx, provider)

    def work(entry: StudentLab, log: runner.Log) -> tuple[str, Any]:
        return ops.snapshot(entry, log, name=name)

    results = runner.run(plan.only(student), work, what="class.snapshot",
                         parallel=parallel or plan.settings.parallel, say=say,
                         log_dir=record.directory / "logs")
    finish(results, "class.snapshot", record, "rerun the same class.snapshot")


@task(help={"provider": HELP_PROVIDER, "parallel": HELP_PARALLEL})
@user_errors
def down(ctx: Context, provider: str | None = None, parallel: int = 0) -> None:
    """Remove every student's lab (those who left the roster too), then the class record."""
    plan, record = open_class(ctx, provider, everyone=True)
    bound = parallel or plan.settings.parallel
    results = runner.run(plan.only(None), ops.down, what="class.down", parallel=bound,
                         say=say, log_dir=record.directory / "logs")
    finish(results, "class.down", record, "rerun `invoke class.down` to finish")
    if record.data.get("made_folders"):
        from ..classroom import vsphere

        kept = vsphere.after_down(plan.labs[0].spec, record.data["made_folders"])
        if kept:
            say("kept the class's VM folders (something else is in them): " + ", ".join(kept))
    record.remove()
    say(f"class {plan.name} is down")


@task(name="break", help={"failure": "the failure's name (see the failures' list)",
                          "student": HELP_STUDENT, "provider": HELP_PROVIDER})
@user_errors
def break_(ctx: Context, failure: str, student: str | None = None,
           provider: str | None = None) -> None:
    """Break students' labs on purpose, for them to find and fix."""
    plan, record = open_class(ctx, provider)

    def work(entry: StudentLab, log: runner.Log) -> tuple[str, Any]:
        return ops.break_(entry, log, failure=failure)

    results = runner.run(plan.only(student), work, what="class.break",
                         parallel=plan.settings.parallel, say=say,
                         log_dir=record.directory / "logs")
    finish(results, "class.break", record, "rerun the same class.break")


@task(help={"json": "print one JSON object", "provider": HELP_PROVIDER})
@user_errors
def check(ctx: Context, json_: bool = False, provider: str | None = None) -> None:
    """Grade: which students' labs are healthy (exit 0 only if every one is)."""
    plan, record = open_class(ctx, provider)
    results = runner.run(plan.only(None), ops.check, what="class.check",
                         parallel=plan.settings.parallel, say=quiet,
                         log_dir=record.directory / "logs")
    rows = [{"student": r.student, "healthy": bool(r.ok and r.value["healthy"]),
             "reasons": r.value["reasons"] if r.ok else [r.detail]} for r in results]
    healthy = sum(row["healthy"] for row in rows)
    if json_:
        say(json.dumps({"class": plan.name, "healthy": healthy, "total": len(rows),
                        "students": rows}, indent=2))
    else:
        width = max(len(row["student"]) for row in rows)
        for row in rows:
            verdict = "healthy" if row["healthy"] else "NOT healthy: " + "; ".join(row["reasons"])
            say(f"{row['student']:<{width}}  {verdict}")
        say(f"grade: {healthy}/{len(rows)} labs healthy")
    if healthy != len(rows):
        raise Exit(code=1)


@task(help={"out": "the HTML file to write (default: cards.html in the class's folder)",
            "provider": HELP_PROVIDER})
@user_errors
def cards(ctx: Context, out: str = "", provider: str | None = None) -> None:
    """Write the printable handout: one page per student (nodes, addresses, login, steps)."""
    plan, record = open_class(ctx, provider)
    path = class_cards.write(plan, Path(out) if out else record.directory / "cards.html")
    say(f"{len(plan.labs)} cards written to {path}: open it in a browser and print it")


namespace = Collection("class", up, status_, reset, snapshot, down, break_, check, cards)
