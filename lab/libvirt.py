"""This machine's libvirt, as vagrant-libvirt needs it: the daemon, the pool, the driver choice.

vagrant-libvirt makes the domains and the lab's networks; this module only checks that libvirt
answers (`scripts/ensure-libvirt` starts it where no service manager runs), keeps the
project's storage pool, decides between KVM and QEMU's software emulation by probing the
host, and removes the lab's networks when vagrant-libvirt leaves them behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .errors import LabError

URI = "qemu:///system"
POOL_NAME = "swarmlab"
POOL_PATH = Path("/var/lib/libvirt/images/swarmlab")
START_HINT = "run `make libvirt` (scripts/ensure-libvirt starts virtlogd and libvirtd)"


def virsh(*args: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("virsh") or "/usr/bin/virsh"
    if not Path(binary).exists():
        raise LabError("virsh is missing; run `sudo scripts/host-setup` (libvirt-clients)")
    try:
        done = subprocess.run([binary, "-q", "-c", URI, *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LabError(f"`virsh {' '.join(args)}` hung: libvirt gave no answer on {URI} within"
                       f" {timeout} s, so it was stopped; {START_HINT}") from None
    if check and done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise LabError(f"`virsh {' '.join(args)}` failed: {said[-1] if said else '?'}")
    return done


def version() -> str:
    """libvirt's answer on qemu:///system, or one line saying how to start it."""
    done = virsh("version", check=False, timeout=20)
    if done.returncode != 0:
        raise LabError(f"libvirt does not answer on {URI}; {START_HINT}")
    for line in done.stdout.splitlines():
        if line.startswith("Running hypervisor:"):
            return line.split(":", 1)[1].strip()
    return "libvirt"


def choose_driver(setting: str, cpuinfo: str | None = None, kvm_device: str = "/dev/kvm",
                  modules: str = "/sys/module") -> tuple[str, str]:
    """("kvm" or "qemu", why): `auto` takes KVM only where it can run a stock kernel.

    KVM needs /dev/kvm and the CPU's vmx or svm. Some hosts offer /dev/kvm through the PVM
    module (kvm_pvm) with neither flag: it runs only specially built guest kernels and a stock
    Debian kernel hangs at decompression, so such a host gets QEMU's emulation too.
    """
    if setting in ("kvm", "qemu"):
        return setting, f"libvirt driver {setting} (the lab file's vagrant.libvirt_driver)"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    emulation = "QEMU software emulation (TCG): slow, about 4 minutes to a swarm"
    if not os.access(kvm_device, os.R_OK | os.W_OK):
        return "qemu", f"no usable {kvm_device}: {emulation}"
    if Path(modules, "kvm_pvm").exists() and not flags & {"vmx", "svm"}:
        return "qemu", (f"{kvm_device} is KVM's PVM module, which cannot boot a stock kernel:"
                        f" {emulation}")
    if not flags & {"vmx", "svm"}:
        return "qemu", f"this CPU offers no vmx or svm to KVM: {emulation}"
    return "kvm", "KVM hardware virtualisation"


def ensure_pool() -> str:
    """The project's directory pool, defined and started if it is not (it outlives labs:
    it holds the box's base image, which every lab's disks are made from)."""
    if virsh("pool-info", POOL_NAME, check=False).returncode != 0:
        POOL_PATH.mkdir(parents=True, exist_ok=True)
        virsh("pool-define-as", POOL_NAME, "dir", "--target", str(POOL_PATH))
    info = virsh("pool-info", POOL_NAME).stdout
    if "running" not in info:
        virsh("pool-start", POOL_NAME)
    virsh("pool-autostart", POOL_NAME, check=False)
    return f"storage pool {POOL_NAME} ({POOL_PATH})"


def networks() -> dict[str, str]:
    """libvirt network name -> its bridge, for every defined network."""
    names = virsh("net-list", "--all", "--name").stdout.split()
    found = {}
    for name in names:
        done = virsh("net-info", name, check=False)
        bridge = next((line.split(":", 1)[1].strip() for line in done.stdout.splitlines()
                       if line.startswith("Bridge:")), "")
        found[name] = bridge
    return found


def remove_network(name: str) -> None:
    virsh("net-destroy", name, check=False)
    virsh("net-undefine", name)


def domains(prefix: str) -> list[str]:
    """Domains whose names start with `prefix` (a lab's: swarmlab-LAB-)."""
    names = virsh("list", "--all", "--name").stdout.split()
    return [name for name in names if name.startswith(prefix)]


def remove_domain(name: str, pool: str = POOL_NAME) -> None:
    """Power off and undefine a domain with its snapshots, and delete its disk `NAME.img` from
    `pool` (vagrant-libvirt's naming); the box's base image, which it is made from, stays."""
    if name in virsh("list", "--all", "--name").stdout.split():
        virsh("destroy", name, check=False)
        virsh("undefine", name, "--snapshots-metadata", "--managed-save", "--nvram")
    volume = f"{name}.img"
    if virsh("vol-info", "--pool", pool, volume, check=False).returncode == 0:
        virsh("vol-delete", "--pool", pool, volume)


def volumes(pool: str = POOL_NAME) -> list[str]:
    done = virsh("vol-list", pool, check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def prune_base_images(prefix: str, keep: str, pool: str = POOL_NAME) -> list[str]:
    """Delete the pool's base images named `prefix...` except `keep`, when no other volume is
    made from them (a lab made from an older box keeps its base image until it goes)."""
    names = volumes(pool)
    backing = "".join(virsh("vol-dumpxml", "--pool", pool, name, check=False).stdout
                      for name in names if not name.startswith(prefix))
    removed = []
    for name in names:
        if name.startswith(prefix) and name != keep and f"/{name}<" not in backing:
            virsh("vol-delete", "--pool", pool, name)
            removed.append(name)
    return removed
