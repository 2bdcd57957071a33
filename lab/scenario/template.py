"""`{{name}}` variables in scenario text, side by side with Docker's own Go templates.

Scenario commands are full of Docker `--format '{{.ID}}'` templates, so only a bare name
(`{{vip}}`, `{{images.busybox}}`) is ours; anything starting with a dot, holding a space or
being a Go template keyword is left for Docker untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

VAR_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*)\s*\}\}")
# Go template actions that are a bare word; they belong to Docker's --format, not to us.
GO_KEYWORDS = frozenset({"end", "else", "break", "continue", "nil"})

Value = str | list[str]


def references(text: str) -> list[str]:
    """The variable names `text` uses, in order of appearance."""
    return [m.group(1) for m in VAR_RE.finditer(text) if m.group(1) not in GO_KEYWORDS]


def quoted_references(text: str) -> list[str]:
    """The variable names `text` (a shell line) uses inside quotes.

    Values are shell-quoted where they go in; inside '...' or "..." that quoting would be
    undone (`'$(reboot)'` in single quotes is unquoted again), so there they are refused.
    """
    inside = _quoted_positions(text)
    return [m.group(1) for m in VAR_RE.finditer(text)
            if m.group(1) not in GO_KEYWORDS and inside[m.start()]]


def _quoted_positions(text: str) -> list[bool]:
    """For each character of a shell line: is it inside quotes (or escaped)?"""
    inside, quote, escaped = [], "", False
    for char in text:
        if escaped:
            inside.append(True)
            escaped = False
        elif quote == "'":
            inside.append(char != "'")
            quote = "" if char == "'" else quote
        elif char == "\\":
            inside.append(True)
            escaped = True
        elif quote == '"':
            inside.append(char != '"')
            quote = "" if char == '"' else quote
        elif char in "'\"":
            inside.append(False)
            quote = char
        else:
            inside.append(False)
    return inside


def as_text(value: Value) -> str:
    """A list (a capture of every match) reads as its values separated by spaces."""
    return " ".join(value) if isinstance(value, list) else value


def render(
    text: str, values: Mapping[str, Value], quote: Callable[[str], str] = lambda s: s
) -> str:
    """Put each variable's value in place; `quote` escapes values (re.escape for patterns).

    Every name was checked at load time, so a missing one here is a bug, hence KeyError.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in GO_KEYWORDS:
            return match.group(0)
        value = values[name]
        if isinstance(value, list):
            return " ".join(quote(item) for item in value)
        return quote(value)

    return VAR_RE.sub(replace, text)
