"""Checking a lesson against a lab as it is now, changing nothing: "check my work".

A step's checks judge its command's output, so a step can be checked without its own run
only when that run is itself a question (`docker service ls`, `nslookup ...`): those are
run and judged as the runner would. A step whose run changes the lab is never run here.
One kind is still judged, by its effect: a `docker service create` whose step waits for
that service's replicas passes when the service exists and runs all its tasks (read from
`docker service ls`; the command's own output is not judged). Any other (a scale, an rm)
is "not checkable read-only": its replicas wait would pass at 1/1 as well as at 4/4. Values
captured by an earlier read-only step flow on; a check needing a value that only a
changing step captures is not checkable either, rather than judged against nothing.
"""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from ..context import Lab
from ..errors import LabError
from . import template
from .checks import judge
from .cluster import Cluster
from .model import Scenario, Step
from .results import FAILED, PASSED
from .targets import resolve
from .template import Value

NOT_CHECKABLE = "not checkable read-only"
QUERY_SECONDS = 20  # one question to one node; a student waits for the whole list
# Commands that only ask: the first words of a step's run (after an optional `timeout N`).
QUESTIONS = (
    ("docker", "service", "ls"), ("docker", "service", "ps"), ("docker", "service", "inspect"),
    ("docker", "node", "ls"), ("docker", "node", "ps"), ("docker", "node", "inspect"),
    ("docker", "network", "ls"), ("docker", "network", "inspect"), ("docker", "ps"),
    ("docker", "inspect"), ("docker", "info"), ("nslookup",), ("ping",),
)
SUBSHELL_RE = re.compile(r"\$\(([^()]*)\)")
OPERATORS = set("();<>|&\n")


@dataclass
class StepCheck:
    index: int
    name: str
    status: str  # passed, failed, not checkable read-only
    detail: str = ""
    checks: list[dict[str, str]] = field(default_factory=list)

    def shown(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "status": self.status,
                "detail": self.detail, "checks": self.checks}


def is_question(command: str) -> bool:
    """True if `command` only asks (a known query, no redirection, no second command)."""
    for inner in SUBSHELL_RE.findall(command):
        if not is_question(inner):
            return False
    flat = SUBSHELL_RE.sub("X", command)
    if "`" in flat or "$(" in flat:
        return False  # a command inside a word, or nested: not read as a question
    lexer = shlex.shlex(flat, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:
        return False
    if not words or any(set(word) <= OPERATORS for word in words):
        return False
    if words[0] == "timeout" and len(words) > 2:
        words = words[2:]
    return any(tuple(words[:len(q)]) == q for q in QUESTIONS)


def step_names(scenario: Scenario) -> list[str]:
    return [step.name for step in scenario.steps]


def check(scenario: Scenario, lab: Lab) -> list[StepCheck]:
    """Each step of the lesson judged on the lab as it is; nothing on the lab changes."""
    cluster = Cluster(lab)
    values: dict[str, Value] = {f"images.{k}": v for k, v in lab.spec.images.items()}
    values["lab.name"] = lab.spec.name
    for name, raw in scenario.variables.items():
        values[name] = template.render(raw, values)
    return [_step(number, step, cluster, values)
            for number, step in enumerate(scenario.steps, 1)]


def _step(number: int, step: Step, cluster: Cluster, values: dict[str, Value]) -> StepCheck:
    found = StepCheck(number, step.name, NOT_CHECKABLE)
    if step.run and is_question(step.run) and step.checks:
        unknown = sorted({name for text in [step.run] + [c.pattern + c.text for c in step.checks]
                          for name in template.references(text) if name not in values})
        if unknown:
            found.detail = "needs " + ", ".join(unknown) + " from a step that changes the lab"
            return found
        if any(c.needs for c in step.checks) or step.needs:
            found.detail = "needs a kernel feature this check does not probe"
            return found
        return _asked(found, step, cluster, values)
    if _creates(step):
        assert step.wait is not None  # _creates says so
        return _replicas(found, step.wait.service, cluster)
    found.detail = "its command changes the lab" if step.run else "nothing to check"
    return found


def _creates(step: Step) -> bool:
    """The step creates the service its replicas wait is about."""
    if step.wait is None or step.wait.kind != "replicas":
        return False
    words = step.run.split()
    named = f"--name={step.wait.service}" in words or any(
        pair == ("--name", step.wait.service) for pair in itertools.pairwise(words))
    return words[:3] == ["docker", "service", "create"] and named


def _asked(found: StepCheck, step: Step, cluster: Cluster,
           values: dict[str, Value]) -> StepCheck:
    command = template.render(step.run, values, shlex.quote)
    try:
        # targets.resolve waits for a task to appear (a step just created it); a check
        # looks at the lab as it is, so no task now is the answer.
        if step.target.kind in ("task", "node-of") and not any(
                t.running for t in cluster.tasks(step.target.name)):
            return _failed(found, f"no running task of service {step.target.name}")
        places = resolve(cluster, step.target, command)
        results = []
        captured: dict[str, Value] = {}
        for place in places:
            ran = place.node.run(place.command, timeout=QUERY_SECONDS)
            for item in step.checks:
                judgement = judge(item, ran.exit_code if ran.exit_code is not None else -1,
                                  ran.output, values,
                                  node=place.node.name if len(places) > 1 else "")
                if judgement.result is not None:
                    results.append(judgement.result)
                captured.update(judgement.captured)
    except LabError as exc:
        return _failed(found, str(exc))
    found.checks = [{"label": r.label, "status": r.status, "detail": r.detail} for r in results]
    failed = [r for r in results if r.status == FAILED]
    found.status = FAILED if failed else PASSED
    found.detail = "; ".join(f"{r.label}: {r.detail}" for r in failed)
    if not failed:
        values.update(captured)
    return found


def _replicas(found: StepCheck, service: str, cluster: Cluster) -> StepCheck:
    try:
        replicas = cluster.replicas(service)
    except LabError as exc:
        return _failed(found, str(exc))
    label = f"service {service} exists and runs all its tasks"
    if replicas is None:
        return _failed(found, f"no service {service}", label)
    running, desired = replicas
    if desired and running == desired:
        found.status, found.checks = PASSED, [{"label": label, "status": PASSED,
                                               "detail": f"{running}/{desired}"}]
        return found
    return _failed(found, f"{service} at {running}/{desired}", label)


def _failed(found: StepCheck, detail: str, label: str = "the step's question") -> StepCheck:
    found.status, found.detail = FAILED, detail
    found.checks = [{"label": label, "status": FAILED, "detail": detail}]
    return found
