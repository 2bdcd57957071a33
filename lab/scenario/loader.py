"""Scenario YAML -> model, validated, every fault named by file and line.

PyYAML's SafeLoader forgets where things were, so a subclass keeps each mapping's and
sequence's line, and each key's line, on the containers it builds. Validation then walks
the steps in order, so that a variable used before the step that captures it is caught here
and never half-way through a lesson.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from . import template
from .errors import ScenarioError
from .model import (
    FEATURES,
    Check,
    Requirements,
    Scenario,
    Step,
    Target,
    Wait,
    Where,
)

VAR_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
NODE_RE = re.compile(r"^[a-z][a-z0-9-]*$")
SCENARIO_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
BUILTIN_PREFIXES = ("images", "lab")
MAX_TIMEOUT = 3600

TOP_KEYS = ("title", "teaches", "requires", "vars", "steps", "cleanup")
STEP_KEYS = ("name", "on", "run", "say", "timeout", "wait", "expect", "needs")
CHECK_KEYS = {
    "exit": (),
    "match": (),
    "no_match": (),
    "contains": (),
    "capture": ("from", "all"),
    "distinct": ("min",),
}
CHECK_COMMON = ("label", "needs")
WAIT_KEYS = ("for", "service", "timeout")
DEFAULT_COMMAND_TIMEOUT = 60
DEFAULT_WAIT_TIMEOUT = 60


class _Map(dict):  # type: ignore[type-arg]
    line: int
    key_lines: dict[Any, int]


class _List(list):  # type: ignore[type-arg]
    line: int
    item_lines: list[int]


class LineLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings and lists know their lines (1-based)."""


def _construct_map(loader: LineLoader, node: MappingNode) -> _Map:
    result = _Map()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        # Keys are taken as written: YAML 1.1 would read the key `on:` as the boolean True.
        if isinstance(key_node, ScalarNode):
            key: Any = key_node.value
        else:
            key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in result:
            # PyYAML keeps the last of two equal keys without a word; a scenario must not.
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_list(loader: LineLoader, node: SequenceNode) -> _List:
    result = _List(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_list)


def parse_yaml(text: str, path: str) -> Any:
    try:
        return yaml.load(text, Loader=LineLoader)  # LineLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or exc.context or "not valid YAML"
        raise ScenarioError(f"{path}:{line}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML ({exc})") from None


class _Validator:
    """Turns the parsed YAML of one file into a Scenario, or raises at the first fault."""

    def __init__(self, path: str, name: str):
        self.path = path
        self.name = name
        self.known: set[str] = set()  # variables defined so far, in step order
        self.image_keys: list[str] = []

    # --- helpers -------------------------------------------------------------------------
    def where(self, line: int) -> Where:
        return Where(self.path, line)

    def fail(self, line: int, message: str) -> ScenarioError:
        return ScenarioError(f"{self.path}:{line}: {message}")

    def line_of(self, mapping: _Map, key: str) -> int:
        return mapping.key_lines.get(key, mapping.line)

    def mapping(self, value: Any, line: int, what: str, allowed: tuple[str, ...]) -> _Map:
        if not isinstance(value, _Map):
            raise self.fail(line, f"{what} must be a mapping with keys: {', '.join(allowed)}")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    self.line_of(value, key),
                    f"{what}: unknown key {key!r}; allowed: {', '.join(allowed)}",
                )
        return value

    def text(self, mapping: _Map, key: str, what: str, required: bool = False) -> str:
        value = mapping.get(key)
        if value is None:
            if required:
                raise self.fail(mapping.line, f"{what} needs `{key}:`")
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(self.line_of(mapping, key), f"{what}: `{key}` must be text")
        text = str(value).strip()
        if required and not text:
            raise self.fail(self.line_of(mapping, key), f"{what}: `{key}` is empty")
        return text

    def whole(self, mapping: _Map, key: str, what: str, low: int, high: int, default: int) -> int:
        value = mapping.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(
                self.line_of(mapping, key),
                f"{what}: `{key}` is {value!r}; allowed: a whole number from {low} to {high}",
            )
        return value

    def needs(self, mapping: _Map, what: str) -> tuple[str, ...]:
        value = mapping.get("needs")
        if value is None:
            return ()
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in FEATURES:
                raise self.fail(
                    self.line_of(mapping, "needs"),
                    f"{what}: needs {item!r} is unknown; allowed: {', '.join(FEATURES)}",
                )
        return tuple(items)

    def uses(self, text: str, line: int, what: str, known: set[str]) -> None:
        """Every `{{name}}` in `text` must be a builtin, a var, or captured earlier."""
        for name in template.references(text):
            head, _, rest = name.partition(".")
            if head == "images" and rest:
                if rest not in self.image_keys:
                    self.image_keys.append(rest)
                continue
            if name == "lab.name" or name in known:
                continue
            raise self.fail(
                line,
                f"{what}: {{{{{name}}}}} is not defined here; defined: "
                + ", ".join([*sorted(known), "images.KEY", "lab.name"])
                + " (a capture is usable from the next step on)",
            )

    def pattern(self, text: str, line: int, what: str, known: set[str], groups: bool) -> str:
        self.uses(text, line, what, known)
        # Variables are inserted escaped at run time; any literal stands in for them here.
        sample = template.render(text, _AnyValue())
        try:
            compiled = re.compile(sample, re.MULTILINE)
        except re.error as exc:
            raise self.fail(line, f"{what}: bad regular expression {text!r}: {exc}") from None
        if groups and compiled.groups < 1:
            raise self.fail(line, f"{what}: {text!r} needs a (group) for the value to take")
        return text

    # --- the file ------------------------------------------------------------------------
    def scenario(self, data: Any) -> Scenario:
        top = self.mapping(data, 1, "the scenario", TOP_KEYS)
        title = self.text(top, "title", "the scenario", required=True)
        teaches = self.text(top, "teaches", "the scenario", required=True)
        requires = self.requirements(top)
        variables = self.variables(top)
        static = set(self.known)
        steps = self.steps(top, "steps", required=True)
        # Cleanup also runs before step 1 and after a failure anywhere, so it can only rely
        # on what is always defined, never on a capture.
        self.known = static
        cleanup = self.steps(top, "cleanup", required=False)
        return Scenario(
            name=self.name,
            path=self.path,
            title=title,
            teaches=teaches,
            requires=requires,
            variables=variables,
            steps=steps,
            cleanup=cleanup,
            image_keys=tuple(self.image_keys),
        )

    def requirements(self, top: _Map) -> Requirements:
        if "requires" not in top:
            return Requirements(where=self.where(top.line))
        raw = self.mapping(
            top["requires"], self.line_of(top, "requires"), "requires", ("swarm", "images")
        )
        swarm_nodes = self.whole(raw, "swarm", "requires", 0, 1000, 0)
        images = raw.get("images", [])
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise self.fail(
                self.line_of(raw, "images"),
                "requires: `images` must be a list of keys of the lab's images setting,"
                " e.g. [busybox, whoami]",
            )
        for key in images:
            if key not in self.image_keys:
                self.image_keys.append(key)
        return Requirements(
            where=self.where(raw.line), swarm_nodes=swarm_nodes, images=tuple(images)
        )

    def variables(self, top: _Map) -> dict[str, str]:
        raw = top.get("vars")
        if raw is None:
            return {}
        line = self.line_of(top, "vars")
        if not isinstance(raw, _Map):
            raise self.fail(line, "vars must be a mapping of name: value")
        found: dict[str, str] = {}
        for key, value in raw.items():
            key_line = self.line_of(raw, key)
            if not isinstance(key, str) or not VAR_NAME_RE.match(key) or key in BUILTIN_PREFIXES:
                raise self.fail(
                    key_line,
                    f"vars: {key!r} is not a usable name; use a-z, 0-9 and _ (not images, lab)",
                )
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise self.fail(key_line, f"vars: {key} must be text or a number")
            self.uses(str(value), key_line, f"vars: {key}", set())
            found[key] = str(value)
            self.known.add(key)
        return found

    def steps(self, top: _Map, key: str, required: bool) -> tuple[Step, ...]:
        raw = top.get(key)
        if raw is None:
            if required:
                raise self.fail(top.line, f"the scenario needs `{key}:`, a list of steps")
            return ()
        if not isinstance(raw, _List) or (required and not raw):
            raise self.fail(self.line_of(top, key), f"`{key}` must be a list of steps")
        steps = []
        for index, (item, line) in enumerate(zip(raw, raw.item_lines, strict=True), start=1):
            what = f"step {index}" if key == "steps" else f"cleanup step {index}"
            steps.append(self.step(item, line, what, cleanup=key == "cleanup"))
        return tuple(steps)

    def step(self, raw: Any, line: int, what: str, cleanup: bool) -> Step:
        step = self.mapping(raw, line, what, STEP_KEYS)
        name = self.text(step, "name", what, required=True)
        what = f"{what} ({name})"
        run = self.text(step, "run", what)
        say = self.text(step, "say", what)
        needs = self.needs(step, what)
        wait = self.wait(step, what) if "wait" in step else None
        if not run and wait is None:
            raise self.fail(step.line, f"{what}: give `run:` (a command), `wait:`, or both")
        if not run:
            for key in ("on", "expect", "timeout"):
                if key in step:
                    raise self.fail(self.line_of(step, key), f"{what}: `{key}` needs `run:`")
        if wait is not None and wait.kind == "success" and not run:
            raise self.fail(
                self.line_of(step, "wait"), f"{what}: waiting for success needs `run:`"
            )
        target = self.target(step, what)
        self.uses(run, self.line_of(step, "run"), what, self.known)
        quoted = template.quoted_references(run)
        if quoted:
            raise self.fail(
                self.line_of(step, "run"),
                f"{what}: {{{{{quoted[0]}}}}} is inside quotes in `run:`; write it bare: every"
                " value is shell-quoted where it goes in, and quotes around it would undo that",
            )
        self.uses(say, self.line_of(step, "say"), what, self.known)
        checks = self.checks(step, what, target, needs) if run else ()
        timeout = self.whole(step, "timeout", what, 1, MAX_TIMEOUT, DEFAULT_COMMAND_TIMEOUT)
        # Captures become usable once the whole step is done.
        self.known.update(check.name for check in checks if check.kind == "capture")
        if cleanup and any(check.kind == "capture" for check in checks):
            raise self.fail(step.line, f"{what}: a cleanup step cannot capture values")
        return Step(
            name=name,
            where=self.where(step.line),
            target=target,
            run=run,
            say=say,
            timeout=timeout,
            wait=wait,
            checks=checks,
            needs=needs,
        )

    def target(self, step: _Map, what: str) -> Target:
        raw = step.get("on", "a manager")
        line = self.line_of(step, "on")
        allowed = (
            "a node name (manager1), 'a manager', 'every node', 'task:SERVICE',"
            " 'node-of:SERVICE', 'node-without:SERVICE'"
        )
        if not isinstance(raw, str):
            raise self.fail(line, f"{what}: `on` must be one of {allowed}")
        text = raw.strip()
        if text == "a manager":
            return Target("manager")
        if text == "every node":
            return Target("every-node")
        kind, colon, service = text.partition(":")
        if colon:
            if kind not in ("task", "node-of", "node-without"):
                raise self.fail(line, f"{what}: unknown target {text!r}; allowed: {allowed}")
            if not SERVICE_RE.match(service):
                raise self.fail(line, f"{what}: {service!r} is not a service name")
            return Target(kind, service)
        if not NODE_RE.match(text):
            raise self.fail(line, f"{what}: unknown target {text!r}; allowed: {allowed}")
        return Target("node", text)

    def wait(self, step: _Map, what: str) -> Wait:
        raw = self.mapping(step["wait"], self.line_of(step, "wait"), f"{what}: wait", WAIT_KEYS)
        kind = raw.get("for")
        if kind not in ("replicas", "replacement", "success"):
            raise self.fail(
                self.line_of(raw, "for"),
                f"{what}: wait `for` is {kind!r}; allowed: replicas (the service at N/N),"
                " replacement (a task of the service replaced), success (the checks pass)",
            )
        service = self.text(raw, "service", f"{what}: wait")
        if kind == "success" and service:
            raise self.fail(
                self.line_of(raw, "service"), f"{what}: waiting for success takes no service"
            )
        if kind != "success" and not SERVICE_RE.match(service):
            raise self.fail(raw.line, f"{what}: wait for {kind} needs `service:` (a service name)")
        timeout = self.whole(raw, "timeout", f"{what}: wait", 1, MAX_TIMEOUT, DEFAULT_WAIT_TIMEOUT)
        return Wait(kind=kind, where=self.where(raw.line), timeout=timeout, service=service)

    def checks(
        self, step: _Map, what: str, target: Target, step_needs: tuple[str, ...]
    ) -> tuple[Check, ...]:
        raw = step.get("expect", [])
        if not isinstance(raw, list):
            raise self.fail(self.line_of(step, "expect"), f"{what}: `expect` must be a list")
        lines = raw.item_lines if isinstance(raw, _List) else []
        checks = [
            self.check(item, line, what, target, step_needs)
            for item, line in zip(raw, lines, strict=True)
        ]
        captured = [c.name for c in checks if c.kind == "capture"]
        for name in captured:
            if captured.count(name) > 1:
                raise self.fail(step.line, f"{what}: {name} is captured twice")
        if not any(check.kind == "exit" for check in checks):
            # A command that fails is a failed step unless the scenario says otherwise.
            checks.insert(0, Check(kind="exit", where=self.where(step.line), code=0))
        return tuple(checks)

    def check(
        self, raw: Any, line: int, what: str, target: Target, step_needs: tuple[str, ...]
    ) -> Check:
        if not isinstance(raw, _Map):
            raise self.fail(line, f"{what}: a check is a mapping, e.g. `- match: REGEX`")
        kinds = [key for key in raw if key in CHECK_KEYS]
        if len(kinds) != 1:
            raise self.fail(
                line,
                f"{what}: a check has exactly one of: {', '.join(CHECK_KEYS)}"
                f" (found {', '.join(map(str, kinds)) or 'none'})",
            )
        kind = kinds[0]
        self.mapping(raw, line, f"{what}: {kind} check", (kind, *CHECK_KEYS[kind], *CHECK_COMMON))
        what = f"{what}: {kind} check"
        line = self.line_of(raw, kind)
        label = self.text(raw, "label", what)
        self.uses(label, self.line_of(raw, "label"), what, self.known)
        needs = self.needs(raw, what)
        common: dict[str, Any] = {"where": self.where(line), "label": label, "needs": needs}
        value = raw[kind]
        if kind == "exit":
            if value not in ("any", "nonzero") and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255
            ):
                raise self.fail(line, f"{what}: {value!r}; allowed: 0-255, any, nonzero")
            return Check(kind=kind, code=value, **common)
        if kind in ("match", "no_match"):
            text = self.text(raw, kind, what, required=True)
            return Check(kind=kind, pattern=self.pattern(text, line, what, self.known, False),
                         **common)
        if kind == "contains":
            text = self.text(raw, kind, what, required=True)
            self.uses(text, line, what, self.known)
            return Check(kind=kind, text=text, **common)
        if kind == "capture":
            name = self.text(raw, kind, what, required=True)
            if not VAR_NAME_RE.match(name) or name in BUILTIN_PREFIXES:
                raise self.fail(line, f"{what}: {name!r} is not a usable variable name")
            if name in self.known:
                raise self.fail(line, f"{what}: {name} is already defined")
            if needs or step_needs:
                raise self.fail(
                    line, f"{what}: a capture cannot need an optional feature: later steps"
                    " would have no value where it is missing",
                )
            if target.kind == "every-node":
                raise self.fail(line, f"{what}: capture from one node, not from every node")
            pattern = self.text(raw, "from", what, required=True)
            every = raw.get("all", False)
            if not isinstance(every, bool):
                raise self.fail(self.line_of(raw, "all"), f"{what}: `all` is true or false")
            return Check(
                kind=kind,
                name=name,
                pattern=self.pattern(pattern, self.line_of(raw, "from"), what, self.known, True),
                all=every,
                **common,
            )
        text = self.text(raw, kind, what, required=True)
        minimum = self.whole(raw, "min", what, 1, 1000, 2)
        return Check(
            kind=kind,
            pattern=self.pattern(text, line, what, self.known, True),
            minimum=minimum,
            **common,
        )


class _AnyValue(dict):  # type: ignore[type-arg]
    """Stands in for every variable when trying a pattern out at load time."""

    def __missing__(self, key: str) -> str:
        return "value"


def load(path: Path) -> Scenario:
    """Read, parse and validate one scenario file."""
    # Messages name the file as the user would: relative to where they stand, if inside.
    shown = str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    if not SCENARIO_NAME_RE.match(path.stem):
        # The name labels what the scenario makes (swarmlab.scenario=NAME) in commands.
        raise ScenarioError(
            f"{shown}: {path.stem!r} cannot name a scenario; rename the file with letters,"
            " digits, '.', '_' and '-' only (e.g. my-lesson.yaml)"
        )
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"{shown}: {exc.strerror}") from None
    data = parse_yaml(text, shown)
    return _Validator(shown, path.stem).scenario(data)
