"""Errors a user can act on: each carries one line that says what is wrong and the fix."""


class LabError(Exception):
    """A fault the user can fix; tasks print its message as one line and exit non-zero."""

    exit_code = 1


class SpecError(LabError):
    """The lab file (or a flag that overrides it) holds a value that is not allowed."""

    exit_code = 2


class NodeError(LabError):
    """One node failed a step; the message names the node."""

    def __init__(self, node: str, message: str):
        super().__init__(f"{node}: {message}")
        self.node = node
