"""How a failure looks on the projector: each command behind its node's prompt as a teacher
would type it (printed before it runs, so a slow join is seen while it waits), Docker's own
output under it, and a mark where Docker said what the lesson expects. The scenario
engine's console draws lines and marks, so scenarios and failures look alike.

Join tokens never appear: commands that carry one are shown with `<worker-token>` and
output is redacted by lab.remote.
"""

from __future__ import annotations

import textwrap

from ..remote import CommandResult, Node, redact
from ..scenario.display import Console
from ..scenario.results import FAILED, PASSED, CheckResult


def said_any(output: str, stable: str | tuple[str, ...]) -> bool:
    """True if `output` holds `stable` (or one of them), in any case."""
    parts = (stable,) if isinstance(stable, str) else stable
    return any(part.lower() in output.lower() for part in parts)


class Show:
    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.misses: list[str] = []  # expected words Docker did not say

    def line(self, text: str = "") -> None:
        self.console.line(text)

    def say(self, text: str) -> None:
        for part in textwrap.wrap(text, 94):
            self.console.line(f"# {part}")

    def run(self, node: Node, command: str, *, shown: str | None = None,
            timeout: int = 60) -> CommandResult:
        self.prompt(node, redact(shown if shown is not None else command))
        result = node.run(command, timeout=timeout, shown=shown)
        self.output(result)
        return result

    def prompt(self, node: Node, command: str) -> None:
        self.console.line(f"{node.name}$ {command}")

    def output(self, result: CommandResult) -> None:
        if result.output:
            self.console.line(result.output)

    def expect(self, result: CommandResult, stable: str | tuple[str, ...], label: str) -> bool:
        """Mark whether Docker's output holds the stable part of the text the lesson is about;
        where Docker's words changed between versions, `stable` holds one part per version."""
        if said_any(result.output, stable):
            self.console.check(CheckResult(label, PASSED))
            return True
        wanted = " or ".join(map(repr, (stable,) if isinstance(stable, str) else stable))
        said = result.output.splitlines()[-1] if result.output else "no output"
        self.console.check(CheckResult(label, FAILED, f"expected {wanted}; got: {said}"))
        self.misses.append(wanted)
        return False

    def passed(self, label: str, detail: str = "") -> None:
        self.console.check(CheckResult(label, PASSED, detail))
