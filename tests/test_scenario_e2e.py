"""Scenarios end to end through the real CLI on the local provider's lab: real nodes, SSH, swarm.

Every shipped scenario must pass, with the IPVS checks reported unavailable (exit 3) where the
kernel has no IPVS; and the faults a teacher meets (a wrong expectation, a timeout, a lab not
ready, Ctrl-C, q at a --step pause) must each end with one clear line, the right exit status,
and the cleanup done.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.spec import PROVIDER_RELEASES, RELEASES
from tests.conftest import INVOKE, ROOT, CLIResult, LabHandle, lab_fixture, run_cli

pytestmark = pytest.mark.scenario

CLI = Callable[..., CLIResult]
SHIPPED = ["swarm-basics", "whoami-dns", "routing-mesh"]
SERVICES = {
    "swarm-basics": ["swarm_test1"],
    "whoami-dns": ["client", "whoami", "whoami-rr"],
    "routing-mesh": ["whoami", "whoami-host"],
}


def kernel_has_ipvs() -> bool:
    """The local provider's nodes share this kernel: does it have IPVS (loaded or loadable)?"""
    if Path("/proc/net/ip_vs").exists():
        return True
    modules = Path("/lib/modules") / os.uname().release
    return modules.is_dir() and any(modules.rglob("ip_vs.ko*"))


# Every scenario runs once per node release (Docker 20.10 and 26.1): the default release on
# the suite's shared lab, the other on a lab of its own (name, octet).
OTHER_RELEASE_LABS = {"bookworm": ("t-h10-scen-b", 224), "trixie": ("t-h10-scen", 223)}


@pytest.fixture(scope="module", params=RELEASES)
def release_lab(request: pytest.FixtureRequest, images: None,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    if request.param == PROVIDER_RELEASES["local"][0]:
        yield request.getfixturevalue("lab_up")
        return
    name, octet = OTHER_RELEASE_LABS[request.param]
    yield from lab_fixture(tmp_path_factory.mktemp("scen"), name, octet, release=request.param)


@pytest.fixture(scope="module")
def cli(release_lab: LabHandle) -> CLI:
    """The CLI against a three-node lab of the tests' own (never the user's default lab)."""
    return release_lab.invoke


def services(cli: CLI) -> list[str]:
    listing = cli("lab.exec", "manager1", "docker service ls --format '{{.Name}}'")
    assert listing.code == 0, listing.output
    return listing.stdout.split()


def lesson(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "lesson.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_scenario_passes(cli: CLI, name: str, tmp_path: Path) -> None:
    journal, junit = tmp_path / "run.json", tmp_path / "run.xml"
    result = cli("scenario.run", name, "--json", str(journal), "--junit", str(junit), timeout=600)
    record = json.loads(journal.read_text())
    checks = [c for step in record["steps"] + record["cleanup"] for c in step["checks"]]
    unavailable = [c for c in checks if c["status"] == "unavailable"]
    ipvs = kernel_has_ipvs()
    needs_ipvs = "ipvs" in record["features"]

    assert [c for c in checks if c["status"] == "failed"] == [], result.output
    assert all(s["status"] in ("passed", "unavailable") for s in record["steps"]), result.output
    if needs_ipvs and not ipvs:
        assert result.code == 3, result.output
        assert record["features"]["ipvs"]["available"] is False
        assert unavailable and {c["detail"] for c in unavailable} == {
            "unavailable: no IPVS in this kernel"
        }
        assert "UNAVAILABLE" in result.stdout
        assert f"{len(unavailable)} check(s) could not run here" in result.stdout
    else:
        assert result.code == 0, result.output
        assert unavailable == []
    # The teacher's view: each command behind its node's prompt, and marks.
    # What it creates carries its label (cleanup removes by that label alone).
    mark = f"swarmlab.scenario={name}"
    assert f"$ docker service create --label {mark} --container-label {mark} --detach --name" in (
        result.stdout)
    assert "✔ exit status 0" in result.stdout
    # The grader's view agrees with the journal: nothing failed, unavailable ones skipped.
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0"
    assert int(suite.get("skipped")) == len(unavailable)
    assert int(suite.get("tests")) >= len(checks)
    # Cleanup ran: none of the scenario's services is left on the swarm.
    assert not set(SERVICES[name]) & set(services(cli))
    if name == "whoami-dns":
        # The VIP and the task addresses came from the swarm itself, not from the file.
        found = record["variables"]
        assert found["vip"] != found["task_ip"] and found["vip"] not in found["task_ips"]
        assert found["task_ip"] in found["task_ips"] and len(found["task_ips"]) == 3


def test_a_wrong_expectation_fails_and_names_the_check(cli: CLI, tmp_path: Path) -> None:
    path = lesson(tmp_path, """\
        title: Wrong on purpose
        teaches: A check that must fail.
        requires: {swarm: 3, images: [busybox]}
        steps:
          - name: Create a service
            run: >-
              docker service create --detach --name t-wrong --no-resolve-image
              {{images.busybox}} sleep 3600
            wait: {for: replicas, service: t-wrong}
          - name: Expect seven replicas
            run: docker service ls
            expect:
              - match: 't-wrong\\s+replicated\\s+7/7'
                label: seven replicas
          - name: Never reached
            run: docker service ls
        cleanup:
          - name: Remove it
            run: docker service rm t-wrong
            expect: [{exit: any}]
        """)
    junit = tmp_path / "run.xml"
    result = cli("scenario.run", str(path), "--junit", str(junit), timeout=300)
    assert result.code == 1, result.output
    where = f"{path}:{line_of(path, 'match:')}"
    assert "  ✘ seven replicas: not in the output" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1] == (
        f"failed: step 2 (Expect seven replicas, {where}): seven replicas: not in the output"
    )
    assert "[3/3] Never reached" not in result.stdout
    assert "t-wrong" not in services(cli)
    cases = ET.parse(junit).getroot().iter("testcase")
    failures = [case for case in cases if case.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["Expect seven replicas: seven replicas"]
    assert where in failures[0].find("failure").get("message")


def test_a_wait_that_times_out_says_why_and_cleans_up(cli: CLI, tmp_path: Path) -> None:
    path = lesson(tmp_path, """\
        title: Never converges
        teaches: An image no node has.
        requires: {swarm: 3}
        steps:
          - name: Create a service of a missing image
            run: >-
              docker service create --detach --name t-timeout --no-resolve-image
              swarmlab/no-such-image:1
            wait: {for: replicas, service: t-timeout, timeout: 6}
        cleanup:
          - name: Remove it
            run: docker service rm t-timeout
            expect: [{exit: any}]
        """)
    result = cli("scenario.run", str(path), timeout=300)
    assert result.code == 1, result.output
    last = result.stdout.rstrip().splitlines()[-1]
    assert last.startswith("failed: step 1 (Create a service of a missing image, ")
    assert "t-timeout at N/N replicas: timed out after 6 s (last seen: 0/1)" in last
    assert "No such image" in last
    assert "t-timeout" not in services(cli)


def test_a_command_that_times_out_fails_the_step(cli: CLI, tmp_path: Path) -> None:
    path = lesson(tmp_path, """\
        title: Too slow
        teaches: A command past its timeout.
        steps:
          - name: Sleep too long
            run: sleep 30
            timeout: 2
        cleanup:
          - name: Sweep
            run: echo swept
        """)
    result = cli("scenario.run", str(path), timeout=120)
    assert result.code == 1, result.output
    last = result.stdout.rstrip().splitlines()[-1]
    assert last.startswith("failed: step 1 (Sleep too long, "), last
    assert re.search(r"\.yaml:4\): the command ran: [\w-]+: `sleep 30` did not finish within 2 s$",
                     last), last
    assert "$ echo swept\nswept\n" in result.stdout  # the same connection still works


def test_a_lab_not_as_required_says_how_to_fix_it(cli: CLI, tmp_path: Path) -> None:
    path = lesson(tmp_path, """\
        title: Too big
        teaches: Needs more nodes than the lab has.
        requires: {swarm: 9}
        steps:
          - name: Never runs
            run: touch /tmp/should-not-exist
        cleanup:
          - name: Sweep
            run: echo swept
        """)
    result = cli("scenario.run", str(path), timeout=300)
    assert result.code == 4, result.output
    last = result.stdout.rstrip().splitlines()[-1]
    assert re.fullmatch(
        r"the lab is not ready: a swarm with 9 Ready nodes is needed, it has 3"
        r" \(manager1, manager2, worker1\); run `invoke (-f \S+ )?lab\.up`", last
    ), last
    assert "Never runs" not in result.stdout
    # No step ran, so nothing of this run is there to remove.
    assert "... cleanup not needed: no step ran" in result.stdout
    assert "$ echo swept" not in result.stdout


def test_bad_input_is_one_line_and_status_2(tmp_path: Path) -> None:
    unknown = run_cli("scenario.run", "swarm-basic")
    assert unknown.code == 2
    assert unknown.stderr.strip().startswith("error: unknown scenario 'swarm-basic'; known: ")
    path = lesson(tmp_path, """\
        title: Broken
        teaches: A typo in a target.
        steps:
          - name: Look
            on: a manger
            run: docker service ls
        """)
    broken = run_cli("scenario.run", str(path))
    assert broken.code == 2
    assert broken.stderr.strip() == (
        f"error: {path}:{line_of(path, 'a manger')}: step 1 (Look): unknown target 'a manger';"
        " allowed: a node name (manager1), 'a manager', 'every node', 'task:SERVICE',"
        " 'node-of:SERVICE', 'node-without:SERVICE'"
    )
    assert "Traceback" not in broken.output


def never_converging(tmp_path: Path, name: str) -> Path:
    return lesson(tmp_path, f"""\
        title: Interrupted
        teaches: Cleanup after Ctrl-C or q.
        requires: {{swarm: 3}}
        steps:
          - name: Create a service that never starts
            run: >-
              docker service create --detach --name {name} --no-resolve-image
              swarmlab/no-such-image:1
            wait: {{for: replicas, service: {name}, timeout: 120}}
          - name: Look at it
            run: docker service ps {name}
        cleanup:
          - name: Remove it
            run: docker service rm {name}
        """)


def test_ctrl_c_still_runs_the_cleanup(cli: CLI, release_lab: LabHandle,
                                      tmp_path: Path) -> None:
    path = never_converging(tmp_path, "t-ctrlc")
    process = subprocess.Popen(
        [*INVOKE, "-f", str(release_lab.file), "scenario.run", str(path)],
        cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=dict(os.environ),
    )
    seen = []
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if "waiting for t-ctrlc at N/N replicas" in line:
            process.send_signal(signal.SIGINT)
            break
    rest, _ = process.communicate(timeout=120)
    output = "".join(seen) + rest
    assert process.returncode == 130, output
    assert "$ docker service rm t-ctrlc\nt-ctrlc\n" in output
    assert output.rstrip().splitlines()[-1] == "interrupted (Ctrl-C): cleanup ran"
    assert "t-ctrlc" not in services(cli)


def test_q_at_a_step_pause_stops_and_cleans_up(
    cli: CLI, release_lab: LabHandle, tmp_path: Path
) -> None:
    path = lesson(tmp_path, """\
        title: Paused
        teaches: --step pauses before each step.
        requires: {swarm: 3, images: [busybox]}
        steps:
          - name: Create a service
            run: >-
              docker service create --detach --name t-step --no-resolve-image
              {{images.busybox}} sleep 3600
          - name: Never reached
            run: docker service ls
        cleanup:
          - name: Remove it
            run: docker service rm t-step
        """)
    done = subprocess.run(
        [*INVOKE, "-f", str(release_lab.file), "scenario.run", str(path), "--step"],
        cwd=ROOT, input="\nq\n",
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 130, done.stdout + done.stderr
    assert "-- Enter runs step 2/2, q stops --" in done.stdout
    assert "[2/2] Never reached" not in done.stdout
    assert "$ docker service rm t-step\nt-step\n" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1] == "stopped at a --step pause: cleanup ran"
    assert "t-step" not in services(cli)
