"""The Vagrantfile's node script takes Vagrant's insecure key out of a box: run in a container.

Boxes log in as `vagrant` with Vagrant's public insecure key and give that user password-less
sudo. The script (vagrant/Vagrantfile NODE_SCRIPT, the `swarmlab-node` provisioner) must leave
the lab's key for that user and for the lab's SSH user, and the insecure key for no one. The
script runs here in a node container, with the real shell, coreutils and user database; the
same script in real VMs is proven in the vm lane (tests/test_vm_libvirt.py).
"""

from __future__ import annotations

import shlex
import subprocess
import textwrap

import pytest

from lab.box import _insecure_key
from lab.vagrant_project import VAGRANTFILE

pytestmark = pytest.mark.vagrant

LAB_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKYGyvTCscYdsCUjMCFf t-h7-keys"
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOfTheBoxOwner owner@example"


def node_script() -> str:
    text = VAGRANTFILE.read_text()
    return textwrap.dedent(text.split("NODE_SCRIPT = <<~'SH'\n", 1)[1].split("\nSH\n", 1)[0])


def test_the_insecure_key_is_replaced_by_the_labs_for_vagrant_and_root(images: None) -> None:
    insecure = _insecure_key().read_text().strip()
    blob = insecure.split()[1]
    # A box as Vagrant's are made: vagrant with the insecure key (and a key of the box's own
    # owner, which must stay); root with it too, as some boxes have.
    box = (
        "useradd --create-home vagrant && install -d -m 700 -o vagrant /home/vagrant/.ssh"
        f" && printf '%s\\n' {shlex.quote(insecure)} {shlex.quote(OTHER_KEY)}"
        " > /home/vagrant/.ssh/authorized_keys"
        " && chown vagrant /home/vagrant/.ssh/authorized_keys"
        f" && install -d -m 700 /root/.ssh && echo {shlex.quote(insecure)}"
        " > /root/.ssh/authorized_keys"
    )
    args = " ".join(shlex.quote(a) for a in
                    ("sh", LAB_KEY, "root", "manager1", "no", "", "vagrant", blob))
    run = f"sh -c {shlex.quote(node_script())} {args}"
    show = ("echo ==vagrant; cat /home/vagrant/.ssh/authorized_keys;"
            " stat -c '%U %a' /home/vagrant/.ssh/authorized_keys;"
            " echo ==root; cat /root/.ssh/authorized_keys;"
            " stat -c '%U %a' /root/.ssh/authorized_keys")
    done = subprocess.run(
        ["docker", "run", "--rm", "--label", "swarmlab.lab=t-h7-keys", "--hostname", "manager1",
         "--entrypoint", "sh", "swarmlab/node:bookworm", "-c",
         f"{box} && {run} >/dev/null && {run} && {show}"],  # twice: the second changes nothing
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "==vagrant", OTHER_KEY, LAB_KEY, "vagrant 600",
        "==root", LAB_KEY, "root 600",
    ]
