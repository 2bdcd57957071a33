"""Every step of `lab.up` and `class.up` can be killed (SIGKILL: no handler runs) and rerun.

Kill points, each at a step boundary, with the work shared between them (one lab is
brought up through all of them, then once more to the end):
- right after each node's container is made, before its keys are in (the provider's test
  hook SWARMLAB_TEST_KILL_AT, see lab/providers/local.py): manager1, manager2, worker1;
- mid-prepare: manager2's `docker load` of the lab's images is held by a shim put in the
  node by this test, and lab.up is killed by its PID while it waits there;
- mid-join: the swarm is made on manager1, worker1's `docker swarm join` is held;
and, once whole, a node whose host key was made again inside it is re-pinned by lab.up.
The rerun must give a healthy lab (every node Ready, right roles) with no duplicate
container, volume, network or swarm entry, and lab.down must leave nothing behind.
The same for class.up with three students, killed while their labs are being made; and a
lab.down that Docker refuses says so in one line, then a rerun finishes it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from lab.providers.local import TEST_KILL_AT
from tests.conftest import INVOKE, ROOT, LabHandle, run_cli, write_lab

pytestmark = pytest.mark.local

LAB = "t-h5-r"
CLASS = "t-h5c"
STUDENTS = ("ann", "ben", "cy")
KILLED = -signal.SIGKILL
# Holds the first `docker` command whose arguments contain the pattern: the held command
# never runs; its PID is left in /run/h5-held for the test to end it.
SHIM = """#!/bin/sh
# tests/test_resume.py: hold one docker command so lab.up can be killed during it.
case "$*" in *"{pattern}"*) echo $$ > /run/h5-held; exec sleep 600;; esac
exec /usr/bin/docker "$@"
"""


def docker(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, input=stdin)


def labelled(kind: str, lab: str) -> list[str]:
    """Names of the containers, volumes or networks that carry the lab's label."""
    listing = ["container", "ls", "-a", "--format", "{{.Names}}"] if kind == "container" else [
        kind, "ls", "--format", "{{.Name}}"]
    out = docker(*listing, "--filter", f"label=swarmlab.lab={lab}")
    assert out.returncode == 0, out.stderr
    return sorted(out.stdout.split())


def remove_leftovers(lab: str) -> None:
    """What an interrupted earlier run of this test left, by the lab's label only."""
    for kind in ("container", "volume", "network"):
        names = labelled(kind, lab)
        if names:
            docker(kind, "rm", *(["-f"] if kind != "network" else []), *names)


def hold(container: str, pattern: str) -> None:
    put = docker("exec", "-i", container, "sh", "-c",
                 "cat > /usr/local/bin/docker && chmod 755 /usr/local/bin/docker",
                 stdin=SHIM.format(pattern=pattern))
    assert put.returncode == 0, put.stderr


def held(container: str) -> bool:
    return docker("exec", container, "test", "-s", "/run/h5-held").returncode == 0


def release(container: str) -> None:
    """Take the shim out and end the command it held (a process this test started)."""
    done = docker("exec", container, "sh", "-c", "rm -f /usr/local/bin/docker;"
                  " kill $(cat /run/h5-held) 2>/dev/null; rm -f /run/h5-held")
    assert done.returncode == 0, done.stderr


def killed_when(args: list[str], ready: Callable[[], bool], seconds: float = 300) -> str:
    """Run `invoke ARGS`, SIGKILL it (by its PID) once `ready()` holds; its output."""
    process = subprocess.Popen([*INVOKE, *args], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + seconds
    try:
        while not ready():
            if process.poll() is not None:
                pytest.fail("ended before its kill point: " + process.communicate()[0])
            if time.monotonic() > deadline:
                pytest.fail(f"kill point not reached in {seconds:.0f} s")
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        output = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == KILLED, output
    return output


def swarm_nodes(container: str) -> list[str]:
    out = docker("exec", container, "docker", "node", "ls", "--format",
                 "{{.Hostname}} {{.Status}} {{.ManagerStatus}}")
    return sorted(line.strip() for line in out.stdout.splitlines()) if out.returncode == 0 else []


@pytest.fixture()
def lab(images: None, tmp_path: Path) -> Iterator[LabHandle]:
    remove_leftovers(LAB)
    handle = write_lab(tmp_path, LAB, 140)
    yield handle
    down = handle.invoke("lab.down")
    assert down.code == 0, down.output
    assert [labelled(kind, LAB) for kind in ("container", "volume", "network")] == [[], [], []]


def test_lab_up_killed_at_every_step_boundary_is_finished_by_a_rerun(lab: LabHandle) -> None:
    started = time.monotonic()
    name = {node["name"]: f"swarmlab-{LAB}-{node['name']}" for node in lab.nodes}

    # Killed after each node's container is made, before its keys are in.
    for node in ("manager1", "manager2", "worker1"):
        killed = lab.invoke("lab.up", env={TEST_KILL_AT: f"create:{LAB}/{node}"}, timeout=300)
        assert killed.code == KILLED, killed.output
        assert name[node] in labelled("container", LAB)
        if node != "manager1":
            previous = {"manager2": "manager1", "worker1": "manager2"}[node]
            assert f"{previous}: left half-made by an interrupted run" in killed.output

    # Mid-prepare: manager2 (whole since the last run) holds its image load.
    hold(name["manager2"], "load -q")
    output = killed_when(["-f", str(lab.file), "lab.up"], lambda: held(name["manager2"]))
    assert "worker1: left half-made by an interrupted run; making it again" in output
    release(name["manager2"])

    # Mid-join: manager1 and manager2 form the swarm, worker1's join is under way.
    hold(name["worker1"], "swarm join")
    killed_when(["-f", str(lab.file), "lab.up"], lambda: held(name["worker1"]))
    members = [line.split()[0] for line in swarm_nodes(name["manager1"])]
    assert "manager1" in members and "worker1" not in members, members
    release(name["worker1"])

    finished = lab.invoke("lab.up", timeout=600)
    assert finished.code == 0, finished.output
    status = lab.status()
    assert [(n["name"], n["role"], n["ready"]) for n in status["nodes"]] == [
        (n["name"], n["role"], True) for n in lab.nodes]
    assert labelled("container", LAB) == sorted(name.values())
    assert labelled("volume", LAB) == sorted(f"{c}-docker" for c in name.values())
    assert labelled("network", LAB) == [f"swarmlab-{LAB}"]
    assert swarm_nodes(name["manager1"]) == [
        "manager1 Ready Leader", "manager2 Ready Reachable", "worker1 Ready"]
    state = json.loads(lab.state_file.read_text())
    assert sorted(state["machines"]) == ["manager1", "manager2", "worker1"]
    print(f"lab.up killed 5 times and finished in {time.monotonic() - started:.0f} s")

    # A host key made again inside a node: the SSH error says lab.up re-pins it, and it does.
    remade = docker("exec", name["manager2"], "sh", "-c",
                    "rm /etc/ssh/ssh_host_ed25519_key*; ssh-keygen -q -t ed25519 -N ''"
                    " -f /etc/ssh/ssh_host_ed25519_key && systemctl restart ssh")
    assert remade.returncode == 0, remade.stderr
    refused = lab.invoke("lab.exec", "manager2", "true")
    assert refused.code != 0 and "run `invoke lab.up` to re-pin it" in refused.output, refused
    repinned = lab.invoke("lab.up")
    assert repinned.code == 0, repinned.output
    assert "manager2: its host key is not the pinned one" in repinned.output
    reached = lab.invoke("lab.exec", "manager2", "hostname")
    assert reached.code == 0 and "manager2" in reached.stdout, reached.output


def test_lab_down_says_in_one_line_why_it_stopped(images: None, tmp_path: Path) -> None:
    """A Docker error during lab.down (here: a container that is not the lab's still on the
    lab's network) is one line naming what it was removing, then a rerun finishes."""
    name = "t-h5-d"
    remove_leftovers(name)
    lab = write_lab(tmp_path, name, 141)
    network = f"swarmlab-{name}"
    made = docker("network", "create", "--label", f"swarmlab.lab={name}", "--subnet",
                  "10.201.141.0/24", network)
    assert made.returncode == 0, made.stderr
    blocker = docker("run", "-d", "--rm", "--network", network, "--label", "t-h5-blocker",
                     "swarmlab/busybox:latest", "sleep", "120")
    assert blocker.returncode == 0, blocker.stderr
    try:
        down = lab.invoke("lab.down")
        assert down.code == 1, down.output
        assert "Traceback" not in down.output
        error = down.stderr.strip().splitlines()
        assert len(error) == 1, down.stderr
        assert error[0].startswith(f"error: lab.down stopped removing network {network}: ")
        assert "active endpoints" in error[0] and "rerun `invoke lab.down`" in error[0]
    finally:
        docker("rm", "-f", blocker.stdout.strip())
    again = lab.invoke("lab.down")
    assert again.code == 0, again.output
    assert labelled("network", name) == []


def write_class(tmp: Path) -> tuple[Path, Path]:
    """Two-node student labs in 10.201.148.0/22: students get .148, .149 and .150."""
    lab_file = tmp / f"{CLASS}.yaml"
    lab_file.write_text(yaml.safe_dump({
        "name": CLASS, "subnet": "10.201.148.0/24", "state_dir": str(tmp / "state"),
        "nodes": [{"name": "manager1", "role": "manager", "address": "10.201.148.11"},
                  {"name": "worker1", "role": "worker", "address": "10.201.148.12"}],
        "classroom": {"address_pool": "10.201.148.0/22", "student_prefix": 24, "parallel": 3},
    }))
    roster = tmp / "roster.csv"
    roster.write_text("id,name\n" + "".join(f"{sid},{sid.title()}\n" for sid in STUDENTS))
    return lab_file, roster


def test_class_up_killed_mid_way_is_finished_by_a_rerun(images: None, tmp_path: Path) -> None:
    started = time.monotonic()
    labs = [f"{CLASS}-{sid}" for sid in STUDENTS]
    for name in labs:
        remove_leftovers(name)
    lab_file, roster = write_class(tmp_path)
    up = ["-f", str(lab_file), "class.up", "--roster", str(roster)]
    try:
        # Killed when ben's worker1 is made: the three labs are being made at once, so the
        # others are cut wherever they are.
        killed = run_cli(*up, env={TEST_KILL_AT: f"create:{CLASS}-ben/worker1"}, timeout=600)
        assert killed.code == KILLED, killed.output
        assert f"swarmlab-{CLASS}-ben-worker1" in labelled("container", f"{CLASS}-ben")

        finished = run_cli(*up, timeout=900)
        assert finished.code == 0, finished.output
        assert "class.up: 3 of 3 ok" in finished.stdout, finished.output
        if "on the local provider" not in finished.output:
            pytest.fail("class.up gave no word on what root in a local node can do")
        checked = run_cli("-f", str(lab_file), "class.check", "--json", timeout=600)
        assert checked.code == 0, checked.output
        assert json.loads(checked.stdout)["healthy"] == 3
        for name in labs:
            nodes = [f"swarmlab-{name}-manager1", f"swarmlab-{name}-worker1"]
            assert labelled("container", name) == nodes
            assert labelled("volume", name) == [f"{node}-docker" for node in nodes]
            assert labelled("network", name) == [f"swarmlab-{name}"]
            assert swarm_nodes(nodes[0]) == ["manager1 Ready Leader", "worker1 Ready"]
        print(f"class.up killed once and finished in {time.monotonic() - started:.0f} s")
    finally:
        down = run_cli("-f", str(lab_file), "class.down", timeout=600)
        left = {name: [labelled(kind, name) for kind in ("container", "volume", "network")]
                for name in labs}
        for name in labs:
            remove_leftovers(name)
    assert down.code == 0, down.output
    assert all(found == [[], [], []] for found in left.values()), left
