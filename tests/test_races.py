"""Races between the threads of a class: real threads, no mocks.

The room gate sums the reservations of labs being made while other labs' threads finish and
release theirs; the runner must turn any fault of the gate or the release into that one
lab's result, so the class still gets its summary.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.classroom import runner
from lab.classroom.capacity import RoomGate
from lab.classroom.plan import StudentLab
from lab.classroom.roster import Student
from lab.spec import LAB_DEFAULTS, parse_spec

pytestmark = [pytest.mark.classroom, pytest.mark.unit]


@pytest.fixture
def busy_switching() -> Iterator[None]:
    # Switch threads as often as CPython allows, so a window of a few bytecodes is hit.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def students(tmp_path: Path, count: int, prefix: str = "s") -> list[StudentLab]:
    spec = parse_spec({**LAB_DEFAULTS, "name": "t-races", "state_dir": str(tmp_path / "state"),
                       "provider": "local"})
    return [StudentLab(Student(f"{prefix}{i}", f"S {i}", i + 2), spec, tmp_path / "lab.yaml")
            for i in range(count)]


def test_room_gate_counts_while_other_labs_release(tmp_path: Path, busy_switching) -> None:
    """A class of 1500 labs in flight: finishing labs release while new ones are counted.

    Three rounds: one round hits the unguarded window about four times in five.
    """
    gate = RoomGate(1, free_mib=lambda: 10**9, free_inotify=lambda: (10**9, 10**9))
    errors: list[BaseException] = []

    def guarded(action, entries: list[StudentLab]) -> None:
        try:
            for entry in entries:
                action(entry)
        except BaseException as exc:  # the test reports whatever a thread saw
            errors.append(exc)

    for round_ in range(3):
        in_flight = students(tmp_path, 1500, prefix=f"r{round_}-")
        for entry in in_flight:
            assert gate(entry) is None
        newcomers = students(tmp_path, 300, prefix=f"n{round_}-")
        threads = [threading.Thread(target=guarded, args=(gate.release, in_flight))]
        threads += [threading.Thread(target=guarded, args=(gate, newcomers[i::3]))
                    for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, f"round {round_}: {len(errors)} threads failed; first: {errors[0]!r}"
        assert sorted(gate.reserved) == sorted(entry.id for entry in newcomers)
        for entry in newcomers:
            gate.release(entry)


def test_a_failing_gate_or_release_is_that_labs_result(tmp_path: Path) -> None:
    """The summary of the class survives a bug in the gate or the release (real pool)."""
    labs = students(tmp_path, 4)
    released: list[str] = []

    def gate(entry: StudentLab) -> str | None:
        if entry.id == "s1":
            raise RuntimeError("dictionary changed size during iteration")
        return None

    def release(entry: StudentLab) -> None:
        released.append(entry.id)
        if entry.id == "s2":
            raise KeyError("s2")

    lines: list[str] = []
    results = runner.run(labs, lambda entry, log: ("up", None), what="class.up", parallel=4,
                         say=lines.append, log_dir=tmp_path / "logs", gate=gate, release=release)
    assert [r.status for r in results] == ["ok", "failed", "failed", "ok"]
    assert results[1].detail.startswith("RuntimeError: dictionary changed size during iteration")
    assert results[2].detail.startswith("KeyError: 's2'")
    assert sorted(released) == ["s0", "s1", "s2", "s3"]  # released even when the gate failed
    # Each lab finished once: the count reaches 4 and no further.
    assert sorted(line.split("]")[0] for line in lines) == [f"[{i}/4" for i in range(1, 5)]
    assert "failed: RuntimeError" in (tmp_path / "logs" / "s1.log").read_text()
    runner.summary(results, "class.up", lines.append)
    assert lines[-1] == "class.up: 2 of 4 ok; failed: s1, s2"


PROMPT_PREAMBLE = """
import sys, threading
from pathlib import Path
from lab.classroom import runner
from lab.classroom.plan import StudentLab
from lab.classroom.roster import Student
from lab.vsphere.connection import resolve_password
from lab.vsphere.settings import parse_settings
from tests.vsphere_fixtures import lab_spec

spec = lab_spec(Path("/nonexistent"), "t-h6-pw", 160, "127.0.0.1:1")
got = []
"""
# Eight threads asking at once, as each student's vSphere session does.
THREADS_ASK = PROMPT_PREAMBLE + """
threads = [threading.Thread(target=lambda: got.append(resolve_password(parse_settings(spec))))
           for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(f"answered: {len(got)}, one password: {set(got) == {'typed-pw'}}")
"""
# A class of eight vSphere labs through the runner: whose work connects in its own thread.
CLASS_ASKS = PROMPT_PREAMBLE + """
import getpass
asked_in = []
typed = getpass.getpass
getpass.getpass = lambda prompt: asked_in.append(threading.current_thread().name) or typed(prompt)
labs = [StudentLab(Student(f"s{i}", "S", i + 2), spec, Path("lab.yaml")) for i in range(8)]
def work(entry, log):
    got.append(resolve_password(parse_settings(entry.spec)))
    return "ok", None
results = runner.run(labs, work, what="t", parallel=8, say=lambda line: None,
                     log_dir=Path(sys.argv[1]))
print(f"asked in {asked_in}; answered: {len(got)}, one password: {set(got) == {'typed-pw'}}")
"""


def prompt_session(script: str, *args: str) -> tuple[int, str]:
    """Run `script` in a child on a pseudo-terminal (pty.fork: getpass reads the child's
    /dev/tty as at a user's terminal), type the password once at the first prompt;
    (prompts seen before typing, the whole transcript)."""
    import os
    import pty
    import select
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if k != "SWARMLAB_VSPHERE_PASSWORD"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once, nothing else runs after fork
        os.execve(sys.executable, [sys.executable, "-c", script, *args], env)
    transcript = b""

    def read_for(seconds: float, until: bytes | None = None) -> None:
        nonlocal transcript
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (until is None or until not in transcript):
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed its terminal (it exited)
                    return
                if not chunk:
                    return
                transcript += chunk

    try:
        read_for(30, until=b"password for")
        read_for(1.5)  # every thread that would prompt has done so by now
        prompts = transcript.count(b"vSphere password for")
        os.write(fd, b"typed-pw\n")
        read_for(15, until=b"one password:")
    finally:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done == 0:  # still blocked (the other threads' prompts wait for lines): end it
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    return prompts, transcript.decode(errors="replace")


def test_students_threads_ask_for_the_password_once() -> None:
    """Eight threads need the vSphere password at once: one prompt, one answer for all,
    never echoed."""
    prompts, text = prompt_session(THREADS_ASK)
    assert prompts == 1, f"{prompts} prompts: {text!r}"
    assert "answered: 8, one password: True" in text, text
    assert "typed-pw" not in text  # getpass turned echo off


def test_a_vsphere_class_asks_before_its_threads_start(tmp_path: Path) -> None:
    """Through the runner, the prompt comes once from the main thread, before the labs."""
    prompts, text = prompt_session(CLASS_ASKS, str(tmp_path / "logs"))
    assert prompts == 1, f"{prompts} prompts: {text!r}"
    assert "asked in ['MainThread']; answered: 8, one password: True" in text, text
