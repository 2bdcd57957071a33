"""`scenario.*`: list the teaching scenarios and run one on the lab.

Exit status of `scenario.run`: 0 every check passed; 1 a check failed (or a wait, a command
or a step timed out or could not run); 2 unknown scenario or malformed file; 3 nothing
failed but some checks could not run on this host (e.g. no IPVS in the kernel); 4 the lab
is not what the scenario needs, or a name or port it needs is held by something it did not
make (--clean removes that first); 130 interrupted. See scenarios/README.md.
"""

from __future__ import annotations

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from ..config import project_dir, runtime_path
from ..scenario import catalog, journal, loader
from ..scenario.display import Console
from ..scenario.errors import ScenarioError
from ..scenario.runner import Options, Runner
from .common import open_lab, say, user_errors

HELP_PROVIDER = "local (default), vagrant or vmware; overrides the lab file"


@task(name="list")
@user_errors
def list_(ctx: Context) -> None:
    """The scenarios in scenarios/: name, title, steps, and whether some checks need IPVS."""
    paths = catalog.files(project_dir(ctx))
    if not paths:
        say(f"no scenarios in {project_dir(ctx) / catalog.FOLDER}")
    broken = 0
    for path in paths:
        try:
            scenario = loader.load(path)
        except ScenarioError as exc:
            broken += 1
            say(f"{path.stem:<16} BROKEN: {exc}")
            continue
        extra = f"; needs {', '.join(sorted(scenario.features()))} for some checks" if (
            scenario.features()) else ""
        say(f"{scenario.name:<16} {scenario.title} ({len(scenario.steps)} steps{extra})")
    if broken:
        raise ScenarioError(f"{broken} scenario file(s) are malformed (see above)")


@task(
    help={
        "name": "a scenario of scenarios/ (see scenario.list), or a path to a .yaml file",
        "step": "pause before each step (Enter runs it, q stops; cleanup still runs)",
        "json": "write a JSON journal of every step to this file",
        "junit": "write JUnit XML (one test case per check) to this file, for a grader",
        "provider": HELP_PROVIDER,
        "clean": "first remove what holds a name or port the scenario needs but was not made"
                 " by it (without: the run stops and names it)",
    }
)
@user_errors
def run(
    ctx: Context,
    name: str,
    step: bool = False,
    json_: str = "",
    junit: str = "",
    provider: str | None = None,
    clean: bool = False,
) -> None:
    """Run a scenario: each command as typed at its node's prompt, its output, a mark per check."""
    scenario = loader.load(catalog.find(project_dir(ctx), name))
    # The command that makes this lab what scenarios need, with the options in use here.
    lab_file = runtime_path(ctx)
    fix = " ".join(
        ["invoke", *(["-f", lab_file] if lab_file else []), "lab.up",
         *(["--provider", provider] if provider else [])]
    )
    with open_lab(ctx, provider, log=say) as lab:
        options = Options(step_mode=step, fix=fix, clean=clean)
        record = Runner(scenario, lab, Console(), options).run()
    if json_:
        journal.write_json(record, json_)
    if junit:
        journal.write_junit(record, junit)
    if record.exit_code:
        # The closing line is already on screen; only the status is left to give.
        raise Exit(code=record.exit_code)


namespace = Collection("scenario", list_, run)
