"""A lab reached as a sudo user, as real vSphere templates and Vagrant boxes are: local nodes.

The lab is made as root (the local provider installs the lab key for root only), then two
users are added on every node over SSH, each with the lab's key: `student` with password-less
sudo and `learner` whose sudo asks for a password. `lab.up` then runs again as each, through
the real CLI with invoke's env config (LAB_SSH_USER), real sshd, real sudo and Fabric.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator

import pytest

from lab.prepare.docker import DROP_IN_PATH
from tests.conftest import INVOKE, ROOT, LabHandle, lab_fixture

pytestmark = pytest.mark.local

NAME = "t-h7-sudo"
OCTET = 170
STUDENT = {"LAB_SSH_USER": "student"}
LEARNER = {"LAB_SSH_USER": "learner"}


def add_user(name: str, sudoers: str, key: str) -> str:
    """Shell that makes a user who logs in with the lab's key and has the given sudo rule."""
    return (
        f"id -u {name} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {name};"
        f" echo {shlex.quote(sudoers)} > /etc/sudoers.d/{name}; chmod 440 /etc/sudoers.d/{name};"
        f" install -d -m 700 -o {name} /home/{name}/.ssh;"
        f" echo {shlex.quote(key)} > /home/{name}/.ssh/authorized_keys;"
        f" chown {name} /home/{name}/.ssh/authorized_keys;"
        f" chmod 600 /home/{name}/.ssh/authorized_keys"
    )


@pytest.fixture(scope="module")
def sudo_lab(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    started = time.monotonic()
    for lab in lab_fixture(tmp_path_factory.mktemp("sudo"), NAME, OCTET):
        key = (lab.state_dir / NAME / "id_ed25519.pub").read_text().strip()
        made = lab.invoke("lab.exec", "all", add_user("student", "student ALL=(ALL) NOPASSWD: ALL",
                                                      key)
                          + "; " + add_user("learner", "learner ALL=(ALL) ALL", key))
        assert made.code == 0, made.output
        print(f"\nsudo lab: up as root and two users made in {time.monotonic() - started:.0f} s")
        yield lab


def test_a_sudo_user_prepares_the_nodes_and_rejoins_the_swarm(sudo_lab: LabHandle) -> None:
    # Undone as root, so that prepare and the swarm have real work to do as the sudo user:
    # a root-owned file to write, Docker to restart, an image to stream in, a join.
    undo = sudo_lab.invoke(
        "lab.exec", "worker1",
        f"docker swarm leave && rm {DROP_IN_PATH} && docker rmi -f swarmlab/busybox:latest")
    assert undo.code == 0, undo.output
    result = sudo_lab.invoke("lab.up", env=STUDENT)
    assert result.code == 0, result.output
    worker = [line.split() for line in result.stdout.splitlines()
              if line.strip().startswith("worker1")]
    assert ["worker1", "docker", "changed"] in [line[:3] for line in worker], result.stdout
    assert ["worker1", "images", "changed"] in [line[:3] for line in worker], result.stdout
    status = sudo_lab.invoke("lab.status", "--json", env=STUDENT)
    assert status.code == 0, status.output
    assert '"ready": false' not in status.stdout, status.stdout
    owner = sudo_lab.invoke("lab.exec", "worker1", f"stat -c %U {DROP_IN_PATH}", env=STUDENT)
    assert owner.stdout.split() == ["root"], owner.output


def test_commands_run_as_root_through_sudo(sudo_lab: LabHandle) -> None:
    who = sudo_lab.invoke("lab.exec", "manager1", "id -un; printenv SUDO_USER", env=STUDENT)
    assert who.code == 0, who.output
    assert who.stdout.split() == ["root", "student"]
    # What a scenario does: a service on the swarm, with quoting that survives `sh -c`.
    service = sudo_lab.invoke(
        "lab.exec", "manager1",
        "docker service create --detach --no-resolve-image --name t-h7-probe"
        " swarmlab/busybox:latest sh -c 'sleep 600' >/dev/null"
        " && docker service inspect t-h7-probe"
        " --format '{{.Spec.Name}} {{json .Spec.TaskTemplate.ContainerSpec.Args}}';"
        " docker service rm t-h7-probe >/dev/null",
        env=STUDENT)
    assert service.code == 0, service.output
    assert service.stdout.strip() == 't-h7-probe ["sh","-c","sleep 600"]'


def test_lab_ssh_logs_in_as_the_sudo_user(sudo_lab: LabHandle) -> None:
    done = subprocess.run(
        [*INVOKE, "-f", str(sudo_lab.file), "lab.ssh", "manager1"], input="echo who=$(id -un)\n",
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, **STUDENT})
    assert done.returncode == 0, done.stdout + done.stderr
    # (stdout also carries the node's login banner)
    assert "who=student" in done.stdout.split(), done.stdout


def test_a_user_without_password_less_sudo_is_told_how_in_one_line(sudo_lab: LabHandle) -> None:
    result = sudo_lab.invoke("lab.up", env=LEARNER)
    assert result.code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    wanted = ("manager1: user learner cannot run sudo without a password; add"
              " `learner ALL=(ALL) NOPASSWD: ALL` to /etc/sudoers.d/learner")
    assert wanted in errors[0], errors[0]
    # Nothing was changed as that user: the lab still answers as root.
    assert sudo_lab.invoke("lab.exec", "manager1", "docker node ls -q").code == 0
