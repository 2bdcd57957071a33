"""Files swarmlab must trust are whole or untouched, even when a write fails half-way.

A real failing write, not a mock: the writer runs in a child process whose file-size limit
(RLIMIT_FSIZE) is smaller than the new file, as a full disk would be.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab import hostkeys
from lab.atomic import write_atomic
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0vWvb2iL8wcPz5m7oVbA0jPqz0n6Vd5v3tT1Ue9Zk{}"

# Pins one more host with the file-size limit given; SIGXFSZ ignored so the write gets EFBIG.
PIN_UNDER_LIMIT = """
import resource, signal, sys
from pathlib import Path

import pytest
from lab import hostkeys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
hostkeys.pin(Path(sys.argv[1]), "10.201.140.99", 22, sys.argv[3])
"""


def test_a_pin_that_cannot_be_written_leaves_every_other_pin(tmp_path: Path) -> None:
    for index in range(3):
        hostkeys.pin(tmp_path, f"10.201.140.{11 + index}", 22, KEY.format(index))
    known_hosts = tmp_path / hostkeys.KNOWN_HOSTS
    before = known_hosts.read_text()
    limit = len(before) // 2  # the new file (4 pins) cannot be written whole
    done = subprocess.run(
        [sys.executable, "-c", PIN_UNDER_LIMIT, str(tmp_path), str(limit), KEY.format(9)],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode != 0, "the write was meant to fail: " + done.stderr
    assert "File too large" in done.stderr, done.stderr
    assert known_hosts.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [hostkeys.KNOWN_HOSTS]


def test_pin_and_unpin_replace_the_file_and_keep_it_private(tmp_path: Path) -> None:
    hostkeys.pin(tmp_path, "10.201.140.11", 22, KEY.format(1))
    hostkeys.pin(tmp_path, "10.201.140.12", 2222, KEY.format(2))
    hostkeys.pin(tmp_path, "10.201.140.11", 22, KEY.format(3))  # a re-pin replaces the line
    known_hosts = tmp_path / hostkeys.KNOWN_HOSTS
    lines = known_hosts.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["[10.201.140.12]:2222", "10.201.140.11"]
    assert lines[1].endswith("Zk3")
    hostkeys.unpin(tmp_path, "10.201.140.12", 2222)
    assert known_hosts.read_text().splitlines() == [lines[1]]
    assert known_hosts.stat().st_mode & 0o777 == 0o600


def test_write_atomic_sets_the_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "authorized_keys"
    target.write_text("old\n")
    write_atomic(target, "new\n", mode=0o644)
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["authorized_keys"]
