"""`failure.*`: the seed's failures on demand: break one, see Docker's error, read why,
fix it (the seed's way or the safe one), and see the lab healthy again."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from ..context import Lab
from ..doctor.text import language
from ..failures import FAILURES, get
from ..failures.base import Failure
from ..failures.show import Show
from .common import open_lab, say, user_errors

HELP_NAME = "a failure of `invoke failure.list`"
HELP_PROVIDER = "local (default), vagrant or vmware; overrides the lab file"
HELP_WAY = "seed (the seed's fix) or safe (the better one; the default where there are two)"
HELP_LANG = "en or zh (default: from LC_ALL / LANG)"


def _heading(show: Show, failure: Failure, lab: Lab, action: str) -> None:
    show.line(f"== {action} {failure.name}: {failure.title} ==")
    for part in textwrap.wrap(failure.teaches, 96):
        show.line(f"   {part}")
    show.line(f"   lab: {lab.spec.name} ({lab.spec.provider})")


@contextmanager
def _interruptible(name: str) -> Iterator[None]:
    """Ctrl-C in a break: what happened is recorded, and the fix is what finishes the job."""
    try:
        yield
    except KeyboardInterrupt:
        raise Exit(f"interrupted: {name} is recorded as broken; `invoke failure.fix {name}`"
                   " undoes whatever part of the break happened", code=130) from None


def _explain(show: Show, failure: Failure, lang: str) -> None:
    show.line()
    for part in failure.explain(lang).splitlines():
        show.line(part)
    show.line()


@task(name="list")
@user_errors
def list_(ctx: Context) -> None:
    """The failures: name, what it shows, and the fixes it has."""
    for name, cls in FAILURES.items():
        say(f"{name:<22} {cls.title} (fixes: {', '.join(cls.ways)})")


@task(name="explain", help={"name": HELP_NAME, "lang": HELP_LANG})
@user_errors
def explain(ctx: Context, name: str, lang: str = "") -> None:
    """The cause and the fix of a failure, in English or Chinese (原因分析 / 解决方法)."""
    say(get(name).explain(language(lang)))


@task(name="break", help={"name": HELP_NAME, "provider": HELP_PROVIDER})
@user_errors
def break_(ctx: Context, name: str, provider: str | None = None) -> None:
    """Break the lab on purpose and show Docker's own error; recorded until fixed."""
    failure = get(name)
    with open_lab(ctx, provider, log=say) as lab:
        failure.require(lab)
        show = Show()
        _heading(show, failure, lab, "break")
        with _interruptible(name):
            failure.break_(lab, show)
        show.line(f"broken: {name} (`invoke failure.explain {name}` says why,"
                  f" `invoke failure.fix {name}` puts it right)")


@task(help={"name": HELP_NAME, "way": HELP_WAY, "provider": HELP_PROVIDER})
@user_errors
def fix(ctx: Context, name: str, way: str = "", provider: str | None = None) -> None:
    """Undo a break, whole or interrupted, and verify the lab is healthy again."""
    failure = get(name)
    chosen = failure.way(way)
    with open_lab(ctx, provider, log=say) as lab:
        failure.require(lab)
        show = Show()
        _heading(show, failure, lab, f"fix ({chosen})")
        failure.fix(lab, show, chosen)
        show.line(f"fixed: {name}; lab {lab.spec.name} is healthy")


@task(help={"name": HELP_NAME, "way": HELP_WAY, "lang": HELP_LANG, "provider": HELP_PROVIDER})
@user_errors
def run(ctx: Context, name: str, way: str = "", lang: str = "",
        provider: str | None = None) -> None:
    """Break, show the error, explain, fix and verify: a whole lesson in one command."""
    failure = get(name)
    chosen = failure.way(way)  # before anything breaks: a wrong --way must not strand a lab
    words = language(lang)
    with open_lab(ctx, provider, log=say) as lab:
        failure.require(lab)
        show = Show()
        _heading(show, failure, lab, "run")
        with _interruptible(name):
            failure.break_(lab, show)
        _explain(show, failure, words)
        failure.fix(lab, show, chosen)
        show.line(f"== {name}: broken, explained, fixed ({chosen}); lab {lab.spec.name} is"
                  " healthy ==")


namespace = Collection("failure", list_, explain, break_, fix, run)
