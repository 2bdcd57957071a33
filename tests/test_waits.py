"""lab.waits.wait_until: the bound, the last probe at the bound, and the "last seen" line."""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from lab.errors import LabError, NodeError
from lab.vagrant_project import VagrantProject
from lab.waits import wait_until


class Counter:
    """A probe that answers `answers` in turn (the last one forever), timing each call."""

    def __init__(self, *answers: object):
        self.answers = list(answers)
        self.calls: list[float] = []
        self.start = time.monotonic()

    def __call__(self) -> object:
        self.calls.append(time.monotonic() - self.start)
        value = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if isinstance(value, Exception):
            raise value
        return value


@pytest.mark.unit
def test_returns_the_first_value_that_is_done() -> None:
    probe = Counter("", "", "ready")
    assert wait_until(probe, timeout=5, interval=0.01, what="ready") == "ready"
    assert len(probe.calls) == 3


@pytest.mark.unit
def test_gives_up_at_the_bound_with_what_and_last_seen() -> None:
    probe = Counter("state pending")
    with pytest.raises(LabError) as raised:
        wait_until(probe, timeout=0.3, interval=0.05, what="the join",
                   done=lambda v: v == "state ready", hint="check port 2377")
    assert str(raised.value) == ("still waiting for the join after 0.3 s; last seen: state"
                                 " pending; check port 2377")
    # Probed at the bound itself (not one interval before it), and not long after it: the
    # margin is for a loaded 2-core machine's scheduling.
    assert 0.3 <= probe.calls[-1] < 1.3


@pytest.mark.unit
def test_last_probe_is_at_the_bound_even_with_a_long_interval() -> None:
    probe = Counter(0, 0, 1)
    start = time.monotonic()
    assert wait_until(probe, timeout=0.2, interval=30, what="x", error=None) == 0
    assert len(probe.calls) == 2 and time.monotonic() - start < 5  # not the 30 s interval


@pytest.mark.unit
def test_last_seen_formats_the_last_value() -> None:
    with pytest.raises(LabError, match=r"last seen: 2 of 3 Ready$"):
        wait_until(lambda: 2, timeout=0.1, interval=0.02, what="3 nodes", done=lambda n: n == 3,
                   last_seen=lambda n: f"{n} of 3 Ready")


@pytest.mark.unit
def test_error_factory_names_the_node() -> None:
    with pytest.raises(NodeError) as raised:
        wait_until(lambda: None, timeout=0.05, interval=0.01, what="sshd",
                   error=functools.partial(NodeError, "manager1"))
    assert raised.value.node == "manager1"
    assert str(raised.value).startswith("manager1: still waiting for sshd after 0.05 s")


@pytest.mark.unit
def test_retry_on_exceptions_are_not_yet_and_shown() -> None:
    probe = Counter(ConnectionRefusedError(111, "Connection refused"), "up")
    assert wait_until(probe, timeout=2, interval=0.01, what="sshd",
                      retry_on=(ConnectionRefusedError,)) == "up"
    with pytest.raises(LabError, match=r"last seen: \[Errno 111\] Connection refused$"):
        wait_until(Counter(ConnectionRefusedError(111, "Connection refused")), timeout=0.05,
                   interval=0.01, what="sshd", retry_on=(OSError,))


@pytest.mark.unit
def test_other_exceptions_end_the_wait_at_once() -> None:
    probe = Counter(ValueError("bad answer"))
    with pytest.raises(ValueError, match="bad answer"):
        wait_until(probe, timeout=5, interval=0.01, what="x", retry_on=(OSError,))
    assert len(probe.calls) == 1


@pytest.mark.unit
def test_without_error_the_last_value_comes_back() -> None:
    assert wait_until(Counter("a", "b"), timeout=0.1, interval=0.01, what="x",
                      done=lambda v: v == "c", error=None) == "b"


HANGING_VAGRANTFILE = """\
# t-h6: a Vagrantfile that hangs while vagrant loads it, as a stuck plugin or provider would.
sleep 25
Vagrant.configure("2") { |config| config.vm.define "manager1" }
"""


def hanging_project(tmp_path: Path) -> VagrantProject:
    if shutil.which("vagrant") is None:
        pytest.skip("no vagrant binary here: `sudo scripts/install-vagrant` installs Debian's")
    project = VagrantProject(tmp_path / "vagrant", "docker", "t-h6-hang", machine_timeout=4)
    project.quick_timeout = 3
    project.directory.mkdir(parents=True)
    (project.directory / "Vagrantfile").write_text(HANGING_VAGRANTFILE)
    return project


def bounded_call(action) -> tuple[BaseException | None, float]:
    """Run `action` in a thread for at most 20 s: (what it raised, seconds), or fail."""
    raised: list[BaseException | None] = [None]

    def target() -> None:
        try:
            action()
        except BaseException as exc:  # the test looks at whatever the call raised
            raised[0] = exc

    start = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "still waiting for vagrant after 20 s: the wait has no bound"
    return raised[0], time.monotonic() - start


@pytest.mark.vagrant
def test_a_hung_vagrant_status_is_stopped_and_named(tmp_path: Path) -> None:
    """Real vagrant, hanging for real in its Vagrantfile: python-vagrant's call is bounded."""
    project = hanging_project(tmp_path)
    raised, seconds = bounded_call(project.status)
    assert isinstance(raised, LabError), raised
    assert str(raised) == ("`vagrant status --machine-readable` hung: still running after 3 s,"
                           f" so it was stopped; what it said is in {project.log_path}")
    assert seconds < 15


@pytest.mark.vagrant
def test_a_hung_machine_command_gets_the_machine_bound(tmp_path: Path) -> None:
    project = hanging_project(tmp_path)
    raised, seconds = bounded_call(lambda: project.run("snapshot", "save", "--force", "x"))
    assert isinstance(raised, LabError), raised
    assert str(raised).startswith("`vagrant snapshot save --force x` hung: still running after"
                                  " 4 s, so it was stopped")
    assert seconds < 15


@pytest.mark.unit
def test_a_hung_virsh_is_one_line__stand_in_virsh_that_sleeps(tmp_path: Path, monkeypatch) -> None:
    """A libvirtd that never answers, played by a stand-in `virsh` that sleeps: the bound
    gives one line naming the command, not subprocess.TimeoutExpired's traceback."""
    from lab import libvirt

    stand_in = tmp_path / "virsh"
    stand_in.write_text("#!/bin/sh\nexec sleep 30\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(LabError) as raised:
        libvirt.virsh("pool-refresh", "swarmlab", timeout=1)
    assert str(raised.value) == ("`virsh pool-refresh swarmlab` hung: libvirt gave no answer on"
                                 " qemu:///system within 1 s, so it was stopped; run `make"
                                 " libvirt` (scripts/ensure-libvirt starts virtlogd and libvirtd)")
