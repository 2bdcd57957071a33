"""What a user writes never reaches a node's shell unchecked, and never ends in a traceback.

Property-based (hypothesis): random lab files, class sections and rosters are either taken or
refused with one line naming the field. For lab files that are taken, the prepare steps and
the failures' break and fix commands are driven through a recording stand-in for a node, and
every command it was asked to run is lexed as sh would: no value that came from the lab file,
or from a node's own output read back (join tokens, node IDs), may be live shell syntax.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import ipaddress
import json
import shlex
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lab.classroom.plan import make_plan
from lab.classroom.record import ClassRecord
from lab.classroom.roster import COLUMNS, read_roster
from lab.classroom.settings import parse_settings
from lab.errors import LabError, NodeError, SpecError
from lab.failures import already_in_swarm, clock_skew_ca, firewall_blocks_join, swarmops
from lab.failures.non_overlay_network import NonOverlayNetwork
from lab.failures.show import Show
from lab.prepare import docker, facts, firewall, images, selinux, timesync
from lab.remote import CommandResult, Node
from lab.scenario.display import Console
from lab.spec import LAB_DEFAULTS, LabSpec, NodeSpec, parse_spec

pytestmark = pytest.mark.unit

BOUNDED = settings(max_examples=200, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# --- how sh reads a command line --------------------------------------------------------------
# Outside quotes these end a word and start an operator; newline ends a command.
OPERATORS = set(";|&<>()\n")
# Outside quotes these expand (parameters, commands, globs, braces, home): live syntax.
EXPANDING = set("$`*?[]{}~")
# Inside double quotes only these stay live.
LIVE_IN_DOUBLE = set("$`")

Word = list[tuple[str, bool]]  # each character after quote removal, and whether sh acts on it


def sh_words(command: str) -> list[Word]:
    """The words sh makes of `command` (operators are words of their own), each character
    marked live when sh would expand it. Raises ValueError on an unterminated quote."""
    words: list[Word] = []
    current: Word = []
    started = False
    i = 0

    def end() -> None:
        nonlocal current, started
        if started:
            words.append(current)
        current, started = [], False

    while i < len(command):
        char = command[i]
        if char == "'":
            close = command.find("'", i + 1)
            if close < 0:
                raise ValueError(f"unterminated ' in {command!r}")
            current += [(c, False) for c in command[i + 1:close]]
            started, i = True, close + 1
        elif char == '"':
            i += 1
            while True:
                if i >= len(command):
                    raise ValueError(f'unterminated " in {command!r}')
                c = command[i]
                if c == '"':
                    break
                if c == "\\" and i + 1 < len(command) and command[i + 1] in '$`"\\\n':
                    current.append((command[i + 1], False))
                    i += 2
                    continue
                current.append((c, c in LIVE_IN_DOUBLE))
                i += 1
            started, i = True, i + 1
        elif char == "\\":
            if i + 1 >= len(command):
                raise ValueError(f"trailing backslash in {command!r}")
            current.append((command[i + 1], False))
            started, i = True, i + 2
        elif char in " \t":
            end()
            i += 1
        elif char in OPERATORS:
            end()
            words.append([(char, True)])
            i += 1
        else:
            current.append((char, char in EXPANDING or (char == "#" and not started)))
            started, i = True, i + 1
    end()
    return words


def test_the_lexer_reads_quotes_as_sh_does() -> None:
    """The checker itself: quoted values are literal, unquoted syntax is live."""
    def text(word: Word) -> str:
        return "".join(c for c, _ in word)

    assert [text(w) for w in sh_words("echo 'a;b' \"c d\" e\\ f")] == ["echo", "a;b", "c d", "e f"]
    assert [text(w) for w in sh_words("a;b|c")] == ["a", ";", "b", "|", "c"]
    assert all(not live for _, live in sh_words(shlex.quote("$(reboot)`x`"))[0])
    assert any(live for _, live in sh_words('"$(reboot)"')[0])
    assert any(live for _, live in sh_words("x`reboot`")[0])
    for bad in ("'open", '"open', "end\\"):
        with pytest.raises(ValueError):
            sh_words(bad)


# A value read back from a node is hostile when it holds one of these right before the mark.
MARK = "PWNED"
METAS = ("$(", "`", ";", "|", "&", "'", '"', " ", "\n", "*", "[", "\\", "#", "~", "{", ">", "<",
         "(")


def marked_values_are_literal(command: str) -> list[str]:
    """Faults: places where a hostile value's metacharacter before MARK is live or split off."""
    faults = []
    for word in sh_words(command):
        text = "".join(c for c, _ in word)
        start = text.find(MARK)
        while start >= 0:
            before = [meta for meta in METAS if text[:start].endswith(meta)]
            if not before:
                faults.append(f"{MARK} split from its metacharacter in {command!r}")
            elif any(live for _, live in word[start - len(before[0]):start]):
                faults.append(f"{before[0]!r} before {MARK} is live in {command!r}")
            start = text.find(MARK, start + 1)
    return faults


def value_is_literal(command: str, value: str) -> list[str]:
    """Faults: each time `value` is in the command's text, it must be one literal piece of a word
    (a value of the lab file holds no quote, so shlex.quote leaves its text as it is)."""
    raw = command.count(value)
    if not raw or "'" in value:
        return []
    literal = 0
    for word in sh_words(command):
        text = "".join(c for c, _ in word)
        start = text.find(value)
        while start >= 0:
            span = word[start:start + len(value)]
            if any(live for _, live in span):
                return [f"{value!r} is live shell syntax in {command!r}"]
            literal += 1
            start = text.find(value, start + 1)
    return [] if literal >= raw else [f"{value!r} is split by the shell in {command!r}"]


# --- a recording stand-in for a node, and a lab around it ---------------------------------------
Answer = Callable[["RecordingNode", str], tuple[int, str]]


class RecordingNode:
    """Stands for a Node: records every command it is asked to run and answers from a script,
    so prepare steps and failure commands can be read without machines."""

    def __init__(self, spec: NodeSpec, answer: Answer):
        self.spec = spec
        self.answer = answer
        self.commands: list[str] = []

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def address(self) -> str:
        return self.spec.address

    def run(self, command: str, *, timeout: float | None = None, check: bool = False,
            shown: str | None = None, stdin: str | None = None,
            reveal: bool = False) -> CommandResult:
        self.commands.append(command)
        code, stdout = self.answer(self, command)
        result = CommandResult(shown or command, code, stdout, "")
        if check and code:
            raise NodeError(self.name, f"`{result.command}` exited {code}")
        return result

    def write_file(self, remote_path: str, content: str, mode: str = "0644") -> None:
        Node.write_file(self, remote_path, content, mode)  # type: ignore[arg-type]

    def put(self, local_path: Path, remote_path: str) -> None:
        self.commands.append(f"put {shlex.quote(str(local_path))} {shlex.quote(remote_path)}")

    def stream(self, local_path: Path, command: str, timeout: int) -> None:
        self.commands.append(command)


class RecordingProvider:
    owns_clock = True

    def advertise_address(self, node: NodeSpec) -> str:
        return node.address


class RecordingLab:
    """What the failures use of a Lab: the spec, the provider's addresses, its nodes."""

    def __init__(self, spec: LabSpec, answer: Answer):
        self.spec = spec
        self.provider = RecordingProvider()
        self._nodes = {n.name: RecordingNode(n, answer) for n in spec.nodes}

    def node(self, name: str) -> RecordingNode:
        return self._nodes[name]

    def nodes(self) -> list[RecordingNode]:
        return list(self._nodes.values())

    def managers(self) -> list[RecordingNode]:
        return [self._nodes[n.name] for n in self.spec.managers]

    def commands(self) -> Iterator[str]:
        for node in self._nodes.values():
            yield from node.commands


def scripted(hostile: str, *, package_manager: str = "apt-get") -> Answer:
    """Answers that walk every branch that changes something, with `hostile` in every value a
    later command reads back: join tokens, node IDs and host names, package manager names."""

    def answer(node: RecordingNode, command: str) -> tuple[int, str]:
        if "os-release" in command:
            return 0, f"os=Any\nid=any\npm={package_manager}\ninit=systemd\n"
        if command.startswith("command -v"):
            return (1 if "dockerd" in command or "chronyd" in command else 0), ""
        if command.startswith(("cat ", "systemctl is-")):
            return 1, ""
        if "docker version" in command:
            return 0, "20.10.24\n"
        if command.startswith("date +%s"):
            return 0, "0.0\n"
        if command == "firewall-cmd --state":
            return 0, "running"
        if command.startswith(("firewall-cmd --permanent --query", "iptables -C")):
            return 1, ""
        if command == "getenforce":
            return 0, "Enforcing\n"
        if "image inspect" in command:
            return 0, "missing\n"
        if command.startswith("docker swarm join-token"):
            return 0, f"SWMTKN-1-{hostile}\n"
        if command.startswith("docker info"):
            return 0, json.dumps({
                "LocalNodeState": "active", "NodeID": f"own-{node.name}",
                "Cluster": {"ID": "c1"}, "ControlAvailable": node.role == "manager",
                "NodeAddr": node.address,
                # Raft members nobody answers for: the quorum is lost, --force-new-cluster runs.
                "RemoteManagers": [{"Addr": "192.0.2.1:2377"}, {"Addr": "192.0.2.2:2377"}]})
        if command.startswith("docker node ls"):
            return 0, "\n".join(json.dumps({
                "ID": f"{hostile}{n.name}", "Hostname": n.name, "Status": "Down",
                "Availability": "Active", "ManagerStatus": "Unreachable" if n.role == "manager"
                else ""}) for n in node_specs)
        if command == "docker swarm ca":
            return 0, "notBefore=Jan  1 00:00:00 2030 GMT\nnotAfter=Jan  1 00:00:00 2040 GMT\n"
        if "--format '{{.Replicas}}'" in command:
            return 0, "1/1\n"
        if "network inspect" in command:
            return 0, "bridge\n"
        return 0, ""

    node_specs: list[NodeSpec] = []
    answer.nodes = node_specs  # type: ignore[attr-defined]
    return answer


def recording_lab(spec: LabSpec, hostile: str) -> RecordingLab:
    answer = scripted(hostile)
    answer.nodes.extend(spec.nodes)  # type: ignore[attr-defined]
    return RecordingLab(spec, answer)


def drive_prepare(spec: LabSpec, hostile: str) -> list[str]:
    """Every prepare step on the first node, down the branches that change things, for both
    package families; the commands the node was asked to run."""
    commands: list[str] = []
    for pm in ("apt-get", "dnf"):
        answer = scripted(hostile, package_manager=pm)
        node = RecordingNode(spec.nodes[0], answer)
        found = facts.gather(node)  # type: ignore[arg-type]
        docker.converge(node, found, 60)  # type: ignore[arg-type]
        timesync.converge(node, found, True, True, 60)  # type: ignore[arg-type]
        for policy in ("open-ports", "disable"):
            firewall.converge(node, policy)  # type: ignore[arg-type]
        selinux.converge(node, "permissive")  # type: ignore[arg-type]
        bundle = images.ImageBundle({name: f"sha256:{i}" for i, name in
                                     enumerate(spec.images.values())}, Path("/nonexistent"))
        images.converge(node, bundle)  # type: ignore[arg-type]
        commands += node.commands
    return commands


def drive_failures(spec: LabSpec, hostile: str) -> list[str]:
    """The failures' break and fix commands, as run on nodes, plus the ones they only build."""
    lab = recording_lab(spec, hostile)
    show = Show(Console(io.StringIO()))
    address = lab.provider.advertise_address
    plans = [clock_skew_ca.break_plan(spec, address), clock_skew_ca.fix_plan(spec, "seed", address),
             clock_skew_ca.fix_plan(spec, "safe", address)]
    for plan in plans:
        # A step the script answers "no" to ends a plan: the commands before it are recorded.
        with contextlib.suppress(LabError):
            clock_skew_ca.run_plan(lab, show, plan)  # type: ignore[arg-type]
    first, last = lab.node(spec.nodes[0].name), lab.node(spec.nodes[-1].name)
    swarmops.join(lab, show, last, first, "worker", swarmops.token(first, "worker"))  # type: ignore[arg-type]
    swarmops.restore_quorum(lab, show, first)  # type: ignore[arg-type]
    for force in (True, False):
        swarmops.drop_stale(lab, show, first, force=force)  # type: ignore[arg-type]
    if len(spec.managers) == 2:
        failure = already_in_swarm.AlreadyInSwarm()
        survivor, node = failure._pair(lab, {})  # type: ignore[arg-type]
        failure._safe(lab, show, survivor, node)  # type: ignore[arg-type]
    blocks = firewall_blocks_join.FirewallBlocksJoin()
    blocks._safe(show, first)  # type: ignore[arg-type]
    blocks._seed(show, first)  # type: ignore[arg-type]
    overlay = NonOverlayNetwork()
    overlay.do_fix(lab, show, "seed", {})  # type: ignore[arg-type]
    return [*lab.commands(), overlay._service_command(lab),  # type: ignore[arg-type]
            overlay._api_request(lab)]  # type: ignore[arg-type]


def spec_values(spec: LabSpec) -> list[str]:
    return [spec.name, spec.ssh.user, *(n.name for n in spec.nodes),
            *(n.address for n in spec.nodes), *spec.images.values()]


def assert_safe(commands: list[str], spec: LabSpec) -> None:
    assert commands
    faults = []
    for command in commands:
        try:
            shlex.split(command)
        except ValueError as exc:
            faults.append(f"{command!r} does not split: {exc}")
            continue
        faults += marked_values_are_literal(command)
        for value in spec_values(spec):
            faults += value_is_literal(command, value)
    assert not faults, faults[0]


# --- strategies -------------------------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 40), 2 ** 40),
                    st.floats(allow_nan=True), st.text(max_size=24), st.binary(max_size=8),
                    st.dates())
yamlish = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=10), st.integers(), st.none()), inner,
                        max_size=4)),
    max_leaves=12)
shellish = st.text(alphabet=st.sampled_from(list("ab-_.:/@[]01 ;|&$()`'\"\\\n*?#~{}<>")),
                   max_size=24)
hostile_values = st.builds(lambda meta, tail: f"x{meta}{MARK}{tail}", st.sampled_from(METAS),
                           shellish)
NAME_PATTERN = r"\A[a-z][a-z0-9-]{0,10}[a-z0-9]\Z"
# Valid Docker references, with the characters the grammar allows at its edges
# (registries with ports, digests, tags with dots and dashes).
references = st.one_of(
    st.from_regex(r"\A[a-z0-9]{1,8}([._-][a-z0-9]{1,4})?(/[a-z0-9]{1,8}){0,2}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,8})?\Z"),
    st.from_regex(r"\A([a-z0-9]{1,6}(\.[A-Za-z]{2,4})?)(:[0-9]{2,5})?/[a-z0-9]{1,6}(:[a-z0-9][a-z0-9.]{0,5})?(@sha256:[0-9a-f]{64})?\Z"),
)
names = st.one_of(st.sampled_from(["manager1", "manager2", "worker1", "w-2", "m1"]),
                  st.from_regex(NAME_PATTERN), shellish, yamlish)


@st.composite
def lab_files(draw: st.DrawFn) -> dict[str, Any]:
    """Lab files that are often right (so commands get built) and often wrong in any field."""
    octet = draw(st.integers(130, 139))
    subnet = ipaddress.IPv4Network(f"10.201.{octet}.0/24")
    count = draw(st.integers(1, 4))
    nodes = []
    for index in range(count):
        node: dict[Any, Any] = {
            "name": draw(st.one_of(st.just(f"node{index + 1}"), names)),
            "role": draw(st.one_of(st.just("manager" if index < 2 else "worker"),
                                   st.sampled_from(["worker", "boss"]), yamlish)),
            "address": draw(st.one_of(st.just(str(subnet.network_address + 11 + index)),
                                      shellish, yamlish)),
        }
        if draw(st.integers(0, 20)) == 0:
            node[draw(st.one_of(st.text(max_size=5), st.integers()))] = draw(yamlish)
        nodes.append(node)
    data: dict[Any, Any] = copy.deepcopy(LAB_DEFAULTS)
    data.update(name=f"t-h4-{octet}", subnet=str(subnet), nodes=nodes,
                state_dir="/tmp/t-h4-state",
                images={"busybox": draw(st.one_of(references, shellish, yamlish)),
                        draw(st.one_of(st.just("whoami"), st.text(max_size=6))):
                            draw(st.one_of(references, shellish))})
    # Any field may be anything.
    for key in draw(st.lists(st.sampled_from(sorted(LAB_DEFAULTS)), max_size=3)):
        data[key] = draw(st.one_of(yamlish, shellish))
    if draw(st.integers(0, 10)) == 0:
        data[draw(st.one_of(st.text(max_size=8), st.integers()))] = draw(yamlish)
    return data


@st.composite
def good_lab_files(draw: st.DrawFn) -> dict[str, Any]:
    """Lab files that are mostly right, with values from the edges of what each field takes
    (and now and then a value with shell syntax in it, which must be refused)."""
    octet = draw(st.integers(130, 139))
    subnet = ipaddress.IPv4Network(f"10.201.{octet}.0/24")
    count = draw(st.integers(1, 4))
    # Mostly right values, so that commands get built; 1 in 8 draws may hold shell syntax.
    def mostly(good: st.SearchStrategy[Any]) -> Any:
        return draw(shellish if draw(st.integers(0, 7)) == 3 else good)

    stem = mostly(st.from_regex(r"\A[a-z][a-z0-9-]{0,6}\Z"))
    offsets = draw(st.lists(st.integers(2, 254), min_size=count, max_size=count, unique=True))
    nodes = [{"name": f"{stem}{index}", "role": "manager" if index < 2 else "worker",
              "address": str(subnet.network_address + offset)}
             for index, offset in enumerate(offsets)]
    user = st.one_of(st.just("root"), st.from_regex(r"\A[a-z_][a-z0-9_-]{0,8}\Z"))
    return {**copy.deepcopy(LAB_DEFAULTS), "name": mostly(st.from_regex(NAME_PATTERN)),
            "subnet": str(subnet), "nodes": nodes, "state_dir": "/tmp/t-h4-state",
            "images": {"busybox": mostly(references), draw(st.sampled_from(["whoami", "web"])):
                       mostly(references)},
            "ssh": {"user": mostly(user)}}


def one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text and "\r" not in text, repr(text)


# --- properties -------------------------------------------------------------------------------
@BOUNDED
@given(lab_files())
def test_any_lab_file_is_a_spec_or_one_line(data: dict[str, Any]) -> None:
    try:
        parse_spec(data)
    except SpecError as exc:
        one_line(exc)


@BOUNDED
@given(st.one_of(yamlish, st.dictionaries(st.sampled_from(sorted(LAB_DEFAULTS)), yamlish)))
def test_any_yaml_value_is_a_spec_or_one_line(data: Any) -> None:
    try:
        parse_spec(data)
    except SpecError as exc:
        one_line(exc)


@BOUNDED
@given(good_lab_files(), hostile_values)
def test_no_input_reaches_a_shell_unquoted(data: dict[str, Any], hostile: str) -> None:
    try:
        spec = parse_spec(data)
    except SpecError:
        assume(False)
        return
    assert_safe(drive_prepare(spec, hostile), spec)
    assert_safe(drive_failures(spec, hostile), spec)


@BOUNDED
@given(references)
def test_every_docker_reference_is_taken_and_quoted(reference: str) -> None:
    data = copy.deepcopy(LAB_DEFAULTS)
    data["images"] = {"busybox": reference}
    spec = parse_spec(data)
    assert spec.images["busybox"] == reference
    command = NonOverlayNetwork()._service_command(RecordingLab(spec, scripted("x")))  # type: ignore[arg-type]
    assert value_is_literal(command, reference) == []


@pytest.mark.parametrize("image", [
    "$(reboot)", "busybox;reboot", "busy box", "busybox`id`", "BusyBox", "busybox:", ":latest",
    "busybox@sha256:abc", "-busybox", "busybox:-x", "a" * 256, "[::1]:5000/x;y", "",
    "[::1]:5000/x", "Team/busybox", "a//b",
])
def test_images_outside_dockers_grammar_are_refused_naming_the_field(image: str) -> None:
    data = copy.deepcopy(LAB_DEFAULTS)
    data["images"] = {"busybox": image}
    with pytest.raises(SpecError, match=r"^lab file: images\.busybox is .*allowed: a Docker image"):
        parse_spec(data)


def test_the_recording_node_sees_an_unquoted_value() -> None:
    """The check can fail: an image put in a command as it is, the old way, is caught."""
    spec = parse_spec(copy.deepcopy(LAB_DEFAULTS))
    assert value_is_literal("docker run [::1]:5000/x", "[::1]:5000/x")
    assert value_is_literal("docker run $(reboot)", "$(reboot)")
    assert marked_values_are_literal(f"docker node rm x;{MARK}")
    assert marked_values_are_literal(f"docker node rm 'x'`{MARK}`")
    assert not marked_values_are_literal(f"docker node rm {shlex.quote('x`' + MARK)}")
    assert_safe(drive_failures(spec, f"x$({MARK})"), spec)


# --- the class: its section and the roster ----------------------------------------------------
BASE = parse_spec({**copy.deepcopy(LAB_DEFAULTS), "name": "t-h4-class",
                   "state_dir": tempfile.mkdtemp(prefix="t-h4-")})
class_keys = st.sampled_from(["name", "address_pool", "student_prefix", "parallel",
                              "memory_per_node_mib", "instructions"])
class_values = st.one_of(yamlish, shellish, st.integers(0, 40),
                         st.sampled_from(["10.100.0.0/16", "t-h4-k", "{lab} {subnet}",
                                          "{lab.x}", "{0}", "{lab!r}", "{", "}"]),
                         st.lists(st.sampled_from(["step {lab}", "{first_manager[0]}",
                                                   "{lab:>{subnet}}", "x"]), max_size=3))


@BOUNDED
@given(st.one_of(yamlish, st.dictionaries(class_keys, class_values, max_size=4)))
def test_any_class_section_is_settings_or_one_line(section: Any) -> None:
    try:
        parse_settings(section, BASE)
    except SpecError as exc:
        one_line(exc)


cells = st.one_of(st.sampled_from(["ann", "Ben", "c-3", "10.100.7.0/24", "10.100.7.1/24",
                                   "disable", "off", "yes", "maybe", "rhel", "Debian", ""]),
                  st.text(max_size=12), shellish)
headers = st.one_of(st.just(["id", "name"]),
                    st.lists(st.sampled_from([*COLUMNS, "shoe", "ID", " name "]), min_size=1,
                             max_size=5),
                    st.lists(st.text(max_size=6), max_size=3))


@BOUNDED
@given(headers, st.lists(st.lists(cells, max_size=6), max_size=5),
       st.one_of(st.just(""), st.text(max_size=20)))
def test_any_roster_is_a_class_or_one_line(header: list[str], rows: list[list[str]],
                                            garbage: str) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    with tempfile.TemporaryDirectory(prefix="t-h4-") as tmp:
        path = Path(tmp) / "roster.csv"
        path.write_text(buffer.getvalue() + garbage, encoding="utf-8", errors="surrogatepass")
        settings_ = parse_settings({"name": "t-h4-k"}, BASE)
        record = ClassRecord.load(tmp, settings_.name)
        try:
            students = read_roster(path)
            plan = make_plan(BASE, settings_, _base_data(), students, record, str(path))
        except SpecError as exc:
            one_line(exc)
            return
        for lab in plan.labs:
            assert lab.spec.name.startswith("t-h4-k-")


def _base_data() -> dict[str, Any]:
    return {**copy.deepcopy(LAB_DEFAULTS), "name": "t-h4-class", "state_dir": BASE.state_dir}


def test_a_roster_cell_with_a_line_break_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text('id,name\nann,"Ann\nrm -rf /"\n')
    with pytest.raises(SpecError, match=r"row 2 \(ann\): name is .*allowed: text on one line"):
        read_roster(path)


def test_roster_overrides_are_checked_where_they_are_read(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text("id,name,subnet\nann,Ann,10.100.7.0/24;reboot\n")
    with pytest.raises(SpecError, match=r"^roster .* row 2 \(ann\): subnet is"):
        read_roster(path)


@BOUNDED
@given(st.text(max_size=200))
def test_any_text_as_a_lab_file_is_read_or_one_line(text: str) -> None:
    from lab.config import _check_yaml

    with tempfile.TemporaryDirectory(prefix="t-h4-") as tmp:
        path = Path(tmp) / "lab.yaml"
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        try:
            _check_yaml(path)
            data = yaml.safe_load(text)
        except SpecError as exc:
            one_line(exc)
            return
        try:
            parse_spec({**copy.deepcopy(LAB_DEFAULTS), **(data or {})})
        except SpecError as exc:
            one_line(exc)


def test_a_package_manager_read_back_from_a_node_is_one_the_probe_prints() -> None:
    """The probe's `pm=` line goes back into install commands: anything but a name the probe
    itself can print is no package manager (before, `apt-get; reboot` went into the shell)."""
    spec = parse_spec(copy.deepcopy(LAB_DEFAULTS))
    node = RecordingNode(spec.nodes[0], scripted("x", package_manager=f"apt-get;{MARK}"))
    with pytest.raises(NodeError, match="has neither apt-get, dnf nor yum"):
        facts.gather(node)  # type: ignore[arg-type]
