"""What a settings field may hold, checked in one place for every file a user writes.

The lab file, its `classroom:` section and the class roster all come from a user's editor,
and many of their values end up on a node's command line, in a container's name or in a
DNS label. Each check here takes the field's name as the user reads it ("lab file:
nodes[0].address", "roster r.csv row 3: subnet") and the raw value, and returns the value
in its plain form or raises SpecError with one line: "<field> is <value>; allowed: <what>".

Checks are small functions rather than a schema library: the messages are the product (one
line, the field, what is allowed), and a hand-sized module keeps them that way without a
dependency whose errors would need translating back into them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import SpecError

# Host names end up as container names, VM names, swarm node names and DNS labels.
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
NAME_ALLOWED = "2-32 characters of a-z, 0-9 and '-', starting with a letter"
# A login name as useradd takes it by default (NAME_REGEX of adduser.conf, plus '_').
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# A key naming a role in a mapping (images.busybox); scenarios refer to it as {{images.KEY}}.
KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")

# Docker's image reference grammar as the engine that saves the images here (20.10) parses
# it (docker/distribution reference, regexp.go and normalize.go), written out in Python.
# Nothing it accepts holds a space, a quote, '$', '`', ';', '|', '&' or a glob character
# (IPv6 registry hosts in brackets came with later engines, and 20.10 refuses them).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_RE = re.compile(rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH})(?::{_TAG})?"
                      rf"(?:@{_DIGEST})?", re.ASCII)
PATH_RE = re.compile(_PATH, re.ASCII)
IMAGE_NAME_MAX = 255  # the reference package's limit on the normalized name
IMAGE_ALLOWED = ("a Docker image reference such as swarmlab/busybox:latest or"
                 " registry.example.org:5000/team/busybox:1.36 (lower-case name, optional"
                 " :tag and @sha256:digest)")
# A key that can be named as `section.key` in a message as it is.
_PLAIN_KEY_RE = re.compile(r"^[\w.-]{1,40}$", re.ASCII)
# Control characters (a tab aside) break the one-line messages and the printed cards.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def shown(value: Any, limit: int = 60) -> str:
    """The value as the message shows it: repr (never a raw line break), cut to `limit`."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fault(field: str, value: Any, allowed: str) -> SpecError:
    return SpecError(f"{field} is {shown(value)}; allowed: {allowed}")


def choice(field: str, value: Any, allowed: Iterable[str]) -> str:
    options = tuple(allowed)
    if not isinstance(value, str) or value not in options:
        raise fault(field, value, ", ".join(options))
    return value


def whole(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise fault(field, value, f"a whole number from {low} to {high}")
    return value


# How a spreadsheet cell says yes or no (a YAML file says true/false itself).
BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def yes_no(field: str, value: Any) -> bool:
    """A yes/no from text (a roster cell) or a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in BOOLEAN_WORDS:
        return BOOLEAN_WORDS[value.strip().lower()]
    raise fault(field, value, ", ".join(BOOLEAN_WORDS))


def port(field: str, value: Any) -> int:
    return whole(field, value, 1, 65535)


def flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise fault(field, value, "true, false")
    return value


def name(field: str, value: Any, why: str = "") -> str:
    """A host-level name: node, lab, class (container, VM, swarm node and DNS label)."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise fault(field, value, NAME_ALLOWED + (f" ({why})" if why else ""))
    return value


def user(field: str, value: Any) -> str:
    if not isinstance(value, str) or not USER_RE.match(value):
        raise fault(field, value, "a login name of a-z, 0-9, '_' and '-' (at most 32,"
                    " not starting with a digit or '-')")
    return value


def key(field: str, value: Any) -> str:
    if not isinstance(value, str) or not KEY_RE.match(value):
        raise fault(field, value, "a key of letters, digits, '_' and '-', starting with a letter")
    return value


def image(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise fault(field, value, IMAGE_ALLOWED)
    match = IMAGE_RE.fullmatch(value)
    if match is None:
        raise fault(field, value, IMAGE_ALLOWED)
    domain, path = match.group("domain"), match.group("path")
    # As normalize.go splits a name: the first part is a registry only when it holds '.' or
    # ':' or is localhost; otherwise it is part of the (lower-case) path: UPPER/x is refused.
    registry = domain is not None and ("." in domain or ":" in domain or domain == "localhost")
    if domain and not registry and not PATH_RE.fullmatch(domain):
        raise fault(field, value, IMAGE_ALLOWED)
    # The length limit holds for the name as normalized: docker.io/library/busybox.
    if not registry:
        path = f"{domain}/{path}" if domain else path
        domain = "docker.io"
        path = path if "/" in path else f"library/{path}"
    if len(f"{domain}/{path}") > IMAGE_NAME_MAX:
        raise fault(field, value, IMAGE_ALLOWED)
    return value


def ipv4_address(field: str, value: Any) -> ipaddress.IPv4Address:
    # str() first: ipaddress would take a bare integer (YAML `address: 5`) as 0.0.0.5.
    if not isinstance(value, str):
        raise fault(field, value, "an IPv4 address")
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise fault(field, value, "an IPv4 address") from None


def ipv4_network(field: str, value: Any, example: str = "10.77.0.0/24") -> ipaddress.IPv4Network:
    allowed = f"an IPv4 network such as {example} (host bits zero)"
    if not isinstance(value, str):
        raise fault(field, value, allowed)
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise fault(field, value, allowed) from None


def path(field: str, value: Any) -> str:
    """A file system path on the controller: text on one line."""
    if not isinstance(value, str) or not value.strip() or _CONTROL_RE.search(value):
        raise fault(field, value, "a path (text on one line)")
    return value


def line(field: str, value: Any) -> str:
    """Free text shown to people (a student's name, a note): one line, no control characters."""
    if not isinstance(value, str) or _CONTROL_RE.search(value):
        raise fault(field, value, "text on one line")
    return value


def member(field: str, key: str) -> str:
    """How a message names a key of a section: `section.key`, or the key quoted when it is as
    odd as "\n" (so the message stays one line)."""
    return f"{field}.{key}" if _PLAIN_KEY_RE.match(key) else f"{field} key {shown(key)}"


def mapping(field: str, value: Any, allowed: Iterable[str] | None = None,
            what: str = "a mapping") -> dict[str, Any]:
    """A mapping with text keys; with `allowed`, the first unknown key is named."""
    if not isinstance(value, Mapping):
        raise SpecError(f"{field} must be {what}")
    odd = sorted((k for k in value if not isinstance(k, str)), key=repr)
    if odd:
        raise SpecError(f"{field} has a key {shown(odd[0])}; keys are names (text)")
    if allowed is not None:
        known = tuple(allowed)
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise SpecError(f"{member(field, unknown[0])} is unknown; allowed: "
                            + ", ".join(known))
    return dict(value)
