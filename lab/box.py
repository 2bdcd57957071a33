"""swarmlab's Vagrant boxes for libvirt, built on this machine from Debian packages alone.

One box per release and flavour: `swarmlab/<release>` (plain Debian) and
`swarmlab/<release>-seed` (nodes like the lesson's: firewalld running with its default zone,
SELinux enforcing with Debian's policy, the disk labelled at build time).

No Vagrant Cloud, no cloud image: mmdebstrap makes the release's root file system from the
host's own apt sources (kernel, GRUB, sshd, sudo, chrony, Docker, ipvsadm) and
`vagrant/box/customize` gives it what Vagrant expects of a box (a vagrant user with the
insecure key and sudo, DHCP on eth0, host keys and machine-id made at each clone's first
boot). The file system goes onto a partitioned disk without any mount (mke2fs -d at the
partition's offset: partition device nodes do not appear in containers), one QEMU boot with
the box's own kernel installs GRUB into the disk, and the disk becomes a qcow2 in a .box.

A box is cached under `.cache/box/<box>/<recipe digest>/` and added to Vagrant under its
name with a version of its own; a changed recipe gives a new digest, a new build and a new
box version (vagrant-libvirt keys its copy in the storage pool by version, so an old image
can never be served for a new recipe).

    python -m lab.box build [--release R] [--seed]   # build if missing or stale, then add
    python -m lab.box status [--release R] [--seed]  # the digest; built and added or not
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import libvirt
from .errors import LabError
from .images import (
    APT_SOURCES,
    CACHE_DIR,
    PROJECT_ROOT,
    SEED_PACKAGES,
    SUITE_PACKAGES,
    host_suite,
    suite_missing,
    suite_sources,
)
from .prepare import docker
from .spec import PROVIDER_RELEASES, RELEASES

BOX_RECIPE_DIR = PROJECT_ROOT / "vagrant" / "box"
BOX_CACHE = CACHE_DIR / "box"
# apparmor: Debian's kernel enables AppArmor, and then Docker starts no container without
# apparmor_parser ("the docker-default profile could not be loaded").
PACKAGES = (
    "linux-image-amd64", "grub-pc", "systemd-sysv", "dbus", "openssh-server", "sudo", "chrony",
    "docker.io", "ipvsadm", "iproute2", "iptables", "iputils-ping", "curl", "ca-certificates",
    "procps", "kmod", "less", "netcat-openbsd", "libpam-systemd", "e2fsprogs", "apparmor",
)  # fmt: skip
# The seed's SELinux: Debian's policy and its tools (getenforce, setenforce, setfiles).
SELINUX_PACKAGES = ("selinux-policy-default", "selinux-utils", "policycoreutils")
DISK_GIB = 10
PARTITION_OFFSET = 1024 * 1024  # 1 MiB, where GRUB's core image ends and the root begins
FINISH_MARK = "swarmlab-box: grub installed"
LABEL_MARK = "swarmlab-box: file system labelled"
FINISH_TIMEOUT = 900  # the GRUB boot under software emulation on a loaded machine
INSECURE_KEY_GLOBS = (
    "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub",
    "/opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub",
)
QUIET_ENV = {"VAGRANT_CHECKPOINT_DISABLE": "1", "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1"}


@dataclass(frozen=True)
class Box:
    """One of swarmlab's boxes: a Debian release, plain or like the lesson's nodes."""

    release: str
    seed: bool = False

    @property
    def slug(self) -> str:
        return self.release + ("-seed" if self.seed else "")

    @property
    def name(self) -> str:
        return f"swarmlab/{self.slug}"

    @property
    def file(self) -> str:
        return f"swarmlab-{self.slug}.box"

    @property
    def packages(self) -> tuple[str, ...]:
        seed = SEED_PACKAGES + SELINUX_PACKAGES if self.seed else ()
        return PACKAGES + SUITE_PACKAGES.get(self.release, ()) + seed


def box_for(release: str, nodes_like: str) -> Box:
    return Box(release, nodes_like == "seed")


def is_ours(name: str) -> bool:
    """Whether a box name is one swarmlab builds (and so may build on demand)."""
    return name.startswith("swarmlab/")


def recipe_digest(box: Box) -> str:
    """16 hex digits over everything that shapes the box: packages, scripts, disk layout."""
    files = sorted(p for p in BOX_RECIPE_DIR.rglob("*") if p.is_file())
    parts: dict[str, Any] = {
        "suite": box.release,
        "seed": box.seed,
        "packages": box.packages,
        "disk_gib": DISK_GIB,
        "docker_drop_in": [docker.DROP_IN_PATH, docker.DROP_IN],
        "files": [[str(p.relative_to(BOX_RECIPE_DIR)), hashlib.sha256(p.read_bytes()).hexdigest()]
                  for p in files],
    }
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_dir(box: Box, digest: str | None = None) -> Path:
    return BOX_CACHE / box.slug / (digest or recipe_digest(box))


def box_version(box: Box, digest: str | None = None) -> str:
    """The Vagrant box version of a recipe: its build time, recorded with the build, so that
    the newest box Vagrant has is the newest recipe built (Vagrant picks the highest)."""
    path = build_dir(box, digest) / "version"
    return path.read_text().strip() if path.exists() else ""


def added_versions(box: Box, env: dict[str, str] | None = None) -> list[str]:
    """Versions of the box for libvirt that Vagrant has."""
    done = _vagrant(["box", "list", "--machine-readable"], env=env)
    versions, name, provider = [], None, None
    for line in done.splitlines():
        fields = line.split(",")
        if len(fields) < 4:
            continue
        kind, value = fields[2], fields[3]
        if kind == "box-name":
            name = value
        elif kind == "box-provider":
            provider = value
        elif kind == "box-version" and name == box.name and provider == "libvirt":
            versions.append(value)
    return versions


def current_state(box: Box) -> dict[str, Any]:
    digest = recipe_digest(box)
    version = box_version(box, digest)
    path = build_dir(box, digest) / box.file
    return {
        "name": box.name,
        "digest": digest,
        "version": version,
        "built": path.exists(),
        "added": bool(version) and version in added_versions(box),
        "file": str(path),
    }


def ensure_box(box: Box, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the box if its recipe's build is missing, then make sure Vagrant has it."""
    digest = recipe_digest(box)
    path = build_dir(box, digest) / box.file
    if path.exists():
        log(f"box {box.name}: built for recipe {digest} ({path})")
    else:
        build(box, digest, log)
    version = box_version(box, digest)
    if version not in added_versions(box):
        _add(box, digest, version, log)
    else:
        log(f"box {box.name} {version}: in Vagrant already")
    _prune_pool(box, version, log)
    _seed_pool(box, version, log)
    return current_state(box)


def build(box: Box, digest: str, log: Callable[[str], None]) -> Path:
    """Make `.cache/box/<box>/<digest>/<box file>`; every intermediate lives in a work
    directory that is removed on success and on failure, so a failed build leaves only its
    log."""
    for tool in ("mmdebstrap", "mke2fs", "sfdisk", "qemu-system-x86_64", "qemu-img"):
        if not shutil.which(tool):
            raise LabError(f"box: {tool} is missing; run `sudo scripts/host-setup`")
    host_sources = next((path for path in APT_SOURCES if path.is_file()), None)
    if host_sources is None:
        raise LabError("box: no apt sources on this host; mmdebstrap takes its mirror from them")
    key = _insecure_key()
    out = build_dir(box, digest)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    log_path = out / "build.log"
    started = time.monotonic()
    try:
        with open(log_path, "w") as log_file:
            def step(what: str, command: list[str], timeout: int = 1800, **env: str) -> None:
                log(f"box: {what}")
                log_file.write(f"$ {' '.join(command)}\n")
                log_file.flush()
                done = subprocess.run(
                    command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env={**os.environ, **env}, timeout=timeout, check=False,
                )
                if done.returncode != 0:
                    raise LabError(f"box: {what} failed (exit {done.returncode}); log: {log_path}")

            root = work / "root"
            # The same file name ending: mmdebstrap reads a .sources file as deb822.
            sources = work / f"apt-{box.release}{host_sources.suffix or '.list'}"
            sources.write_text(suite_sources(box.release, host_sources, host_suite()))
            try:
                step(f"mmdebstrap {box.release} with a kernel, GRUB, sshd and Docker"
                     f"{', firewalld and SELinux' if box.seed else ''} (about 2 minutes)", [
                    "mmdebstrap", "--variant=apt", f"--include={','.join(box.packages)}",
                    f"--customize-hook={BOX_RECIPE_DIR / 'customize'} \"$1\"",
                    box.release, str(root), str(sources),
                ], VAGRANT_INSECURE_KEY=str(key), SWARMLAB_DOCKER_DROP_IN=docker.DROP_IN,
                   SWARMLAB_DOCKER_DROP_IN_PATH=docker.DROP_IN_PATH,
                   SWARMLAB_BOX_SEED="1" if box.seed else "0")
            except LabError:
                if suite_missing(log_path.read_text(errors="replace"), box.release):
                    raise LabError(f"box {box.name}: the mirror in {host_sources} does not serve"
                                   f" Debian {box.release}; pick another release") from None
                raise
            disk = work / "disk.raw"
            with open(disk, "wb") as handle:
                handle.truncate(DISK_GIB * 1024**3)
            layout = f"label: dos\nstart={PARTITION_OFFSET // 512}, type=83, bootable\n"
            log_file.write(f"$ sfdisk {disk} <<< {layout!r}\n")
            subprocess.run(["sfdisk", "-q", str(disk)], input=layout.encode(), check=True,
                           stdout=log_file, stderr=subprocess.STDOUT)
            size_k = (DISK_GIB * 1024**3 - PARTITION_OFFSET) // 1024
            step("ext4 root file system written at the partition's offset, no mount", [
                "mke2fs", "-q", "-F", "-t", "ext4", "-L", "swarmlab-root",
                "-E", f"offset={PARTITION_OFFSET}", "-d", str(root), str(disk), f"{size_k}k",
            ])
            _install_grub(root, disk, log_file, log, box)
            shutil.rmtree(root)
            image = work / "box.img"
            step("qcow2 image", ["qemu-img", "convert", "-O", "qcow2", str(disk), str(image)])
            disk.unlink()
            _package(box, work, image, out / box.file)
        (out / "version").write_text(time.strftime("%Y%m%d.%H%M%S.0\n", time.gmtime()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"box: built in {time.monotonic() - started:.0f} s: {out / box.file}")
    _prune(keep=out)
    return out / box.file


def _prune(keep: Path) -> None:
    """Builds of this box's other recipes (and their logs) go once this one is made: a box is
    1 GB. Other boxes' builds are theirs."""
    for other in keep.parent.iterdir():
        if other.is_dir() and other != keep:
            shutil.rmtree(other, ignore_errors=True)


def _install_grub(root: Path, disk: Path, log_file: Any, log: Callable[[str], None],
                  box: Box) -> None:
    """Boot the disk once with its own kernel and `vagrant/box/finish` as init.

    A seed box boots it with SELinux on but not enforcing: `finish` loads the policy and
    labels the file system then, with the kernel the machines will run, so no machine's
    first boot spends minutes of an emulated CPU relabelling."""
    kernels = sorted(glob.glob(str(root / "boot" / "vmlinuz-*")))
    initrds = sorted(glob.glob(str(root / "boot" / "initrd.img-*")))
    if not kernels or not initrds:
        raise LabError("box: the root file system has no kernel or initrd in /boot")
    command = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-nographic", "-no-reboot",
        "-nic", "none", "-drive", f"file={disk},format=raw,if=virtio",
        "-kernel", kernels[-1], "-initrd", initrds[-1],
        "-append", "root=/dev/vda1 rw console=ttyS0 panic=-1"
                   " init=/usr/local/sbin/swarmlab-box-finish"
                   + (" security=selinux enforcing=0" if box.seed else ""),
    ]
    log("box: one boot under QEMU to install GRUB"
        f"{' and label the file system for SELinux' if box.seed else ''} (about a minute)")
    log_file.write(f"$ {' '.join(command)}\n")
    log_file.flush()
    try:
        done = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL,
                              timeout=FINISH_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise LabError(f"box: the GRUB boot did not finish in {FINISH_TIMEOUT} s") from None
    console = done.stdout.decode(errors="replace")
    log_file.write(console)
    if FINISH_MARK not in console:
        raise LabError("box: the GRUB boot ended without installing GRUB; its console is in"
                       f" {log_file.name}")
    if box.seed and LABEL_MARK not in console:
        raise LabError("box: the build's boot did not label the file system for SELinux; its"
                       f" console is in {log_file.name}")


def _package(box: Box, work: Path, image: Path, target: Path) -> None:
    """A .box is a tar of the disk, metadata.json and a Vagrantfile, uncompressed here: the
    qcow2 is already sparse and gzip would cost a minute of a 2-core machine."""
    (work / "metadata.json").write_text(json.dumps(
        {"provider": "libvirt", "format": "qcow2", "virtual_size": DISK_GIB}
    ) + "\n")
    (work / "Vagrantfile").write_text(
        f"# {box.name}: settings live in swarmlab's own Vagrantfile.\n"
        "Vagrant.configure(\"2\") { |config| }\n"
    )
    partial = target.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        for name in ("metadata.json", "Vagrantfile"):
            tar.add(work / name, arcname=name)
        tar.add(image, arcname="box.img")
    os.replace(partial, target)


def _add(box: Box, digest: str, version: str, log: Callable[[str], None]) -> None:
    """`vagrant box add` through a one-version catalog, so the box carries a version."""
    out = build_dir(box, digest)
    catalog = out / "catalog.json"
    catalog.write_text(json.dumps({
        "name": box.name,
        "description": f"swarmlab {box.slug}, recipe {digest}",
        "versions": [{
            "version": version,
            "providers": [{"name": "libvirt", "url": (out / box.file).as_uri()}],
        }],
    }, indent=2) + "\n")
    log(f"box: vagrant box add {box.name} {version}")
    _vagrant(["box", "add", "--provider", "libvirt", str(catalog)])
    for old in added_versions(box):
        if old != version:
            # Machines already made keep their disks in libvirt's pool; only new ones need it.
            try:
                _vagrant(["box", "remove", box.name, "--provider", "libvirt",
                          "--box-version", old])
                log(f"box: removed the older {box.name} {old}")
            except LabError:
                # Vagrant asks before removing a box a machine was made from, and there is no
                # one to answer here: a lab still uses it.
                log(f"box: kept the older {box.name} {old}: a lab was made from it; `vagrant box"
                    f" remove {box.name} --box-version {old}` once that lab is down")


def pool_volume_name(box: Box, version: str) -> str:
    """The name vagrant-libvirt gives the box's copy in the storage pool (handle_box_image)."""
    return f"{box.name.replace('/', '-VAGRANTSLASH-')}_vagrant_box_image_{version}_box.img"


def _seed_pool(box: Box, version: str, log: Callable[[str], None]) -> None:
    """Put the box's disk into the project's pool under the name vagrant-libvirt looks for.

    vagrant-libvirt would upload it at the first `vagrant up` through a libvirt stream in
    Ruby, minutes of a busy two-core machine; a sparse copy takes seconds. If vagrant-libvirt
    ever names it otherwise, it uploads its own copy as before: slower, never wrong.
    """
    try:
        libvirt.version()
    except LabError:
        return
    libvirt.ensure_pool()
    name = pool_volume_name(box, version)
    if name in libvirt.volumes():
        return
    vagrant_home = Path(os.environ.get("VAGRANT_HOME", Path.home() / ".vagrant.d"))
    source = (vagrant_home / "boxes" / box.name.replace("/", "-VAGRANTSLASH-") / version
              / "libvirt" / "box.img")
    if not source.exists():
        return
    partial = libvirt.POOL_PATH / f".{name}.partial"
    subprocess.run(["cp", "--sparse=always", str(source), str(partial)], check=True)
    partial.chmod(0o644)
    os.replace(partial, libvirt.POOL_PATH / name)
    libvirt.virsh("pool-refresh", libvirt.POOL_NAME)
    log(f"box: copied into libvirt's pool {libvirt.POOL_NAME} as {name}")


def _prune_pool(box: Box, version: str, log: Callable[[str], None]) -> None:
    """vagrant-libvirt copies a box into the storage pool once per version; older copies that
    no lab's disk is made from any more are 1 GB each of nothing."""
    try:
        libvirt.version()
    except LabError:
        return  # libvirt is not running: nothing of the pool can be seen or used now
    prefix = box.name.replace("/", "-VAGRANTSLASH-") + "_vagrant_box_image_"
    for name in libvirt.prune_base_images(prefix, keep=pool_volume_name(box, version)):
        log(f"box: removed {name} from libvirt's pool {libvirt.POOL_NAME}")


def _vagrant(args: list[str], env: dict[str, str] | None = None) -> str:
    binary = shutil.which("vagrant")
    if not binary:
        raise LabError("vagrant is not installed; run `sudo scripts/host-setup`")
    done = subprocess.run([binary, *args], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, env={**os.environ, **QUIET_ENV, **(env or {})})
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise LabError(f"`vagrant {' '.join(args[:2])}` failed: {said[-1] if said else '?'}")
    return done.stdout


def _insecure_key() -> Path:
    for pattern in INSECURE_KEY_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[-1])
    raise LabError("box: Vagrant's insecure public key is not found; is vagrant installed?")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.box", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("build", "status"))
    parser.add_argument("--release", choices=RELEASES,
                        default=PROVIDER_RELEASES["vagrant"][0])
    parser.add_argument("--seed", action="store_true",
                        help="the lesson's nodes: firewalld running, SELinux enforcing")
    args = parser.parse_args(argv)
    box = Box(args.release, args.seed)
    try:
        if args.action == "build":
            ensure_box(box)
        else:
            print(json.dumps(current_state(box), indent=2))
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; rerun it (the cache holds only finished boxes)",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
