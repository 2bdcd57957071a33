"""Records of a run for machines: a JSON journal of every step, and JUnit XML for graders.

JUnit has no word for "could not run here", so an unavailable check is a <skipped> test
case whose message says why; it is never reported as passed.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

from ..errors import LabError
from .results import FAILED, IN_THE_WAY, INTERRUPTED, LAB_NOT_READY, NOT_RUN, UNAVAILABLE, RunRecord

FORMAT = 1


def _write(path: str, text: str) -> None:
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    except OSError as exc:
        raise LabError(f"cannot write {path}: {exc.strerror}") from None


def write_json(run: RunRecord, path: str) -> None:
    data = {"format": FORMAT, **asdict(run)}
    _write(path, json.dumps(data, indent=2, default=str) + "\n")


def write_junit(run: RunRecord, path: str) -> None:
    """One test case per requirement, check and wait; one per step that never ran."""
    suite = ET.Element("testsuite", name=f"scenario.{run.scenario}")
    cases: list[ET.Element] = []

    def case(classname: str, name: str, seconds: float = 0.0) -> ET.Element:
        element = ET.SubElement(
            suite, "testcase", classname=classname, name=name, time=f"{seconds:.3f}"
        )
        cases.append(element)
        return element

    for result in run.requirements:
        case(f"{run.scenario}.requirements", result.label)
    if run.outcome == LAB_NOT_READY:
        ET.SubElement(case(f"{run.scenario}.requirements", "the lab is ready"), "failure",
                      message=run.message)
    if run.outcome == IN_THE_WAY:
        ET.SubElement(case(f"{run.scenario}.requirements", "nothing else holds its names"),
                      "failure", message=run.message)
    for step in run.steps + run.cleanup:
        classname = f"{run.scenario}.{step.phase}{step.index:02d}"
        if step.status in (NOT_RUN, INTERRUPTED):
            skipped = case(classname, step.name)
            ET.SubElement(skipped, "skipped", message=f"{step.status}: {run.message}")
            continue
        for check in step.checks:
            element = case(classname, f"{step.name}: {check.label}", step.seconds)
            if check.status == FAILED:
                ET.SubElement(element, "failure", message=f"{check.detail} ({check.where})")
            elif check.status == UNAVAILABLE:
                ET.SubElement(element, "skipped", message=check.detail)
        if step.error:
            ET.SubElement(case(classname, f"{step.name}: the step ran", step.seconds),
                          "failure", message=f"{step.error} ({step.where})")

    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    suite.set("skipped", str(sum(c.find("skipped") is not None for c in cases)))
    suite.set("errors", "0")
    suite.set("time", f"{run.seconds:.3f}")
    ET.indent(suite)
    _write(path, ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n")
