"""A class of three students on the incus provider, 2-node labs, through the real CLI.

class.up --provider incus (each lab its own Incus project with a quota of its nodes), check,
the cards' SSH line logging in for real, a snapshot and class.reset --to it (the first
provider on which a class of containers can revert), and class.down leaving nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from lab.errors import LabError
from lab.hostroom import INOTIFY_PER_NODE
from lab.incus.client import Incus
from lab.providers.incus import DEFAULT_SETTINGS, remote_of
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


# --- a class on an Incus cluster ------------------------------------------------------------
# Clustering is one-way, so the shared incusd is never made a cluster: the fixture starts a
# second incusd of its own (its own INCUS_DIR and socket), a one-member cluster listening on
# 127.0.0.1:18453, and the class reaches it as a remote over HTTPS, as a real class would.
CLUSTER_CLASS = "t-h12-k"
MEMBER = "h12-member1"
CLUSTER_PORT = 18453


def _wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds} s")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def cluster(incus: Incus, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("incus-cluster")
    # Not under pytest's 0700 folder: a node's root (a high uid) must reach its rootfs.
    directory = Path(tempfile.mkdtemp(prefix="t-h12-incusd-", dir="/tmp"))
    directory.chmod(0o711)
    # As scripts/ensure-incus does: incusd's fetch of instance types from the internet goes
    # to a loopback proxy where nothing listens, so no lookup leaves the machine.
    loopback = "http://127.0.0.1:9"
    env = {**os.environ, "INCUS_DIR": str(directory), "https_proxy": loopback,
           "http_proxy": loopback, "HTTPS_PROXY": loopback, "HTTP_PROXY": loopback}
    log = (home / "incusd.log").open("w")
    daemon = subprocess.Popen(["/usr/libexec/incus/incusd", "--group", "incus-admin"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    local = Incus(path=str(directory / "unix.socket"))

    def answers() -> bool:
        try:
            local.ping()
            return True
        except LabError:
            return False

    try:
        _wait_for(answers, 30, "a second incusd answering")
        preseed = {
            "config": {"core.https_address": f"127.0.0.1:{CLUSTER_PORT}"},
            "cluster": {"server_name": MEMBER, "server_address": f"127.0.0.1:{CLUSTER_PORT}",
                        "enabled": True},
            "storage_pools": [{"name": "swarmlab", "driver": "dir"}],
        }
        subprocess.run(["incus", "admin", "init", "--preseed"], input=yaml.safe_dump(preseed),
                       env=env, text=True, check=True, capture_output=True)
        files = {"client_cert": str(home / "client.crt"), "client_key": str(home / "client.key")}
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:secp384r1", "-nodes", "-days", "1",
                        "-subj", "/CN=swarmlab-test-h12", "-keyout", files["client_key"],
                        "-out", files["client_cert"]], check=True, capture_output=True)
        pem = Path(files["client_cert"]).read_text()
        local.post("/1.0/certificates", {"type": "client", "name": "swarmlab-test-h12",
                                         "certificate": "".join(pem.strip().splitlines()[1:-1])})
        yield {"remote": f"https://127.0.0.1:{CLUSTER_PORT}",
               "server_cert": str(directory / "cluster.crt"), **files}
    finally:
        subprocess.run(["incus", "admin", "shutdown", "--timeout", "60"], env=env,
                       capture_output=True, timeout=90)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()  # ours, by its PID
            daemon.wait()
        log.close()
        subprocess.run(["umount", "-R", str(directory / "shmounts"),
                        str(directory / "guestapi")], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


def test_a_class_on_a_cluster_puts_each_lab_on_one_member(
        cluster: dict[str, str], images: None, tmp_path: Path) -> None:
    lab_file = tmp_path / f"{CLUSTER_CLASS}.yaml"
    lab_file.write_text(yaml.safe_dump({
        "name": CLUSTER_CLASS, "provider": "incus", "subnet": "10.201.253.0/24",
        "state_dir": str(tmp_path / "state"),
        "nodes": [{"name": "manager1", "role": "manager", "address": "10.201.253.11"},
                  {"name": "worker1", "role": "worker", "address": "10.201.253.12"}],
        "incus": {"cpus": 1, "memory": "512MiB", **cluster},
        "classroom": {"address_pool": "10.201.253.0/24", "student_prefix": 26, "parallel": 2},
    }))
    roster = tmp_path / "roster.csv"
    roster.write_text("id,name\na,A\nb,B\n")
    klass = Class(lab_file, roster)
    remote = Incus(remote=remote_of({**DEFAULT_SETTINGS, **cluster}))
    try:
        klass.ok("class.up", "--roster", str(roster), "--skip-swarm")
        for sid in ("a", "b"):
            instances = remote.get("/1.0/instances", project=f"swarmlab-{CLUSTER_CLASS}-{sid}",
                                   query={"recursion": "1"})
            assert sorted((i["name"], i["location"]) for i in instances) == [
                ("manager1", MEMBER), ("worker1", MEMBER)]
            assert yaml.safe_load(klass.student(sid).read_text())["incus"]["target"] == MEMBER
        status = klass.ok("class.status", "--json")
        assert [r["nodes_up"] for r in json.loads(status.stdout)["students"]] == [2, 2]
    finally:
        down = klass.invoke("class.down")
    assert down.code == 0, down.output
    assert [p["name"] for p in remote.get("/1.0/projects", query={"recursion": "1"})
            if p["name"].startswith(f"swarmlab-{CLUSTER_CLASS}")] == []
