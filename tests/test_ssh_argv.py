"""`lab.ssh`'s command line, read back by the real ssh binary: `ssh -G` resolves, never connects."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.providers.base import SSHTarget
from lab.tasks.lab_tasks import ssh_argv

pytestmark = pytest.mark.unit


def resolved(target: SSHTarget) -> dict[str, list[str]]:
    """The settings ssh would use for this command line, as ssh itself works them out."""
    argv = ssh_argv(target)
    done = subprocess.run([argv[0], "-G", *argv[1:]], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    settings: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value)
    return settings


def test_only_the_pinned_host_key_is_trusted(tmp_path: Path) -> None:
    pinned = tmp_path / "known_hosts"
    seen = resolved(SSHTarget(host="10.201.171.11", port=22, user="root",
                              key_filename=str(tmp_path / "id_ed25519"), known_hosts=str(pinned)))
    assert seen["userknownhostsfile"] == [str(pinned)]
    # /etc/ssh/ssh_known_hosts is the host's, written by anyone with root on it or by config
    # management: a key there must not vouch for a lab node.
    assert seen["globalknownhostsfile"] == ["/dev/null"]
    assert seen["stricthostkeychecking"] == ["true"]
    assert seen["identitiesonly"] == ["yes"]


def test_the_labs_user_port_key_and_alias_are_used(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    key.touch(mode=0o600)  # ssh leaves out an identity file that does not exist
    seen = resolved(SSHTarget(host="127.0.0.1", port=2201, user="student",
                              key_filename=str(key),
                              known_hosts=str(tmp_path / "known_hosts"),
                              host_key_alias="swarmlab-t-lab-manager1"))
    assert (seen["user"], seen["hostname"], seen["port"]) == (["student"], ["127.0.0.1"], ["2201"])
    assert seen["hostkeyalias"] == ["swarmlab-t-lab-manager1"]
    assert str(key) in seen["identityfile"]
