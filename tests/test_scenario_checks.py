"""Checks, captures and the records for graders, on real outputs of the commands scenarios run."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.scenario import journal
from lab.scenario.checks import judge
from lab.scenario.model import Check, Where
from lab.scenario.results import (
    FAILED,
    NOT_RUN,
    PASSED,
    UNAVAILABLE,
    CheckResult,
    CommandRecord,
    RunRecord,
    StepRecord,
)

pytestmark = [pytest.mark.scenario, pytest.mark.unit]

HERE = Where("lesson.yaml", 7)

# busybox 1.35 `nslookup -type=a`, as a client task on an overlay network prints it.
NSLOOKUP_VIP = """\
Server:\t\t127.0.0.11
Address:\t127.0.0.11:53

Non-authoritative answer:
Name:\twhoami
Address: 10.0.1.2
"""
NSLOOKUP_TASKS = """\
Server:\t\t127.0.0.11
Address:\t127.0.0.11:53

Non-authoritative answer:
Name:\ttasks.whoami
Address: 10.0.1.23
Name:\ttasks.whoami
Address: 10.0.1.5
Name:\ttasks.whoami
Address: 10.0.1.24
"""


def check(kind: str, **fields: object) -> Check:
    return Check(kind=kind, where=HERE, **fields)  # type: ignore[arg-type]


def test_exit_status() -> None:
    assert judge(check("exit", code=0), 0, "", {}).result.status == PASSED
    failed = judge(check("exit", code=0), 1, "Error: No such service: web", {}).result
    assert failed.status == FAILED
    assert failed.detail == "exit status was 1: Error: No such service: web"
    assert judge(check("exit", code="nonzero"), 0, "", {}).result.status == FAILED
    assert judge(check("exit", code="nonzero"), 2, "", {}).result.status == PASSED
    # `exit: any` judges nothing, so it shows nothing and counts for nothing.
    assert judge(check("exit", code="any"), 7, "", {}).result is None


def test_capture_takes_the_first_group() -> None:
    capture = check("capture", name="vip", pattern=r"^Name:\s+whoami\S*\s*\nAddress:\s*([0-9.]+)$")
    judged = judge(capture, 0, NSLOOKUP_VIP, {})
    assert judged.result.status == PASSED
    assert judged.captured == {"vip": "10.0.1.2"}
    assert judged.result.detail == "vip = 10.0.1.2"
    missing = judge(capture, 0, NSLOOKUP_TASKS, {})
    assert missing.result.status == FAILED and missing.captured == {}


def test_capture_all_gives_a_list() -> None:
    capture = check("capture", name="ips", pattern=r"^Address: ([0-9.]+)$", all=True)
    judged = judge(capture, 0, NSLOOKUP_TASKS, {})
    assert judged.captured == {"ips": ["10.0.1.23", "10.0.1.5", "10.0.1.24"]}


def test_a_variable_in_a_pattern_matches_literally() -> None:
    # 10.0.1.2 must not be found in 10.0.1.23 nor stand for any character in its dots.
    no_vip = check("no_match", pattern=r"^Address:\s*{{vip}}$")
    assert judge(no_vip, 0, NSLOOKUP_TASKS, {"vip": "10.0.1.2"}).result.status == PASSED
    assert judge(no_vip, 0, "Address: 10x0x1x2", {"vip": "10.0.1.2"}).result.status == PASSED
    found = judge(no_vip, 0, NSLOOKUP_VIP, {"vip": "10.0.1.2"}).result
    assert found.status == FAILED and found.detail == "found 'Address: 10.0.1.2'"
    vip = check("match", pattern=r"PING whoami \({{vip}}\)")
    ping = "PING whoami (10.0.1.2): 56 data bytes\n"
    assert judge(vip, 0, ping, {"vip": "10.0.1.2"}).result.status == PASSED
    assert judge(vip, 0, ping, {"vip": "10.0.1.3"}).result.status == FAILED
    assert judge(vip, 0, ping, {"vip": "10.0.1.2"}).result.label == (
        r"output matches /PING whoami \(10.0.1.2\)/"
    )


def test_contains_wants_every_word_whole() -> None:
    contains = check("contains", text="{{ips}}")
    ips = {"ips": ["10.0.1.5", "10.0.1.23"]}
    assert judge(contains, 0, NSLOOKUP_TASKS, ips).result.status == PASSED
    short = judge(contains, 0, NSLOOKUP_TASKS, {"ips": ["10.0.1.2", "10.0.1.5"]}).result
    assert short.status == FAILED and short.detail == "missing: 10.0.1.2"
    ipvs = "TCP  10.0.0.4:1000 rr\n  -> 10.0.0.5:8000   Masq  1  0  0\n"
    assert judge(contains, 0, ipvs, {"ips": ["10.0.0.5"]}).result.status == PASSED
    assert judge(contains, 0, ipvs, {"ips": ["10.0.0.51"]}).result.status == FAILED


def test_distinct_counts_different_values() -> None:
    answers = "I'm 1a2b3c4d5e6f\nI'm 6f5e4d3c2b1a\nI'm 1a2b3c4d5e6f\n"
    two = check("distinct", pattern=r"^I'm (\S+)$", minimum=2)
    judged = judge(two, 0, answers, {}).result
    assert judged.status == PASSED and judged.detail == "2 different: 1a2b3c4d5e6f, 6f5e4d3c2b1a"
    three = check("distinct", pattern=r"^I'm (\S+)$", minimum=3)
    assert judge(three, 0, answers, {}).result.status == FAILED
    assert judge(two, 0, "I'm 1a2b3c4d5e6f\n" * 6, {}).result.status == FAILED


def test_a_check_needing_a_missing_feature_is_unavailable_never_passed() -> None:
    answers = "I'm 1a2b3c4d5e6f\nI'm 6f5e4d3c2b1a\n"
    spread = check("distinct", pattern=r"^I'm (\S+)$", minimum=2, needs=("ipvs",))
    missing = {"ipvs": "no /proc/net/ip_vs"}
    judged = judge(spread, 0, answers, {}, missing=missing).result
    assert judged.status == UNAVAILABLE
    assert judged.detail == "unavailable: no IPVS in this kernel"
    # The step's own `needs` counts too, even for its implicit exit check.
    exit_check = check("exit", code=0)
    assert judge(exit_check, 1, "", {}, missing=missing, step_needs=("ipvs",)).result.status == (
        UNAVAILABLE
    )
    # Where the feature is present, the same check is judged as usual.
    assert judge(spread, 0, answers, {}, missing={}).result.status == PASSED
    assert judge(spread, 0, "", {}, missing={}).result.status == FAILED


def test_labels_show_values_and_nodes() -> None:
    labelled = check("match", pattern="x", label="the VIP {{vip}} answers")
    judged = judge(labelled, 0, "x", {"vip": "10.0.1.2"}, node="worker1").result
    assert judged.label == "worker1: the VIP 10.0.1.2 answers"
    assert judged.node == "worker1" and judged.where == "lesson.yaml:7"


def run_record() -> RunRecord:
    run = RunRecord("demo", "Demo", "scenarios/demo.yaml", "swarmlab", "local", started=0.0)
    run.requirements.append(CheckResult("a swarm with 3 Ready nodes", PASSED))
    passed = StepRecord("step", 1, "Create", "demo.yaml:5", "a manager", status=PASSED)
    passed.commands.append(CommandRecord("manager1", "manager1", "docker service ls", 0, "ok"))
    passed.checks.append(CheckResult("exit status 0", PASSED, where="demo.yaml:5"))
    passed.checks.append(CheckResult("the VIP answers", UNAVAILABLE,
                                     "unavailable: no IPVS in this kernel", where="demo.yaml:9"))
    failed = StepRecord("step", 2, "Look", "demo.yaml:12", "task:client", status=FAILED)
    failed.checks.append(CheckResult("output matches /x/", FAILED, "not in the output",
                                     where="demo.yaml:15"))
    never = StepRecord("step", 3, "Later", "demo.yaml:20", "a manager", status=NOT_RUN)
    cleanup = StepRecord("cleanup", 1, "Remove", "demo.yaml:25", "a manager", status=FAILED,
                         error="manager1: SSH to 10.77.0.11:22 failed")
    run.steps += [passed, failed, never]
    run.cleanup.append(cleanup)
    run.outcome, run.exit_code, run.message = FAILED, 1, "failed: step 2"
    return run


def test_junit_has_a_case_per_check_failures_and_skips(tmp_path: Path) -> None:
    path = tmp_path / "out" / "run.xml"
    journal.write_junit(run_record(), str(path))
    suite = ET.parse(path).getroot()
    assert suite.get("name") == "scenario.demo"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {
        "a swarm with 3 Ready nodes",
        "Create: exit status 0",
        "Create: the VIP answers",
        "Look: output matches /x/",
        "Later",
        "Remove: the step ran",
    }
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "2", "2")
    assert cases["Create: the VIP answers"].find("skipped").get("message") == (
        "unavailable: no IPVS in this kernel"
    )
    assert cases["Look: output matches /x/"].find("failure").get("message") == (
        "not in the output (demo.yaml:15)"
    )
    assert cases["Later"].find("skipped").get("message") == "not run: failed: step 2"
    assert cases["Create: exit status 0"].find("failure") is None
    assert cases["Create: exit status 0"].find("skipped") is None


def test_json_journal_keeps_every_step(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    journal.write_json(run_record(), str(path))
    data = json.loads(path.read_text())
    assert data["format"] == 1 and data["exit_code"] == 1
    assert [s["status"] for s in data["steps"]] == [PASSED, FAILED, NOT_RUN]
    assert data["steps"][0]["commands"][0]["command"] == "docker service ls"
    assert data["steps"][0]["checks"][1]["status"] == UNAVAILABLE
    assert data["cleanup"][0]["error"].startswith("manager1: SSH")
