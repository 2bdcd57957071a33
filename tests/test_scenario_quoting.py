"""No value of a scenario reaches a node's shell unquoted, and no input makes a traceback.

Property tests (hypothesis) over the values a run puts into commands: the file's vars,
values captured from command output, container names read from `docker ps`, the names a
scenario takes. The runner is the real one; where it would SSH to a node it finds a
recorder (not a mock of anything that could run: it keeps the commands and answers with the
output a test chose). Each recorded command is read two ways: by shlex, which must give the
intended words back exactly, and by a scan of POSIX quoting written here, which must find no
shell metacharacter outside quotes.
"""

from __future__ import annotations

import io
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.remote import CommandResult
from lab.scenario import loader, ownership, template
from lab.scenario.display import Console
from lab.scenario.errors import ScenarioError
from lab.scenario.model import Where
from lab.scenario.results import PASSED
from lab.scenario.runner import Options, Runner
from lab.scenario.targets import in_task
from lab.spec import parse_spec

pytestmark = [pytest.mark.scenario, pytest.mark.unit]

# What a POSIX shell acts on outside quotes: operators, expansions, globs, comments, quoting.
METACHARACTERS = set("|&;<>()$`\\\"' \t\n*?[]#~{}!")
NASTY = ["$(reboot)", "`reboot`", "a;reboot", "a && reboot", "a|sh", "'", '"', "\\", "x\ny",
         "{{vip}}", "", " ", "-rf", "*", "~root", "#", "a'b\"c", "\\'", "$HOME", "${IFS}"]
# Any text a command's output or a file could hold, short enough to be quick. NUL cannot be
# in a command line at all (C strings), and surrogates cannot be sent.
VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=24),
)
SAFE_WORDS = ["--", "x", "printf", "%s"]


def unquoted(command: str) -> list[str]:
    """The characters of `command` a POSIX shell reads outside quotes and escapes (quote
    marks themselves excluded). Written from the POSIX rules, independently of the code."""
    found, quote, index = [], "", 0
    while index < len(command):
        char = command[index]
        if quote == "'":
            quote = "" if char == "'" else quote
        elif quote == '"':
            if char == "\\":
                index += 1  # \" \\ \$ \` inside double quotes: escaped
            elif char == '"':
                quote = ""
        elif char == "\\":
            index += 1  # the next character is literal
        elif char in "'\"":
            quote = char
        else:
            found.append(char)
        index += 1
    assert quote == "", f"unclosed quote in {command!r}"
    return found


def words(command: str) -> list[str]:
    """The shell's words and operators (; && |) of a command line, quotes removed."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def metacharacters(command: str) -> list[str]:
    """The shell metacharacters `command` has outside quotes, in order."""
    return [char for char in unquoted(command) if char in METACHARACTERS]


class RecordingNode:
    """Where an SSH node would be: records each command, answers with a chosen output."""

    def __init__(self, name: str, answer: str = ""):
        self.name = name
        self.answer = answer
        self.commands: list[str] = []

    def run(self, command: str, timeout: int | None = None, check: bool = False,
            **kw: object) -> CommandResult:
        self.commands.append(command)
        return CommandResult(command, 0, self.answer, "")


class RecordingLab:
    """A Lab's face as the runner sees it (spec, state, provider, node), with recorders for
    nodes. The spec is a real one, read by the real lab file parser."""

    def __init__(self, answer: str):
        self.spec = parse_spec({
            "name": "t-h2-prop", "subnet": "10.201.112.0/24",
            "nodes": [{"name": "manager1", "role": "manager", "address": "10.201.112.11"}],
        })
        self.state = SimpleNamespace(machines={"manager1": {}})
        self.provider = SimpleNamespace(time_scale=1)
        self.recorder = RecordingNode("manager1", answer)

    def node(self, name: str) -> RecordingNode:
        assert name == "manager1"
        return self.recorder

    def nodes(self) -> list[RecordingNode]:
        return [self.recorder]


def lesson(tmp_path: Path, value: str, skeleton: list[str]) -> Path:
    data = {
        "title": "Quoting",
        "teaches": "Values reach the node as words.",
        "vars": {"given": value},
        "steps": [
            {"name": "Read a value", "on": "manager1", "run": "cat /srv/value",
             "expect": [{"capture": "got", "from": r"(?s)\A(.*)\Z"}]},
            {"name": "Use it", "on": "manager1", "run": " ".join(skeleton)},
        ],
    }
    path = tmp_path / "quoting.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


SKELETONS = st.lists(
    st.sampled_from([*SAFE_WORDS, "{{given}}", "{{got}}", "{{images.busybox}}", "{{lab.name}}"]),
    min_size=1, max_size=6,
).map(lambda words: ["echo", *words])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(given_value=VALUES, output=VALUES, skeleton=SKELETONS)
def test_values_reach_the_node_as_words(
    tmp_path: Path, given_value: str, output: str, skeleton: list[str]
) -> None:
    path = lesson(tmp_path, given_value, skeleton)
    if template.references(given_value):
        # A var may only use values defined before it; the loader says so, in one line.
        with pytest.raises(ScenarioError, match=r"vars: given: \{\{"):
            loader.load(path)
        return
    scenario = loader.load(path)
    lab = RecordingLab(answer=output)
    record = Runner(scenario, lab, Console(io.StringIO()), Options()).run()  # type: ignore[arg-type]

    assert record.outcome == PASSED, record.message
    read, used = lab.recorder.commands
    assert read == "cat /srv/value"
    values = {"{{given}}": given_value, "{{got}}": output.strip(),  # as a terminal shows it
              "{{images.busybox}}": "swarmlab/busybox:latest", "{{lab.name}}": "t-h2-prop"}
    assert shlex.split(used) == [values.get(word, word) for word in skeleton]
    # Only the spaces between the skeleton's words: every value is inside quotes or safe.
    assert set(metacharacters(used)) <= {" "}, used


@settings(max_examples=200, deadline=None)
@given(container=VALUES, command=VALUES)
def test_a_command_inside_a_task_stays_one_word(container: str, command: str) -> None:
    line = in_task(container, command)
    assert shlex.split(line) == ["docker", "exec", container, "sh", "-c", command]
    assert metacharacters(line) == metacharacters(in_task("c", "true")), line


HERE = Where("quoting.yaml", 0)


@settings(max_examples=200, deadline=None)
@given(name=VALUES, text=st.text(max_size=80))
def test_names_read_from_commands_are_quoted_where_they_are_freed(name: str, text: str) -> None:
    ownership.creations([text])  # any text at all: reading it never raises
    created = ownership.creations(
        [f"docker service create --name {shlex.quote(name)} img;"
         f" docker network create -d overlay {shlex.quote(name)}"])
    if "{{" in name or "$" in name or "`" in name or not name:
        assert created.names == {}  # made at run time: not read ahead, never guessed
        return
    if set(name) <= set("();<>|&\n"):
        return  # read as shell operators, quoted or not; no Docker name can be one
    # A word starting with "-" (but "-" itself) is an option to `docker network create`, to
    # Docker as to us.
    networks = {} if name.startswith("-") and name != "-" else {"network": [name]}
    assert created.names == {"service": [name], **networks}

    def lines(held: str) -> list[str]:
        found = [ownership.InTheWay(kind, held, f"{kind} {held}", "")
                 for kind in ("service", "network")]
        steps = ownership.clearing(found, HERE)
        return [ownership.freeing(found), ownership.refusal(found, "manager1").split("`")[1],
                *(step.run for step in steps)]

    for line, plain in zip(lines(name), lines("NAME"), strict=True):
        # The name adds no metacharacter outside quotes, and stays one word each time.
        assert metacharacters(line) == metacharacters(plain), line
        assert words(line) == [name if word == "NAME" else word for word in words(plain)]


@settings(max_examples=200, deadline=None)
@given(name=VALUES)
def test_a_container_read_from_docker_ps_is_stopped_by_its_quoted_name(name: str) -> None:
    if not name.strip() or set(name) & set("\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
        return  # no line of `docker ps` could hold it (and Docker allows no such name)
    creates = ownership.Creates(ports=[1001])
    (way,) = ownership.containers_in_the_way(f"{name}\t\t0.0.0.0:1001->80/tcp", "w1", creates)
    assert words(way.free) == ["docker", "stop", name]
    assert metacharacters(way.free) == metacharacters("docker stop db")


@settings(max_examples=200, deadline=None)
@given(value=VALUES)
def test_labels_go_in_before_values_so_no_value_adds_or_hides_one(value: str) -> None:
    line = template.render(
        ownership.labelled("docker service create --name {{v}} img", "lesson"),
        {"v": value}, shlex.quote)
    assert shlex.split(line) == [
        "docker", "service", "create", "--label", "swarmlab.scenario=lesson",
        "--container-label", "swarmlab.scenario=lesson", "--name", value, "img"]


# Scenario files of any shape: the loader answers with a model or one ScenarioError.
KEYS = st.sampled_from([*loader.TOP_KEYS, *loader.STEP_KEYS, *loader.CHECK_KEYS,
                        *loader.WAIT_KEYS, "swarm", "images", "min", "from", "all", "label",
                        "x"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), VALUES,
                    st.sampled_from(["a manager", "every node", "task:web", "manager1",
                                     "replicas", "success", "ipvs", "'([0-9]+)'", "(x"]))
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(KEYS, inner, max_size=6)),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=DOCUMENTS)
def test_any_scenario_file_loads_or_says_what_is_wrong(tmp_path: Path, document: object) -> None:
    path = tmp_path / "any.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    try:
        loader.load(path)
    except ScenarioError as exc:
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message, message
