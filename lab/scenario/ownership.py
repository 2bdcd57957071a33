"""What a scenario makes is marked as its own, and only what carries that mark is removed.

A lab belongs to its students: a service `whoami` they made by hand must survive a lesson
that also makes a `whoami`. So every `docker service|network|secret|config create` a step
runs gets the label `swarmlab.scenario=<name>` (services also on their containers), and
cleanup removes by that label alone. Before step 1 the names and published ports the steps
will take are looked up on a manager: one held by something without the label stops the run
with the command that frees it, unless the teacher passed --clean.

The names and ports are read from the steps' own commands (`--name`, `--publish`, a
network's name), so a scenario file declares nothing twice. A name built from a value only
known at run time cannot be read ahead: its step then fails on "already exists", which
removes nothing.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from .model import Check, Step, Target, Wait, Where

LABEL_KEY = "swarmlab.scenario"
# Swarm-wide objects: a manager lists and removes them all.
KINDS = ("service", "network", "secret", "config")
CREATE_RE = re.compile(r"\bdocker\s+(service|network|secret|config)\s+create\b")
# Options of `docker KIND create` (Docker 20.10) that take no value; every other option
# takes one, so the first other word is the object's name (or, for a service, its image).
FLAGS = {
    "service": {"-d", "--detach", "--init", "--no-healthcheck", "--no-resolve-image",
                "-q", "--quiet", "--read-only", "-t", "--tty", "--with-registry-auth"},
    "network": {"--attachable", "--config-only", "--ingress", "--internal", "--ipv6"},
    "secret": set(),
    "config": set(),
}
SEPARATORS = set("();<>|&\n")


def label(scenario: str) -> str:
    return f"{LABEL_KEY}={scenario}"


def labelled(command: str, scenario: str) -> str:
    """`command` with the scenario's label on everything it creates.

    Inserted right after `docker KIND create`, so the class sees it in the command shown.
    The scenario's name was checked by the loader (letters, digits, `.`, `_`, `-`).
    """

    def add(match: re.Match[str]) -> str:
        mark = label(scenario)
        extra = f" --label {mark}"
        if match.group(1) == "service":
            extra += f" --container-label {mark}"
        return match.group(0) + extra

    return CREATE_RE.sub(add, command)


@dataclass
class Creates:
    """What a scenario's steps create: the kinds, and the names and ports known ahead."""

    kinds: set[str] = field(default_factory=set)
    names: dict[str, list[str]] = field(default_factory=dict)  # kind -> names
    ports: list[int] = field(default_factory=list)  # published ports of its services

    def add(self, kind: str, name: str) -> None:
        known = self.names.setdefault(kind, [])
        if name not in known:
            known.append(name)


def simple_commands(text: str) -> Iterator[list[str]]:
    """The words of each simple command of a shell line (split at ; && || | ( ) and new
    lines, quotes respected). A line the shell could not parse either yields nothing more.
    A quoted word made only of those characters reads as one of them: no Docker name can be
    such a word, so nothing is lost."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    words: list[str] = []
    try:
        for token in lexer:
            if token and set(token) <= SEPARATORS:
                if words:
                    yield words
                words = []
            else:
                words.append(token)
    except ValueError:
        return  # an unclosed quote: the step will fail as it would in a terminal
    if words:
        yield words


def _known(word: str) -> bool:
    """A word fixed when the file is read (no value of the run, no shell expansion)."""
    return bool(word) and "{{" not in word and "$" not in word and "`" not in word


def _published(value: str) -> int | None:
    """The published port of a --publish value: 1000:8000, 1000:8000/udp, published=1000,..."""
    if "=" in value:
        fields = dict(part.partition("=")[::2] for part in value.split(","))
        port = fields.get("published", "")
    else:
        port, colon, _ = value.partition(":")
        if not colon:
            return None  # a target port only: swarm picks the published one
    return int(port) if port.isdigit() and 0 < int(port) < 65536 else None


def _arguments(kind: str, words: list[str]) -> Iterator[tuple[str, str]]:
    """(option, value) pairs up to the first positional word, then ("", that word)."""
    index = 0
    while index < len(words):
        word = words[index]
        if not word.startswith("-") or word == "-":
            yield "", word
            return
        option, equals, value = word.partition("=")
        if equals:
            yield option, value
        elif not word.startswith("--") and len(word) > 2:
            # -p1000:8000, or flags run together (-dq)
            yield (word[:2], "") if word[:2] in FLAGS[kind] else (word[:2], word[2:])
        elif word in FLAGS[kind]:
            yield word, ""
        elif index + 1 < len(words):
            index += 1
            yield word, words[index]
        index += 1


def creations(commands: Iterable[str]) -> Creates:
    """Read what these (partly rendered) step commands create."""
    found = Creates()
    for text in commands:
        for words in simple_commands(text):
            for start in range(len(words) - 2):
                kind = words[start + 1]
                if words[start] != "docker" or kind not in KINDS or words[start + 2] != "create":
                    continue
                found.kinds.add(kind)
                for option, value in _arguments(kind, words[start + 3:]):
                    if kind == "service" and option == "--name" and _known(value):
                        found.add(kind, value)
                    elif kind == "service" and option in ("-p", "--publish"):
                        port = _published(value)
                        if port is not None and port not in found.ports:
                            found.ports.append(port)
                    elif kind != "service" and option == "" and _known(value):
                        found.add(kind, value)
    return found


# --- what is in the way ---------------------------------------------------------------------
# Per kind, one line per object: name, the scenario label (empty if none), published ports.
_FORMATS = {
    "service": "{{.Spec.Name}}\t{{index .Spec.Labels \"%s\"}}\t{{range .Endpoint.Spec.Ports}}"
               "{{.PublishedPort}}:{{.TargetPort}}/{{.Protocol}} {{end}}",
    "network": "{{.Name}}\t{{index .Labels \"%s\"}}\t",
    "secret": "{{.Spec.Name}}\t{{index .Spec.Labels \"%s\"}}\t",
    "config": "{{.Spec.Name}}\t{{index .Spec.Labels \"%s\"}}\t",
}


@dataclass(frozen=True)
class InTheWay:
    """Something the scenario needs, held by an object that does not carry its label."""

    kind: str  # service, network, secret, config; port (a service's) or container (a port's)
    name: str  # the object's name; for a port, the service that publishes it
    what: str  # as the teacher reads it: "service whoami", "port 1000 (service web)"
    free: str = ""  # port and container: the command that frees it, keeping the object
    node: str = ""  # a container's node; the rest are asked of and freed on a manager


def probe_command(creates: Creates) -> str:
    """One read-only command for a manager that lists every object of the kinds that matter."""
    kinds = [kind for kind in KINDS if creates.names.get(kind)]
    if creates.ports and "service" not in kinds:
        kinds.insert(0, "service")
    return "; ".join(
        f"echo '#{kind}'; docker {kind} ls -q | xargs -r docker {kind} inspect --format"
        f" {shlex.quote(_FORMATS[kind] % LABEL_KEY)}"
        for kind in kinds
    )


def in_the_way(listing: str, creates: Creates, scenario: str) -> list[InTheWay]:
    """What of `listing` (probe_command's output) holds a name or port the scenario needs."""
    held: dict[str, dict[str, tuple[str, list[str]]]] = {}  # kind -> name -> (label, ports)
    kind = ""
    for line in listing.splitlines():
        if line.startswith("#"):
            kind = line[1:].strip()
            continue
        name, _, rest = line.partition("\t")
        owner, _, ports = rest.partition("\t")
        if kind in KINDS and name:
            held.setdefault(kind, {})[name] = (owner.strip(), ports.split())
    found = []
    for kind in KINDS:
        for name in creates.names.get(kind, []):
            owner = held.get(kind, {}).get(name, (scenario, []))[0]
            if owner != scenario:
                made = f", made by scenario {owner}" if owner else ""
                found.append(InTheWay(kind, name, f"{kind} {name}{made}"))
    removed = {way.name for way in found if way.kind == "service"}
    for service, (owner, ports) in held.get("service", {}).items():
        if owner == scenario or service in removed:
            continue
        for port in ports:
            published, _, rest = port.partition(":")
            target, _, protocol = rest.partition("/")
            if published.isdigit() and int(published) in creates.ports:
                spec = f"published={published},target={target}" + (
                    f",protocol={protocol}" if protocol and protocol != "tcp" else "")
                found.append(InTheWay(
                    "port", service, f"port {published} (published by service {service})",
                    f"docker service update --detach --publish-rm {shlex.quote(spec)}"
                    f" {shlex.quote(service)}"))
    return found


# Each container on a node: name, its swarm service (empty for a plain container), ports.
CONTAINERS = ("docker ps --format"
              " '{{.Names}}\t{{.Label \"com.docker.swarm.service.name\"}}\t{{.Ports}}'")
HOST_PORT_RE = re.compile(r":(\d+)->")  # 0.0.0.0:1001->8000/tcp


def containers_in_the_way(listing: str, node: str, creates: Creates) -> list[InTheWay]:
    """Plain containers of `node` (CONTAINERS' output) publishing a port the scenario needs.

    A swarm task's ports are its service's, looked at on the manager; a plain container
    (`docker run -p`) holds the port on its node only, where a host-mode task or the mesh
    would need it. `docker stop` frees it and keeps the container.
    """
    found = []
    for line in listing.splitlines():
        name, _, rest = line.partition("\t")
        service, _, ports = rest.partition("\t")
        held = sorted({int(port) for port in HOST_PORT_RE.findall(ports)} & set(creates.ports))
        if name and not service and held:
            shown = ", ".join(map(str, held))
            found.append(InTheWay(
                "container", name,
                f"port{'s' if len(held) > 1 else ''} {shown} (published by container {name}"
                f" on {node})", f"docker stop {shlex.quote(name)}", node))
    return found


def refusal(found: list[InTheWay], manager: str) -> str:
    """The one line that stops a run: what is in the way, and the commands that free it."""
    them = "it" if len(found) == 1 else "them"
    nodes = dict.fromkeys(way.node or manager for way in found)
    where = " and ".join(
        f"`{freeing([way for way in found if (way.node or manager) == node])}` on {node}"
        for node in nodes
    )
    return (
        f"{', '.join(way.what for way in found)}: in the way, not made by this scenario;"
        f" free {them} with {where}, or rerun with --clean to let the scenario do it"
    )


def freeing(found: list[InTheWay]) -> str:
    """One shell line that frees everything found (on one node): removals by kind, then
    ports."""
    removals = []
    for kind in KINDS:
        names = [shlex.quote(way.name) for way in found if way.kind == kind]
        if names:
            removals.append(f"docker {kind} rm {' '.join(names)}")
    return " && ".join(removals + [way.free for way in found if way.free])


# --- the steps that remove ---------------------------------------------------------------
# A network stays in use until the tasks of the services just removed are gone, and a swarm
# network is deleted a moment after `docker network rm` returns: these steps run until
# nothing is left (a next step 1 creating the same name would fail otherwise).
SETTLE_SECONDS = 30


def _step(name: str, where: Where, run: str, say: str, settle: bool) -> Step:
    # Docker's own errors start with "Error"; with `rm; ls` the exit status is the ls's.
    checks = (Check("exit", where, code="any"),
              Check("no_match", where, pattern=r"^Error", label="no error"),
              Check("no_match", where, pattern=r"^left: ", label="nothing of it is left"))
    wait = Wait("success", where, SETTLE_SECONDS) if settle else None
    return Step(name=name, where=where, target=Target("manager"), run=run, say=say,
                wait=wait, checks=checks)


def sweep(scenario: str, kinds: set[str], where: Where) -> tuple[Step, ...]:
    """Steps that remove every object carrying the scenario's label, and nothing else."""
    mark = label(scenario)
    say = f"Only what carries the label {mark}: what this scenario made, nothing else."

    def remove(kind: str) -> str:
        listing = f"docker {kind} ls --filter label={mark} --format"
        return (f"{listing} '{{{{.Name}}}}' | xargs -r docker {kind} rm;"
                f" {listing} 'left: {{{{.Name}}}}'")

    steps = []
    if "service" in kinds:
        steps.append(_step("Remove the services this scenario made", where,
                           remove("service"), say, settle=False))
    rest = [kind for kind in KINDS[1:] if kind in kinds]
    if rest:
        plural = ", ".join(f"{kind}s" for kind in rest)
        steps.append(_step(f"Remove the {plural} this scenario made", where,
                           "; ".join(map(remove, rest)), say, settle=True))
    return tuple(steps)


def clearing(found: list[InTheWay], where: Where) -> tuple[Step, ...]:
    """The --clean steps: free every name and port in the way, services first."""
    say = "--clean: these were not made by this scenario, and it needs their names or ports."
    first = [way for way in found if way.kind in ("service", "port")]
    rest = [way for way in found if way.kind in KINDS[1:]]
    steps = []
    if first:
        steps.append(_step("Free the service names and ports in the way", where,
                           freeing(first), say, settle=False))
    for node in dict.fromkeys(way.node for way in found if way.kind == "container"):
        mine = [way for way in found if way.kind == "container" and way.node == node]
        steps.append(replace(_step(f"Free the ports held by containers on {node}", where,
                                   freeing(mine), say, settle=False),
                             target=Target("node", node)))
    if rest:
        # As inspect finds it, so that a rerun after the removal has nothing to fail on.
        def remove(way: InTheWay) -> str:
            field = ".Name" if way.kind == "network" else ".Spec.Name"
            inspect = f"docker {way.kind} inspect {shlex.quote(way.name)} --format"
            return (f"{inspect} '{{{{{field}}}}}' 2>/dev/null | xargs -r docker {way.kind} rm;"
                    f" {inspect} 'left: {{{{{field}}}}}' 2>/dev/null")

        steps.append(_step("Free the other names in the way", where,
                           "; ".join(map(remove, rest)), say, settle=True))
    return tuple(steps)
