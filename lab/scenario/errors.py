"""The scenario lane's user errors, each with its own exit status (see scenarios/README.md)."""

from __future__ import annotations

from ..errors import LabError

EXIT_PASSED = 0
EXIT_FAILED = 1  # a check failed, a wait or a command timed out, a step could not run
EXIT_BAD_SCENARIO = 2  # unknown scenario, malformed file
EXIT_UNAVAILABLE = 3  # nothing failed, but some checks could not run on this host
EXIT_LAB_NOT_READY = 4  # the lab is not what the scenario requires, or a name it needs is taken
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it


class ScenarioError(LabError):
    """A scenario that cannot be found or read; the message names the file and line."""

    exit_code = EXIT_BAD_SCENARIO


class LabNotReady(LabError):
    """The lab is not what the scenario requires; the message names the fix."""

    exit_code = EXIT_LAB_NOT_READY


class Occupied(LabError):
    """A name or port the scenario needs is held by something it did not make."""

    exit_code = EXIT_LAB_NOT_READY
