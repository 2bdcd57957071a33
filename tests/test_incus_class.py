"""A class of three students on the incus provider, 2-node labs, through the real CLI.

class.up --provider incus (each lab its own Incus project with a quota of its nodes), check,
the cards' SSH line logging in for real, a snapshot and class.reset --to it (the first
provider on which a class of containers can revert), and class.down leaving nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.errors import LabError
from lab.hostroom import INOTIFY_PER_NODE
from lab.incus.client import Incus
from tests.conftest import CLIResult, run_cli

pytestmark = [pytest.mark.incus, pytest.mark.classroom]

CLASS = "t-h12-c"
STUDENTS = [("ann", "Ann Lee"), ("ben", "Ben Okafor"), ("cy", "Cy Twombly")]
LABS = [f"{CLASS}-{sid}" for sid, _ in STUDENTS]


class Class:
    def __init__(self, lab_file: Path, roster: Path):
        self.lab_file, self.roster = lab_file, roster

    def invoke(self, *args: str, timeout: int = 900) -> CLIResult:
        return run_cli("-f", str(self.lab_file), *args, timeout=timeout)

    def student(self, sid: str) -> Path:
        """The student's own lab file, written by class.up."""
        return next(self.lab_file.parent.rglob(f"labs/{sid}.yaml"))

    def ok(self, *args: str) -> CLIResult:
        result = self.invoke(*args)
        assert result.code == 0, result.output
        return result


def ours(api: Incus) -> list[str]:
    """Every Incus project and network this class's labs are named for."""
    projects = [p["name"] for p in api.get("/1.0/projects", query={"recursion": "1"})
                if p["name"].startswith(f"swarmlab-{CLASS}-")]
    networks = [n["name"] for n in api.get("/1.0/networks", query={"recursion": "1"})
                if n["name"].startswith(f"sli-{CLASS}-"[:15])]
    return projects + networks


@pytest.fixture(scope="module")
def incus() -> Incus:
    api = Incus()
    try:
        api.ping()
    except LabError as exc:
        pytest.fail(f"{exc} (make test starts incusd: make incus)")
    return api


@pytest.fixture(scope="module")
def klass(incus: Incus, images: None, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Class]:
    tmp = tmp_path_factory.mktemp("incus-class")
    lab_file = tmp / f"{CLASS}.yaml"
    # The lab file says local: --provider incus on class.up is what makes it an Incus class.
    lab_file.write_text(yaml.safe_dump({
        "name": CLASS, "subnet": "10.201.252.0/24", "state_dir": str(tmp / "state"),
        "nodes": [{"name": "manager1", "role": "manager", "address": "10.201.252.11"},
                  {"name": "worker1", "role": "worker", "address": "10.201.252.12"}],
        "incus": {"cpus": 1, "memory": "512MiB"},
        "classroom": {"address_pool": "10.201.252.0/24", "student_prefix": 26, "parallel": 3},
    }))
    roster = tmp / "roster.csv"
    roster.write_text("id,name\n" + "".join(f"{sid},{name}\n" for sid, name in STUDENTS))
    found = Class(lab_file, roster)
    result = found.invoke("class.up", "--roster", str(roster), "--provider", "incus")
    assert result.code == 0, result.output
    yield found
    found.invoke("class.down")


def test_each_student_has_an_incus_project_with_a_quota_of_two_nodes(
        klass: Class, incus: Incus) -> None:
    for index, lab in enumerate(LABS):
        project = incus.get(f"/1.0/projects/swarmlab-{lab}")
        assert project["config"]["user.swarmlab.lab"] == lab
        assert (project["config"]["limits.instances"], project["config"]["limits.memory"]) == \
            ("2", "1024MiB")
        network = incus.get(f"/1.0/networks/{f'sli-{lab}'[:15]}")
        assert network["config"]["ipv4.address"] == f"10.201.252.{index * 64 + 1}/26"
        names = sorted(i["name"] for i in incus.get("/1.0/instances", project=f"swarmlab-{lab}",
                                                    query={"recursion": "1"}))
        assert names == ["manager1", "worker1"]


def test_check_and_status_see_three_healthy_swarms(klass: Class) -> None:
    found = json.loads(klass.ok("class.check", "--json").stdout)
    assert (found["healthy"], found["total"]) == (3, 3), found
    status = json.loads(klass.ok("class.status", "--json").stdout)
    assert status["provider"] == "incus"
    assert [(r["student"], r["swarm"]) for r in status["students"]] == \
        [(sid, "ok") for sid, _ in STUDENTS]


def test_a_nodes_inotify_instances_fit_the_class_gates_figure(klass: Class) -> None:
    """The gate (lab/classroom/capacity.py) counts INOTIFY_PER_NODE per Incus node against the
    host's fs.inotify.max_user_instances: a node must not take more than that."""
    result = run_cli("-f", str(klass.student("ann")), "lab.exec", "manager1",
                     "find /proc/[0-9]*/fd -lname anon_inode:inotify 2>/dev/null | wc -l")
    assert result.code == 0, result.output
    used = int(re.findall(r"^\s*(\d+)\s*$", result.stdout, re.M)[-1])
    print(f"inotify instances in an idle incus manager node: {used}")
    assert 0 < used <= INOTIFY_PER_NODE


def test_cards_ssh_line_logs_the_student_in(klass: Class, tmp_path: Path) -> None:
    out = tmp_path / "cards.html"
    klass.ok("class.cards", "--out", str(out))
    html = out.read_text()
    lines = re.findall(r"<code>ssh -i (\S+) (\w+)@([\d.]+)</code>", html)
    assert [address for _, _, address in lines] == ["10.201.252.11", "10.201.252.75",
                                                    "10.201.252.139"]
    key, user, address = lines[1]
    done = subprocess.run(
        ["ssh", "-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
         "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}", f"{user}@{address}",
         "hostname"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "manager1"), done.stderr


def test_reset_to_a_snapshot_brings_back_each_lab_as_it_was(klass: Class) -> None:
    klass.ok("class.snapshot", "base")
    students = {sid: klass.student(sid) for sid, _ in STUDENTS}
    for path in students.values():
        result = run_cli("-f", str(path), "lab.exec", "manager1",
                         "touch /root/after-snapshot && docker network create -d overlay late")
        assert result.code == 0, result.output
    klass.ok("class.reset", "--to", "base")
    for path in students.values():
        result = run_cli("-f", str(path), "lab.exec", "manager1",
                         "ls /root/after-snapshot 2>&1; docker network ls --format '{{.Name}}'")
        assert result.code == 0, result.output
        assert "No such file" in result.stdout and "late" not in result.stdout.split()
    status = json.loads(klass.ok("class.status", "--json").stdout)
    assert [r["swarm"] for r in status["students"]] == ["ok"] * 3


def test_down_leaves_nothing_of_the_class(klass: Class, incus: Incus) -> None:
    assert ours(incus)
    klass.ok("class.down")
    assert ours(incus) == []
