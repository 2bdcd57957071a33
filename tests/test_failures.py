"""The failures on a real lab, through the real CLI: broken for real, recognised by the
doctor from the lab alone, fixed, and verified healthy by the doctor (exit 0).

One lab serves the whole module: every test leaves it healthy, which the doctor proves
before the next one breaks it again. The doctor is run with the lab's record of broken
failures hidden from it, so it can only know what it finds on the nodes.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from lab.failures import FAILURES
from lab.failures.clock_skew_ca import AHEAD_SECONDS, X509, break_plan, fix_plan
from lab.spec import parse_spec
from tests.conftest import INVOKE, ROOT, LabHandle, lab_fixture, run_cli

pytestmark = pytest.mark.failure

NAME = "t-fail"
OCTET = 30
# Every test on a lab runs once per node release (Docker 20.10 and 26.1): lab name and octet.
RELEASE_LABS = {"bookworm": (NAME, OCTET), "trixie": ("t-h10-fail", 222)}
RELEASE_OF = {name: release for release, (name, _) in RELEASE_LABS.items()}
# What each generation's CLI says for a service on a local network (real output:
# tests/fixtures/docker_words/*/non_overlay_cli.txt).
NO_SUCH_NETWORK = {"bookworm": "Error: No such network: lesson-net",
                   "trixie": "Error response from daemon: network lesson-net not found"}
# A join token's secret part, anywhere in output: it must never show.
TOKEN = re.compile(r"SWMTKN-1-(?!<redacted>)")


# --- without a lab ---------------------------------------------------------------------------
def test_the_four_failures_are_listed() -> None:
    result = run_cli("failure.list")
    assert result.code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()] == list(FAILURES)


@pytest.mark.parametrize("name", list(FAILURES))
def test_each_failure_explains_itself_in_english_and_chinese(name: str) -> None:
    failure = FAILURES[name]()
    english, chinese = failure.explain("en"), failure.explain("zh")
    assert english.startswith("cause: ") and "\nfix: " in english
    assert chinese.startswith("原因分析: ") and "\n解决方法: " in chinese


def test_failure_explain_follows_the_locale() -> None:
    result = run_cli("failure.explain", "firewall-blocks-join", env={"LC_ALL": "zh_CN.UTF-8"})
    assert result.code == 0 and result.stdout.strip() == FAILURES[
        "firewall-blocks-join"]().explain("zh")


def test_an_unknown_failure_or_fix_is_one_line() -> None:
    result = run_cli("failure.break", "no-such-failure")
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "already-in-swarm" in result.stderr
    # A fix a failure does not have is refused before anything breaks.
    wrong = run_cli("failure.run", "non-overlay-network", "--way", "safe")
    assert wrong.code == 2 and wrong.stdout == "" and "allowed: seed" in wrong.stderr


def test_clock_skew_ca_steps_break_and_fix_in_order() -> None:
    spec = parse_spec({"name": "t-fail-vm", "provider": "vagrant", "subnet": "10.201.32.0/24",
                       "nodes": [
        {"name": "manager1", "role": "manager", "address": "10.201.32.11"},
        {"name": "manager2", "role": "manager", "address": "10.201.32.12"},
        {"name": "worker1", "role": "worker", "address": "10.201.32.13"}]})
    steps = [(s.node, s.command) for s in break_plan(spec)]
    # Everyone leaves (workers first), the manager's clock goes ahead with time sync off, the
    # swarm is made, the clock is put right, and then every join meets the x509 error.
    assert steps[:3] == [(n, "docker swarm leave --force")
                         for n in ("worker1", "manager2", "manager1")]
    assert steps[3:8] == [
        ("manager1", "systemctl stop chrony"),
        ("manager1", f"date -s @$(( $(date +%s) + {AHEAD_SECONDS} ))"),
        ("manager1", "docker swarm init --advertise-addr 10.201.32.11"
                     " --listen-addr 10.201.32.11:2377"),
        ("manager1", "date -s @{now}"),
        ("manager1", "systemctl start chrony"),
    ]
    assert AHEAD_SECONDS > 3600  # swarm backdates an hour: less would not show
    joins = break_plan(spec)[8:]
    assert [(s.node, s.expect) for s in joins] == [("manager2", X509), ("worker1", X509)]
    assert "--token {token:manager}" in joins[0].command
    safe = [(s.node, s.command) for s in fix_plan(spec, "safe")]
    on_manager = [c for n, c in safe if n == "manager1"]
    # Clocks right everywhere, the plain rotation (which Docker refuses while the old root is
    # not yet valid), then the bridge: a root made under the right clock, the clock in the old
    # root's window with time sync off for the one rotation to it, the clock right again, a
    # second rotation under it, and the bridge key gone; then fresh joins, and never an init.
    bridge = on_manager[on_manager.index("docker swarm ca --rotate"):]
    assert [c.split(" && openssl")[0] for c in bridge] == [
        "docker swarm ca --rotate",
        "rm -rf /root/swarmlab-bridge-ca && install -d -m 700 /root/swarmlab-bridge-ca",
        "systemctl stop chrony",
        "date -s @{root_window}",
        "docker swarm ca --rotate --quiet --ca-cert /root/swarmlab-bridge-ca/ca.crt"
        " --ca-key /root/swarmlab-bridge-ca/ca.key",
        "date -s @{now}",
        "systemctl start chrony",
        "docker swarm ca --rotate --quiet",
        "rm -rf /root/swarmlab-bridge-ca",
    ]
    assert "openssl req -x509" in bridge[1] and "-days 3650" in bridge[1]
    assert safe.index(("manager1", "docker swarm ca --rotate")) > max(
        i for i, (n, c) in enumerate(safe) if c == "date -s @{now}" and n != "manager1")
    assert [n for n, c in safe if c.startswith("docker swarm join")] == ["manager2", "worker1"]
    assert not any(c.startswith("docker swarm init") for _, c in safe)
    seed = [s.command for s in fix_plan(spec, "seed")]
    assert seed.index(next(c for c in seed if c.startswith("docker swarm init"))) > max(
        i for i, c in enumerate(seed) if c.startswith("date -s"))
    rhel = replace(spec, os_family="rhel")
    assert ("manager1", "systemctl stop chronyd") in [(s.node, s.command)
                                                      for s in break_plan(rhel)]


# --- on a lab --------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=list(RELEASE_LABS))
def lab(images: None, tmp_path_factory: pytest.TempPathFactory,
        request: pytest.FixtureRequest) -> Iterator[LabHandle]:
    name, octet = RELEASE_LABS[request.param]
    yield from lab_fixture(tmp_path_factory.mktemp("fail"), name, octet, release=request.param)


def broken(lab: LabHandle) -> dict[str, Any]:
    return json.loads(lab.state_file.read_text())["broken"]


def doctor(lab: LabHandle) -> dict[str, Any]:
    """`lab.doctor --json` with the record of broken failures hidden: it sees the lab alone."""
    kept = broken(lab)
    state = json.loads(lab.state_file.read_text())
    lab.state_file.write_text(json.dumps({**state, "broken": {}}))
    try:
        result = lab.invoke("lab.doctor", "--json", "--lang", "en")
    finally:
        state = json.loads(lab.state_file.read_text())
        lab.state_file.write_text(json.dumps({**state, "broken": kept}))
    assert result.stdout.startswith("{"), result.output
    report = json.loads(result.stdout)
    assert report["exit_code"] == result.code
    return report


def problems(report: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"]
            if f["check"] == check and f["severity"] in ("error", "warning")]


def assert_healthy(lab: LabHandle) -> None:
    report = doctor(lab)
    assert report["exit_code"] == 0, [f for f in report["findings"]
                                      if f["severity"] in ("error", "warning")]
    overlay = next(f for f in report["findings"] if f["check"] == "overlay")
    assert overlay["severity"] == "ok" and "proven end to end" in overlay["saw"]


def test_a_fresh_lab_is_healthy_by_the_doctor(lab: LabHandle) -> None:
    assert_healthy(lab)


def test_clock_skew_ca_is_refused_on_local_in_one_line(lab: LabHandle) -> None:
    result = lab.invoke("failure.break", "clock-skew-ca")
    assert result.code == 1 and result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line
    assert "share this machine's clock" in line
    assert "vagrant" in line and "vmware" in line
    assert broken(lab) == {}


def test_already_in_swarm(lab: LabHandle) -> None:
    result = lab.invoke("failure.break", "already-in-swarm")
    assert result.code == 0, result.output
    assert "This node is already part of a swarm" in result.stdout
    assert "Removing this node leaves 1 managers out of 2" in result.stdout
    assert "The swarm does not have a leader" in result.stdout
    assert "manager2$ docker swarm join --token <manager-token>" in result.stdout
    assert not TOKEN.search(result.output)
    assert broken(lab)["already-in-swarm"]["phase"] == "broken"

    report = doctor(lab)
    assert report["exit_code"] == 1
    found = {(f["node"], f["saw"].split(":")[0]) for f in problems(report, "membership")}
    assert ("manager2", "manager2 is in no swarm (LocalNodeState inactive); the lab file makes"
            " it a manager") in found
    assert any(node == "" and saw.startswith("the swarm has no leader") for node, saw in found)

    fixed = lab.invoke("failure.fix", "already-in-swarm", "--way", "seed")
    assert fixed.code == 0, fixed.output
    assert "docker swarm init --force-new-cluster" in fixed.stdout
    assert "docker node rm --force" in fixed.stdout
    assert broken(lab) == {}
    assert_healthy(lab)


def test_non_overlay_network(lab: LabHandle) -> None:
    result = lab.invoke("failure.break", "non-overlay-network")
    assert result.code == 0, result.output
    assert NO_SUCH_NETWORK[RELEASE_OF[lab.name]] in result.stdout
    assert "The network lesson-net cannot be used with services" in result.stdout

    try:
        report = doctor(lab)
        assert report["exit_code"] == 1
        found = problems(report, "networks")
        # Once in a full run (never alone) the finding here had no node: its text tells why.
        assert [(f["node"], f["saw"][:21]) for f in found] == [
            ("manager1", "lesson-net is a local")], found
    finally:  # the module's later tests need the lab whole, whatever the doctor said
        fixed = lab.invoke("failure.fix", "non-overlay-network")
    assert fixed.code == 0, fixed.output
    assert "docker network create -d overlay lesson-net" in fixed.stdout
    assert re.search(r"lesson-web\s+replicated\s+1/1", fixed.stdout)
    assert_healthy(lab)


def test_firewall_blocks_join(lab: LabHandle) -> None:
    result = lab.invoke("failure.break", "firewall-blocks-join")
    assert result.code == 0, result.output
    assert "manager1$ iptables -I INPUT -p tcp --dport 2377" in result.stdout
    assert "connect: no route to host" in result.stdout

    report = doctor(lab)
    assert report["exit_code"] == 1
    ports = {(f["node"], f["saw"]) for f in problems(report, "ports")}
    manager = lab.nodes[0]["address"]
    assert ("worker1", f"worker1 cannot connect to manager1 ({manager}):2377/tcp:"
            " No route to host") in ports
    [rule] = problems(report, "firewall")
    assert rule["node"] == "manager1" and "REJECT" in rule["saw"]
    assert any(f["node"] == "worker1" for f in problems(report, "membership"))

    fixed = lab.invoke("failure.fix", "firewall-blocks-join")  # the better way: ports opened
    assert fixed.code == 0, fixed.output
    for port in ("-p tcp --dport 2377", "-p tcp --dport 7946", "-p udp --dport 7946",
                 "-p udp --dport 4789"):
        assert f"iptables -I INPUT {port} -j ACCEPT" in fixed.stdout
    assert "worker1 joined as a worker" in fixed.stdout
    assert_healthy(lab)


def test_failure_run_is_a_whole_lesson(lab: LabHandle) -> None:
    result = lab.invoke("failure.run", "firewall-blocks-join", "--way", "seed", "--lang", "zh")
    assert result.code == 0, result.output
    out = result.stdout
    assert out.index("connect: no route to host") < out.index("原因分析") < out.index("解决方法")
    assert out.index("解决方法") < out.index("iptables -D INPUT -p tcp --dport 2377")
    assert "the lab is healthy again" in out
    assert broken(lab) == {}
    assert_healthy(lab)


def test_an_interrupted_break_is_undone_by_fix(lab: LabHandle) -> None:
    process = subprocess.Popen(
        [*INVOKE, "-f", str(lab.file), "failure.break", "firewall-blocks-join"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    seen = []
    # Killed (no chance to clean up) as the rule is typed: the worker has left, the rule
    # may or may not be in, the join was never tried.
    for line in process.stdout:
        seen.append(line)
        if line.startswith("manager1$ iptables -I INPUT"):
            process.kill()
            break
    process.wait(timeout=60)
    assert process.returncode != 0, "".join(seen)
    assert broken(lab)["firewall-blocks-join"]["phase"] == "breaking"
    assert "broken on purpose: firewall-blocks-join" in lab.invoke("lab.status").stdout

    fixed = lab.invoke("failure.fix", "firewall-blocks-join", "--way", "seed")
    assert fixed.code == 0, fixed.output
    assert "worker1 joined as a worker" in fixed.stdout
    assert lab.status()["broken"] == []
    assert_healthy(lab)
