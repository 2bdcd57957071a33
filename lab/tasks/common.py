"""What every task shares: loading the lab, and turning user errors into one line and an exit."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke import Context
from invoke.exceptions import Exit

from ..config import load_spec
from ..context import Lab
from ..errors import LabError

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(body: F) -> F:
    """LabError -> its one line on stderr and a non-zero exit; never a traceback."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except LabError as exc:
            raise Exit(f"error: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit(
                "interrupted: what was made is recorded in the lab's state file;"
                " rerun the same command to finish the job",
                code=130,
            ) from None

    return wrapper  # type: ignore[return-value]


def open_lab(
    ctx: Context, provider: str | None = None, insecure: bool = False, log: Callable = print
) -> Lab:
    spec = load_spec(ctx, provider=provider)
    if insecure:
        from dataclasses import replace

        spec = replace(spec, provider_settings={**spec.provider_settings, "insecure": True})
    return Lab(spec, log=log)


def say(line: str) -> None:
    print(line, flush=True)


def err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
