"""How converge reads a lab's swarm states before it touches anything: pure decisions on the
states shaped as `docker info` gave them on this machine's labs, and the Raft WAL reader on
a segment framed as etcd writes it. The real-lab proofs are in
tests/test_swarm_recovery.py; these cover the cases a three-node lab cannot show cheaply."""

from __future__ import annotations

import struct

import pytest

from lab import raft, swarm
from lab.spec import parse_spec
from lab.swarm import SwarmInfo

pytestmark = pytest.mark.unit

M1_OLD, M1, M2, W1, OUT = "m1old", "m1new", "m2", "w1", "elsewhere"


def state(node: str, node_id: str, managers: list[str], cluster: str = "",
          control: bool = False, error: str = "") -> SwarmInfo:
    return SwarmInfo(node=node, state="active", node_id=node_id, cluster_id=cluster,
                     control=control, manager_ids=managers, error=error)


def inactive(node: str) -> SwarmInfo:
    return SwarmInfo(node=node, state="inactive")


def spec():
    return parse_spec({"name": "t-h1-plan", "subnet": "10.201.109.0/24", "nodes": [
        {"name": "manager1", "role": "manager", "address": "10.201.109.11"},
        {"name": "manager2", "role": "manager", "address": "10.201.109.12"},
        {"name": "worker1", "role": "worker", "address": "10.201.109.13"}]})


def test_a_leaderless_manager_is_still_the_labs_swarm() -> None:
    # The repro as docker info showed it: manager1 left, manager2 has
    # ControlAvailable true, an empty cluster ID and a deadline error.
    states = {
        "manager1": inactive("manager1"),
        "manager2": state("manager2", M2, [M1_OLD, M2], control=True,
                          error="rpc error: code = DeadlineExceeded"),
        "worker1": state("worker1", W1, [M1_OLD, M2]),
    }
    assert not states["manager2"].has_leader and states["manager2"].is_manager
    groups = swarm.swarms_of(states)
    assert [(g.nodes, g.managers) for g in groups] == [(["manager2", "worker1"], ["manager2"])]
    lab_swarm = swarm._the_labs(spec(), swarm._swarms_with_lab_managers(spec(), states),
                                states, recorded="c1")
    assert lab_swarm is not None and lab_swarm.nodes == ["manager2", "worker1"]
    assert lab_swarm.gone(states) == [M1_OLD]  # one of two managers gone: no quorum


def test_the_recorded_swarm_wins_over_one_made_since() -> None:
    # manager1 made a new swarm of its own (what lab.up did before); manager2 and worker1
    # hold the recorded one, which has a leader here.
    states = {
        "manager1": state("manager1", M1, [M1], cluster="new", control=True),
        "manager2": state("manager2", M2, [M1_OLD, M2], cluster="c1", control=True),
        "worker1": state("worker1", W1, [M1_OLD, M2]),
    }
    lab_swarm = swarm._the_labs(spec(), swarm._swarms_with_lab_managers(spec(), states),
                                states, recorded="c1")
    assert lab_swarm is not None and lab_swarm.nodes == ["manager2", "worker1"]


def test_a_swarm_whose_quorum_is_elsewhere_loses_nothing_when_the_lab_leaves_it() -> None:
    states = {"worker1": state("worker1", W1, [OUT]), "manager1": inactive("manager1"),
              "manager2": inactive("manager2")}
    [group] = swarm.swarms_of(states)
    loss = swarm.loss_of(None, group, states)  # type: ignore[arg-type]  # nothing to ask
    assert loss.kept_by == OUT and not loss.holds_services
    assert "nothing of it" in loss.describe()


def test_a_foreign_leaderless_manager_counts_as_holding_services() -> None:
    states = {"worker1": state("worker1", W1, [W1], control=True, error="deadline"),
              "manager1": inactive("manager1"), "manager2": inactive("manager2")}
    [group] = swarm.swarms_of(states)
    loss = swarm.loss_of(None, group, states)  # type: ignore[arg-type]
    assert loss.holds_services and "cannot be read" in loss.describe()


def test_two_of_three_managers_alive_are_a_quorum_to_wait_for() -> None:
    states = {"manager1": state("manager1", "a", ["a", "b", "c"], control=True),
              "manager2": state("manager2", "b", ["a", "b", "c"], control=True)}
    [group] = swarm.swarms_of(states)
    assert group.gone(states) == []  # an election can still come: no new cluster yet


def record(kind: int, data: bytes) -> bytes:
    body = field(1, kind) + field(3, data)
    padding = (8 - len(body) % 8) % 8
    frame = len(body) | ((0x80 | padding) << 56 if padding else 0)
    return struct.pack("<Q", frame) + body + b"\0" * padding


def field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def entry(term: int, index: int) -> bytes:
    return field(2, term) + field(3, index) + field(4, b"\x9f" * 300)  # data: encrypted


def test_the_wal_reader_takes_the_last_entry_not_the_last_campaign() -> None:
    wal = (record(raft.ENTRY_RECORD, entry(2, 27)) + record(raft.ENTRY_RECORD, entry(2, 300))
           + record(3, field(1, 9) + field(3, 300))  # a HardState: term 9 from campaigning
           + b"\0" * 4096)  # the preallocated rest of the segment
    assert raft.wal_last_entry(wal) == (2, 300)
    assert raft.wal_last_entry(b"\0" * 64) == (0, 0)
