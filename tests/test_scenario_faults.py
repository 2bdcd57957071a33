"""A scenario whose preparation fails says so: never a "passed" summary before an error.

The runner is the real one; where it would SSH to a node it finds a node that loses its
connection (not a mock of anything that could run: it stands for a node whose SSH dropped,
which the real lanes cannot make happen on demand between two commands).
"""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from lab.errors import NodeError
from lab.remote import CommandResult
from lab.scenario import errors, loader
from lab.scenario.display import Console
from lab.scenario.features import IPVS_PROBE
from lab.scenario.results import FAILED
from lab.scenario.runner import Options, Runner
from lab.spec import parse_spec

pytestmark = [pytest.mark.scenario, pytest.mark.unit]


class NodeThatDropsSSH:
    """Answers every command but the IPVS probe, where its SSH connection is lost."""

    name = "manager1"

    def run(self, command: str, **kw: object) -> CommandResult:
        if command == IPVS_PROBE:
            raise NodeError(self.name, "lost the SSH connection during `probe`: EOF")
        return CommandResult(command, 0, "", "")


class OneNodeLab:
    def __init__(self) -> None:
        self.spec = parse_spec({
            "name": "t-faults", "subnet": "10.201.113.0/24",
            "nodes": [{"name": "manager1", "role": "manager", "address": "10.201.113.11"}],
        })
        self.state = SimpleNamespace(machines={"manager1": {}})
        self.provider = SimpleNamespace(time_scale=1)
        self.recorder = NodeThatDropsSSH()

    def node(self, name: str) -> NodeThatDropsSSH:
        return self.recorder

    def nodes(self) -> list[NodeThatDropsSSH]:
        return [self.recorder]


def test_a_probe_that_loses_its_node_fails_the_run_instead_of_passing(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(yaml.safe_dump({
        "title": "Mesh", "teaches": "A probe that cannot run.",
        "steps": [{"name": "Look", "on": "manager1", "run": "true", "needs": "ipvs"}],
    }))
    shown = io.StringIO()
    record = Runner(loader.load(path), OneNodeLab(), Console(shown), Options()).run()  # type: ignore[arg-type]

    assert record.outcome == FAILED
    assert record.exit_code == errors.EXIT_FAILED
    assert "manager1: the IPVS probe could not run" in record.message
    assert "== mesh: failed" in shown.getvalue(), shown.getvalue()
    assert "== mesh: passed" not in shown.getvalue(), shown.getvalue()
