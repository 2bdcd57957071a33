"""A lab's swarm is never thrown away by the tools: recovered when a manager is lost, left only
on two explicit flags when it is not the lab's, and taken apart without waiting on a manager
that lost its quorum. One real local lab for the module, through the real CLI (the Raft log and
leave-order checks drive lab.swarm in-process on the same real nodes, to see each command)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lab import raft, swarm
from lab.config import load_spec
from lab.context import Lab
from lab.remote import Node
from lab.waits import wait_until
from tests.conftest import CLIResult, LabHandle, lab_fixture

pytestmark = pytest.mark.local

NAME = "t-h1-a"
SERVICE = "docker service create --detach --no-resolve-image --name {} swarmlab/busybox:latest" \
          " sleep 1d"


@pytest.fixture(scope="module")
def lab(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    yield from lab_fixture(tmp_path_factory.mktemp("h1"), NAME, 100)


def on(lab: LabHandle, node: str, command: str) -> CLIResult:
    result = lab.invoke("lab.exec", node, command)
    assert result.code == 0, result.output
    return result


def services(lab: LabHandle, node: str = "manager1") -> list[str]:
    return sorted(on(lab, node, "docker service ls --format '{{.Name}}'").stdout.split())


def assert_lab_swarm(lab: LabHandle) -> None:
    status = lab.status()
    assert [(n["name"], n["role"], n["ready"]) for n in status["nodes"]] == [
        (n["name"], n["role"], True) for n in lab.nodes]
    listing = on(lab, "manager1", "docker node ls --format '{{.Hostname}}'").stdout.split()
    assert sorted(listing) == ["manager1", "manager2", "worker1"]  # no stale entries


def in_process(lab: LabHandle) -> Lab:
    return Lab(load_spec(None, lab_file=str(lab.file)), log=lambda line: None)


def test_the_raft_log_reader_sees_each_new_entry(lab: LabHandle) -> None:
    with in_process(lab) as opened:
        before = raft.last_entry(opened.node("manager2"))
        on(lab, "manager1", SERVICE.format("keep-web"))
        after = raft.last_entry(opened.node("manager2"))
    assert before > (0, 0)
    assert after[0] >= before[0] and after[1] > before[1], (before, after)


def test_a_manager_that_left_does_not_take_the_swarm_with_it(lab: LabHandle) -> None:
    on(lab, "manager1", "docker swarm leave --force")  # manager2 keeps the swarm, leaderless
    up = lab.invoke("lab.up")
    assert up.code == 0, up.output
    assert "manager2: the lab's swarm has no leader" in up.stdout
    assert "manager1 joined as manager" in up.stdout
    assert "docker swarm init --advertise-addr 10.201.100.11" not in up.stdout
    assert services(lab) == ["keep-web"]
    assert_lab_swarm(lab)


def test_a_leaderless_manager_whose_peer_is_gone_is_recovered(lab: LabHandle) -> None:
    on(lab, "manager1", SERVICE.format("keep-db"))
    # manager1's machine and disk vanish: manager2 is left without a quorum, and lab.up
    # makes manager1 anew with an empty disk.
    gone = subprocess.run(["docker", "rm", "-f", f"swarmlab-{NAME}-manager1"],
                          capture_output=True, text=True)
    assert gone.returncode == 0, gone.stderr
    up = lab.invoke("lab.up")
    assert up.code == 0, up.output
    assert "manager1 created" in up.stdout
    assert "manager2: the lab's swarm has no leader" in up.stdout
    assert services(lab, "manager2") == ["keep-db", "keep-web"]
    assert_lab_swarm(lab)


def test_a_stopped_manager_that_comes_back_gets_an_election_not_a_new_cluster(
    lab: LabHandle,
) -> None:
    stopped = subprocess.run(["docker", "kill", f"swarmlab-{NAME}-manager1"],
                             capture_output=True, text=True)
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 90
    while True:  # until manager2's Raft has noticed: it then has no leader
        listed = subprocess.run(["docker", "exec", f"swarmlab-{NAME}-manager2", "docker", "node",
                                 "ls"], capture_output=True, text=True)
        if "does not have a leader" in listed.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert "does not have a leader" in listed.stderr, listed.stdout + listed.stderr
    up = lab.invoke("lab.up")
    assert up.code == 0, up.output
    assert "manager1 started" in up.stdout
    # Both managers are back with their Raft logs: forcing a new cluster would drop one.
    assert "--force-new-cluster" not in up.stdout
    assert services(lab) == ["keep-db", "keep-web"]
    assert_lab_swarm(lab)


def test_force_never_throws_away_a_swarm_holding_services_on_its_own(lab: LabHandle) -> None:
    on(lab, "worker1", "docker swarm leave --force")
    on(lab, "worker1", "docker swarm init --advertise-addr 10.201.100.13")
    on(lab, "worker1", SERVICE.format("their-web"))
    on(lab, "worker1", "docker network create -d overlay their-net")
    on(lab, "worker1", "printf s3cr3t-value | docker secret create their-secret -")

    plain = lab.invoke("lab.up")
    assert plain.code != 0
    assert "worker1: is in another swarm" in plain.stderr
    assert "services their-web" in plain.stderr and "--force" in plain.stderr

    forced = lab.invoke("lab.up", "--force")
    assert forced.code != 0
    lost = "services their-web; networks their-net; secrets their-secret"
    assert lost in forced.stdout  # said before anything is done
    assert lost in forced.stderr and "Pass --discard-services" in forced.stderr
    assert len(forced.stderr.strip().splitlines()) == 1, forced.stderr
    assert "s3cr3t-value" not in forced.output and "Traceback" not in forced.output
    assert services(lab, "worker1") == ["their-web"]  # nothing was changed

    alone = lab.invoke("lab.up", "--discard-services")
    assert alone.code == 2 and "--discard-services goes with --force" in alone.stderr

    both = lab.invoke("lab.up", "--force", "--discard-services")
    assert both.code == 0, both.output
    assert "worker1: left a swarm that is not the lab's" in both.stdout
    assert services(lab) == ["keep-db", "keep-web"]
    assert_lab_swarm(lab)


def test_hold_gives_the_swarm_back_only_once_its_leader_stays(lab: LabHandle) -> None:
    """What lab.reset and lab.snapshot now end with: the vm lane's reset verified a leader and
    the next command said "does not have a leader". Here a manager freezes from the
    second second until manager1 says the leader is gone, and hold returns only once a leader
    has stayed its whole window after the manager came back."""
    container = f"swarmlab-{NAME}-manager2"
    times: dict[str, float] = {}

    def freeze() -> None:
        time.sleep(2)
        subprocess.run(["docker", "pause", container], check=True, capture_output=True)
        times["paused"] = time.monotonic()
        try:  # frozen until manager1 itself says the leader is gone (10-20 s)
            wait_until(lambda: subprocess.run(
                ["docker", "exec", f"swarmlab-{NAME}-manager1", "docker", "node", "ls"],
                capture_output=True, text=True).stderr, timeout=90, interval=1,
                done=lambda said: "does not have a leader" in said, what="the leader lost")
            times["lost"] = time.monotonic()
        finally:
            subprocess.run(["docker", "unpause", container], check=True, capture_output=True)
            times["unpaused"] = time.monotonic()

    before = services(lab)
    freezer = threading.Thread(target=freeze)
    with in_process(lab) as opened:
        freezer.start()
        try:
            swarm.hold(opened, opened.node("manager1"))
            returned = time.monotonic()
        finally:
            freezer.join()
    # Before the manager froze, a leader had been seen for 2 s only; the first break came
    # while it was frozen, so the window could only be whole once it was back.
    assert "lost" in times, times
    assert returned - times["unpaused"] >= swarm.LEADER_HOLD_SECONDS - 2, times
    assert services(lab) == before


def make_manager1_the_leader(lab: LabHandle) -> None:
    """The lab file lists manager1 first: the order that hurt when it was the leader."""
    if "manager1 Leader" in leaders(lab):
        return
    on(lab, "manager1", "docker node demote manager2")
    # A promote right after the demote can meet "update out of sequence"; then manager2 is a
    # manager by its own account only once its new certificate has come.
    on(lab, "manager1", "for i in $(seq 15); do docker node promote manager2 && break; sleep 2;"
       " done")
    on(lab, "manager2", "for i in $(seq 30); do docker node ls >/dev/null 2>&1 && break;"
       " sleep 2; done; docker node ls >/dev/null")
    assert "manager1 Leader" in leaders(lab)


def leaders(lab: LabHandle, node: str = "manager1") -> str:
    return on(lab, node, "docker node ls --filter role=manager"
              " --format '{{.Hostname}} {{.ManagerStatus}}'").stdout


def test_the_leader_leaving_alone_hands_over_first(lab: LabHandle) -> None:
    make_manager1_the_leader(lab)
    left = lab.invoke("swarm.leave", "--node", "manager1")
    assert left.code == 0, left.output
    # manager2 kept a quorum: it is the leader (after at most a short hand-over), with no
    # recovery. Before, it was left alone in a two-manager Raft, leaderless for good.
    on(lab, "manager2", "for i in $(seq 15); do docker node ls >/dev/null 2>&1 && break;"
       " sleep 2; done; true")
    assert "manager2 Leader" in leaders(lab, "manager2")
    assert "manager1$ docker node demote manager1" in left.stdout
    up = lab.invoke("lab.up")
    assert up.code == 0, up.output
    assert "--force-new-cluster" not in up.stdout
    assert services(lab, "manager2") == ["keep-db", "keep-web"]
    assert_lab_swarm(lab)


def test_leave_goes_workers_then_managers_then_the_leader(
    lab: LabHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_manager1_the_leader(lab)

    seen: list[tuple[str, str, float, float]] = []
    real_run = Node.run

    def recorded(node: Node, command: str, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return real_run(node, command, **kwargs)
        finally:
            seen.append((node.name, command, start, time.monotonic()))

    monkeypatch.setattr(Node, "run", recorded)
    with in_process(lab) as opened:
        done = swarm.leave(opened, None, log=lambda line: None)
    assert done == {"manager1": "left", "manager2": "left", "worker1": "left"}
    seen.sort(key=lambda row: row[2])
    leaves = [(name, start) for name, command, start, _ in seen
              if command.startswith("docker swarm leave")]
    assert [name for name, _ in leaves] == ["worker1", "manager2", "manager1"]
    # Every state was read before the first node left, while the swarm had its leader...
    reads = [end for _, command, _, end in seen if command.startswith("docker info")]
    assert reads and max(reads) <= leaves[0][1]
    # ...and once a manager had left, nothing but the leader's own leave followed: no node
    # was asked anything by, or about, a manager without a quorum.
    after = [(name, command) for name, command, start, _ in seen if start > leaves[1][1]]
    assert after == [("manager1", "docker swarm leave --force")]
    # manager2 was demoted by the leader before it left, so the leader kept its quorum.
    demoted = [(name, command) for name, command, _, _ in seen if "demote" in command]
    assert [name for name, _ in demoted] == ["manager1"]
    print("leave commands:", [(n, c[:30], round(e - s, 2)) for n, c, s, e in seen])
    status = lab.status()
    assert [n["swarm_state"] for n in status["nodes"]] == ["inactive"] * 3



def test_swarm_init_never_starts_a_second_swarm_beside_a_node_in_one(lab: LabHandle) -> None:
    left = lab.invoke("swarm.leave")  # every node out of any swarm (already so in order)
    assert left.code == 0, left.output
    on(lab, "worker1", "docker swarm init --advertise-addr 10.201.100.13")
    refused = lab.invoke("swarm.init")
    assert refused.code != 0
    assert "worker1 already in a swarm" in refused.stderr and "Traceback" not in refused.output
    state = on(lab, "manager1", "docker info --format '{{.Swarm.LocalNodeState}}'").stdout
    assert state.strip() == "inactive"
    on(lab, "worker1", "docker swarm leave --force")
    made = lab.invoke("swarm.init")
    assert made.code == 0 and "swarm initialised on manager1" in made.stdout, made.output
