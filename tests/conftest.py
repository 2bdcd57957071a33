"""Shared fixtures: a real Docker engine, the real images, and labs brought up by the real CLI.

Labs made by tests are named `t-...` with subnets in 10.201.0.0/16 so they never collide
with a user's lab (default 10.77.0.0/24) on the same machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lab.errors import LabError
from lab.incus.client import Incus

ROOT = Path(__file__).resolve().parents[1]
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
# What a local node of the default release says it runs: os-release's name, Docker's version.
NODE_RUNS = {"bookworm": ("Debian GNU/Linux 12", "20.10"),
             "trixie": ("Debian GNU/Linux 13", "26.1")}


@dataclass
class CLIResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class LabHandle:
    name: str
    file: Path
    state_dir: Path
    nodes: list[dict]

    def invoke(self, *args: str, timeout: int = 900, env: dict | None = None) -> CLIResult:
        return run_cli("-f", str(self.file), *args, timeout=timeout, env=env)

    def status(self) -> dict:
        result = self.invoke("lab.status", "--json")
        # 1: the lab differs from its file (said in "differences"); tests judge the nodes.
        assert result.code in (0, 1), result.output
        return json.loads(result.stdout)

    @property
    def state_file(self) -> Path:
        return self.state_dir / self.name / "state.json"


def run_cli(*args: str, timeout: int = 900, env: dict | None = None) -> CLIResult:
    """Run `invoke ...` as a user would, in a subprocess; output is kept for assertions."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [*INVOKE, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=full_env
    )
    return CLIResult(done.returncode, done.stdout, done.stderr)


def write_lab(tmp: Path, name: str, octet: int, nodes: int = 3, **extra: object) -> LabHandle:
    subnet = f"10.201.{octet}.0/24"
    layout = [("manager1", "manager"), ("manager2", "manager"), ("worker1", "worker"),
              ("worker2", "worker")][:nodes]
    node_list = [
        {"name": node, "role": role, "address": f"10.201.{octet}.{11 + index}"}
        for index, (node, role) in enumerate(layout)
    ]
    data = {"name": name, "subnet": subnet, "nodes": node_list,
            "state_dir": str(tmp / "state"), **extra}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return LabHandle(name=name, file=path, state_dir=tmp / "state", nodes=node_list)


# `make test` runs the suite but the vm lane on two pytest-xdist workers (--dist loadgroup).
# A lab made by a fixture must live on one worker only, or two workers would make and remove
# the same lab under each other: a module stays whole on one worker, every module of the
# shared lab on the same one, and the simulator/vagrant/incus lanes each on one (their labs
# and host-wide state, such as Vagrant's machine index, are shared within a lane).
SHARED_LAB_FIXTURES = {"shared_lab", "lab_up"}
ONE_WORKER_LANES = ("vsphere", "vagrant", "incus", "vm")


def worker_group(module_items: list[pytest.Item]) -> str:
    # A module that asks for the shared lab at run time (request.getfixturevalue) says so in
    # its source: fixturenames cannot show it.
    source = module_items[0].path.read_text()
    if any(SHARED_LAB_FIXTURES & set(item.fixturenames) for item in module_items) or any(
        f'getfixturevalue("{name}")' in source for name in SHARED_LAB_FIXTURES
    ):
        return "shared-lab"
    for lane in ONE_WORKER_LANES:
        if any(item.get_closest_marker(lane) for item in module_items):
            return lane
    return module_items[0].module.__name__


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    for module_items in modules.values():
        group = worker_group(module_items)
        for item in module_items:
            item.add_marker(pytest.mark.xdist_group(group))


def docker_ok() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def engine() -> None:
    """A real dockerd; `make test` starts one. Its absence is a failure, not a skip."""
    if not docker_ok():
        pytest.fail("no Docker engine answers: run `make docker` (make test does it)")


@pytest.fixture(scope="session")
def images(engine: None) -> None:
    from lab.images import IMAGE_NAMES, ensure_images

    ensure_images(IMAGE_NAMES, log=lambda line: None)


@pytest.fixture(scope="session")
def incus() -> Incus:
    """A real incusd; `make test` starts one (make incus). Its absence fails, never skips."""
    api = Incus()
    try:
        api.ping()
    except LabError as exc:
        pytest.fail(f"{exc} (make test starts incusd: make incus)")
    return api


def lab_fixture(tmp: Path, name: str, octet: int, **extra: object) -> Iterator[LabHandle]:
    lab = write_lab(tmp, name, octet, **extra)
    lab.invoke("lab.down")  # leftovers of an interrupted earlier run, by this lab's label only
    result = lab.invoke("lab.up")
    assert result.code == 0, result.output
    yield lab
    down = lab.invoke("lab.down")
    assert down.code == 0, down.output


@pytest.fixture(scope="session")
def shared_lab(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    """One three-node lab for the tests that only read or restore what they change."""
    yield from lab_fixture(tmp_path_factory.mktemp("shared"), "t-shared", 10)


def containers(label: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"],
        capture_output=True, text=True, check=True,
    ).stdout
    return sorted(out.split())


@pytest.fixture(scope="session")
def lab_up(shared_lab: LabHandle) -> LabHandle:
    """The three-node lab that scenario tests run on (the same one as shared_lab)."""
    return shared_lab
