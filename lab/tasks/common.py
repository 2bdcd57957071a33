"""What every task shares: loading the lab, and turning user errors into one line and an exit."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke import Context
from invoke.exceptions import Exit, UnexpectedExit

from ..config import load_spec
from ..context import Lab
from ..errors import LabError, SpecError

F = TypeVar("F", bound=Callable[..., Any])
# Set to 1 to see the traceback of a fault swarmlab has no words for (a bug, or a library's
# error nobody wrapped yet) instead of its one line.
DEBUG_ENV = "SWARMLAB_DEBUG"
# Exit code of such a fault: EX_SOFTWARE, distinct from a user's mistake (1, 2).
BUG_EXIT = 70


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(text: str, limit: int = 300) -> str:
    """A message on one line: line breaks and runs of spaces become one space, cut at limit."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def unexpected(exc: BaseException) -> str:
    """The one line for a fault swarmlab has no words for, and how to see its traceback."""
    said = one_line(str(exc)) or "no message"
    return (f"error: unexpected {type(exc).__name__}: {said} (rerun with {DEBUG_ENV}=1 for the"
            " traceback, and report it if the lab file is right)")


def user_errors(body: F) -> F:
    """Every fault ends as one line on stderr and a non-zero exit, never a traceback.

    A LabError is the user's to fix and says how. Anything else is a fault swarmlab has no
    words for yet (a Docker SDK error, a timeout, a bug): its type and message on one line,
    and how to see the traceback, which SWARMLAB_DEBUG=1 lets through untouched.
    """

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except (Exit, SystemExit, UnexpectedExit):
            raise  # a task's own way out, or a local command's exit invoke reports itself
        except LabError as exc:
            raise Exit(f"error: {one_line(str(exc), limit=2000)}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit(
                "interrupted: what was made is recorded in the lab's state file;"
                " rerun the same command to finish the job",
                code=130,
            ) from None
        except Exception as exc:
            if debugging():
                raise
            raise Exit(unexpected(exc), code=BUG_EXIT) from None

    return wrapper  # type: ignore[return-value]


def open_lab(
    ctx: Context, provider: str | None = None, insecure: bool = False, log: Callable = print
) -> Lab:
    spec = load_spec(ctx, provider=provider)
    if insecure:
        if spec.provider != "vmware":
            # The flag's, not the lab file's: it would otherwise land in the provider's
            # section and read as "lab file: local.insecure is unknown".
            raise SpecError(
                f"--insecure is a flag for the vmware provider (it accepts vCenter's"
                f" self-signed certificate); lab {spec.name} uses provider {spec.provider}:"
                " leave --insecure out"
            )
        from dataclasses import replace

        spec = replace(spec, provider_settings={**spec.provider_settings, "insecure": True})
    return Lab(spec, log=log)


def say(line: str) -> None:
    print(line, flush=True)


def err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
