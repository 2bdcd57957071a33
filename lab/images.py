"""Every image a lab uses, built on this machine: no registry is ever asked for anything.

Node images are a Debian root file system made by mmdebstrap from the host's own apt
sources, imported, then finished by a small `docker build` (images/node/). busybox is
Debian's static binary alone in an empty image; whoami is a static Go binary built here.

Each image carries the digest of its recipe in a label, and an image whose label differs from
the current recipe is rebuilt: a stale image can never be served from the cache. The root file
system is cached under its own digest, so editing images/node/files/ only redoes the fast
build on top of it.

    python -m lab.images [NAME...]    # build what is missing or stale, one line per image
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from .errors import LabError
from .spec import RELEASES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = PROJECT_ROOT / "images"
# Build logs, the Go cache and the rootfs tarball in transit; gitignored.
CACHE_DIR = PROJECT_ROOT / ".cache"
BUILD_DIR = CACHE_DIR / "images"

LABEL_RECIPE = "swarmlab.recipe"
LABEL_IMAGE = "swarmlab.image"

IMAGE_NAMES = (
    "swarmlab/node:bookworm",
    "swarmlab/node:trixie",
    "swarmlab/node-nodocker:bookworm",
    "swarmlab/busybox:latest",
    "swarmlab/whoami:latest",
)

ROOTFS_REPO = "swarmlab/node-rootfs"
ROOTFS_SUITE = "bookworm"  # the suite of a recipe that names none
ROOTFS_VARIANT = "apt"
ROOTFS_PACKAGES = (
    "systemd-sysv", "dbus", "openssh-server", "docker.io", "chrony", "iproute2", "iptables",
    "iputils-ping", "curl", "ca-certificates", "procps", "ipvsadm", "ethtool", "sudo", "kmod",
    "less", "netcat-openbsd",
)  # fmt: skip
# trixie split the docker CLI out of docker.io into its own package.
SUITE_PACKAGES = {"bookworm": (), "trixie": ("docker-cli",)}
SEED_PACKAGES = ("firewalld",)
# mmdebstrap's mirror argument: the host's own apt sources, never a mirror name of ours.
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))

BUSYBOX_BINARY = Path("/bin/busybox")
# GOPATH mode with no proxy: the machine has Debian's golang-go and no module proxy.
GO_ENV = {"GO111MODULE": "off", "GOPROXY": "off", "CGO_ENABLED": "0", "GOFLAGS": ""}
GO_BUILD_FLAGS = ("-trimpath", "-ldflags=-s -w")

ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
# The classic builder's HTTP read timeout: a RUN step may be silent for a while.
BUILD_TIMEOUT = 1800


@dataclass(frozen=True)
class Recipe:
    short: str  # the swarmlab.image label and the name of its build log
    directory: str  # its build files, under images/
    build_args: tuple[tuple[str, str], ...] = ()
    suite: str = ROOTFS_SUITE  # the Debian suite of a node image's root file system
    extra: tuple[str, ...] = ()  # packages beyond the node's own (a variant's)


RECIPES = {
    "swarmlab/node:bookworm": Recipe("node", "node", (("WITH_DOCKER", "1"),)),
    "swarmlab/node:trixie": Recipe("node-trixie", "node", (("WITH_DOCKER", "1"),), "trixie"),
    # Nodes like the lesson's (`nodes_like: seed`): firewalld installed, and so enabled by its
    # package and running at boot, in its default zone (public: everything but ssh rejected).
    # Built when a lab asks for them, not by `make images`.
    **{f"swarmlab/node-seed:{suite}": Recipe(f"node-seed-{suite}", "node",
                                             (("WITH_DOCKER", "1"),), suite, SEED_PACKAGES)
       for suite in RELEASES},
    "swarmlab/node-nodocker:bookworm": Recipe("node-nodocker", "node", (("WITH_DOCKER", "0"),)),
    "swarmlab/busybox:latest": Recipe("busybox", "busybox"),
    "swarmlab/whoami:latest": Recipe("whoami", "whoami"),
}


def recipe_digest(name: str, root: Path | None = None) -> str:
    """The digest of everything that shapes image `name`: 16 hex digits of a sha256.

    `root` is the directory that holds the recipes (default: the project's images/), so a
    test can point it at a modified copy. Host inputs count too: the busybox binary that is
    copied in, and the Go toolchain that compiles whoami.
    """
    recipe = _recipe(name)
    parts: dict[str, Any] = {
        "image": recipe.short,
        "files": _tree_entries((root or IMAGES_DIR) / recipe.directory),
        "build_args": dict(recipe.build_args),
    }
    if recipe.directory == "node":
        parts["rootfs"] = rootfs_digest(recipe.suite, recipe.extra)
    elif recipe.directory == "busybox":
        parts["busybox"] = hashlib.sha256(_busybox_binary().read_bytes()).hexdigest()
    elif recipe.directory == "whoami":
        parts["go"] = _go_version()
        parts["go_build"] = GO_BUILD_FLAGS
    return _digest(parts)


def rootfs_digest(suite: str = ROOTFS_SUITE, extra: tuple[str, ...] = ()) -> str:
    """The digest of the node root file system's recipe; it is also the rootfs image's tag.

    The host's mirror is deliberately left out: where packages come from is the host's
    business, and a mirror change alone should not cost a minute of mmdebstrap.
    """
    return _digest(
        {
            "tool": "mmdebstrap",
            "suite": suite,
            "variant": ROOTFS_VARIANT,
            "packages": rootfs_packages(suite) + extra,
        }
    )


def rootfs_packages(suite: str) -> tuple[str, ...]:
    # bookworm's tuple is exactly the one it always was: its digest, and so every cached
    # bookworm image, stays valid.
    return ROOTFS_PACKAGES + SUITE_PACKAGES.get(suite, ())


def suite_sources(suite: str, sources: Path, host_suite: str) -> str:
    """The host's own apt sources with its suite replaced by `suite`, keeping the mirror.

    Suites such as `bookworm-updates` and `bookworm-security` become `trixie-updates` and
    `trixie-security`; URIs, components and keyrings stay as the host has them. Both the
    deb822 (`Suites: ...`) and the one-line (`deb URI SUITE ...`) formats are rewritten.
    """
    token = re.compile(rf"(?<![\w.-]){re.escape(host_suite)}(?=-[a-z]+\b|\s|$)")
    lines = []
    for line in sources.read_text().splitlines():
        fields = line.split()
        if line.lower().startswith("suites:"):
            line = token.sub(suite, line)
        elif len(fields) >= 3 and fields[0] in ("deb", "deb-src"):
            # deb [options] URI SUITE COMPONENTS: the suite follows the URI.
            at = 2 if fields[1].startswith("[") and fields[1].endswith("]") else 1
            fields[at + 1] = token.sub(suite, fields[at + 1])
            line = " ".join(fields)
        lines.append(line)
    return "\n".join(lines) + "\n"


def host_suite() -> str:
    """This host's Debian codename, the suite its apt sources name."""
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    raise LabError("/etc/os-release names no VERSION_CODENAME; cannot tell which suite"
                   " the host's apt sources name")


def image_ok(client: docker.DockerClient, name: str) -> bool:
    """True if `name` is present and was built from the current recipe."""
    return _labelled(client, name, recipe_digest(name))


def ensure_images(
    names: Iterable[str] = IMAGE_NAMES,
    log: Callable[[str], None] = print,
    client: docker.DockerClient | None = None,
) -> dict[str, str]:
    """Build every image in `names` that is missing or stale: name -> "built" or "ok"."""
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        _recipe(name)
    client = _engine(client)
    results = dict.fromkeys(wanted, "ok")
    stale = [name for name in wanted if not _checked(name, image_ok, client, name)]
    if stale:
        # Another process (a second test run, a colleague's `lab.up`) may be building the
        # same images: one builds, the other then finds them fresh.
        with _build_lock(log):
            for name in stale:
                if not _checked(name, image_ok, client, name):
                    _checked(name, _build, client, name, log)
                    results[name] = "built"
    return results


def _checked(name: str, step: Callable[..., Any], *args: Any) -> Any:
    """Run one step for image `name`; an engine fault becomes one line that names the image."""
    try:
        return step(*args)
    except DockerException as exc:
        raise LabError(
            f"{name}: Docker engine error: {_one_line(exc, 160)}; build logs in {BUILD_DIR}"
        ) from None


def _recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise LabError(
            f"unknown image {name!r}: swarmlab builds only {', '.join(IMAGE_NAMES)}"
        ) from None


def _digest(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _tree_entries(directory: Path) -> list[list[str]]:
    """What the build context holds, entry by entry: path, kind, mode and content digest."""
    if not directory.is_dir():
        raise LabError(f"image recipe {directory} is missing; restore it from git")
    entries = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if path.is_symlink():
            entries.append([rel, "link", os.readlink(path)])
        elif path.is_dir():
            entries.append([rel, "dir", ""])
        else:
            kind = "exec" if path.stat().st_mode & 0o111 else "file"
            entries.append([rel, kind, hashlib.sha256(path.read_bytes()).hexdigest()])
    return entries


def _labelled(client: docker.DockerClient, ref: str, digest: str) -> bool:
    try:
        labels = client.images.get(ref).labels or {}
    except ImageNotFound:
        return False
    return labels.get(LABEL_RECIPE) == digest


def _engine(client: docker.DockerClient | None) -> docker.DockerClient:
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = client or docker.from_env(timeout=120)
        client.ping()
    except DockerException:
        raise LabError(
            f"no Docker engine answers at {where}; run `make docker` or start dockerd"
        ) from None
    return client


@contextlib.contextmanager
def _build_lock(log: Callable[[str], None]) -> Iterator[None]:
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with open(BUILD_DIR / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("images: another swarmlab process is building images; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build(client: docker.DockerClient, name: str, log: Callable[[str], None]) -> None:
    recipe = _recipe(name)
    digest = recipe_digest(name)
    directory = IMAGES_DIR / recipe.directory
    build_args = dict(recipe.build_args)
    extra: dict[str, Path] = {}
    if recipe.directory == "node":
        build_args["ROOTFS"] = _ensure_rootfs(client, log, recipe.suite, recipe.extra)
    elif recipe.directory == "busybox":
        extra["busybox"] = _busybox_binary()
    elif recipe.directory == "whoami":
        extra["whoami"] = _go_build(name, directory)
    log(f"{name}: building")
    started = time.monotonic()
    replaced = _image_id(client, name)
    _docker_build(client, name, recipe, digest, _context(directory, extra), build_args)
    # The tag moved to the new image; drop the old one unless a container still uses it, so
    # rebuilds do not pile up untagged images (a node image is half a gigabyte).
    if replaced and replaced != _image_id(client, name):
        with contextlib.suppress(APIError):
            client.images.remove(replaced)
    log(f"{name}: built in {time.monotonic() - started:.1f} s")


def _image_id(client: docker.DockerClient, ref: str) -> str | None:
    try:
        return client.images.get(ref).id
    except ImageNotFound:
        return None


def _context(directory: Path, extra: dict[str, Path]) -> io.BytesIO:
    """The build context: the recipe directory as is, plus files made on the host."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            arcname = path.relative_to(directory).as_posix()
            tar.add(path, arcname=arcname, recursive=False, filter=_normalised)
        for arcname, path in extra.items():
            tar.add(path, arcname=arcname, filter=_normalised)
    buffer.seek(0)
    return buffer


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Modes as the recipe digest sees them (executable or not), so a checkout's umask cannot
    make two images differ under one digest."""
    if not info.issym():
        info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _docker_build(
    client: docker.DockerClient,
    name: str,
    recipe: Recipe,
    digest: str,
    context: io.BytesIO,
    build_args: dict[str, str],
) -> None:
    log_path = BUILD_DIR / f"{recipe.short}.log"
    step = "the start"
    said = ""  # the last line the failing step printed: usually the actual reason
    with open(log_path, "w") as out:
        stream = client.api.build(
            fileobj=context,
            custom_context=True,
            tag=name,
            buildargs=build_args,
            labels={LABEL_RECIPE: digest, LABEL_IMAGE: recipe.short},
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            timeout=BUILD_TIMEOUT,
        )
        for chunk in stream:
            # The classic builder colours a step's stderr; the log is for reading in a pager.
            text = ANSI_COLOUR.sub("", chunk.get("stream", ""))
            out.write(text)
            if text.startswith("Step "):
                step, said = _one_line(text, 70), ""
            elif text.strip() and not text.startswith((" ---> ", "Removing intermediate")):
                said = _one_line(text.strip().splitlines()[-1], 80)
            if "error" in chunk:
                out.write(f"ERROR: {chunk['error']}\n")
                reason = f"{said}; " if said else ""
                raise LabError(
                    f"{name}: `docker build images/{recipe.directory}` failed at {step}"
                    f" ({reason}{_one_line(chunk['error'], 90)}); full log: {log_path}"
                )


def _ensure_rootfs(
    client: docker.DockerClient, log: Callable[[str], None], suite: str = ROOTFS_SUITE,
    extra: tuple[str, ...] = (),
) -> str:
    """The node root file system's image tag, made by mmdebstrap if it is not there yet."""
    digest = rootfs_digest(suite, extra)
    tag = f"{ROOTFS_REPO}:{digest}"
    if _labelled(client, tag, digest):
        return tag
    mmdebstrap = shutil.which("mmdebstrap")
    if not mmdebstrap:
        raise LabError(f"{tag}: mmdebstrap is missing; run `apt-get install mmdebstrap`")
    host_sources = next((path for path in APT_SOURCES if path.is_file()), None)
    if host_sources is None:
        raise LabError(
            f"{tag}: no apt sources on this host ({' or '.join(map(str, APT_SOURCES))});"
            " mmdebstrap takes its mirror from them"
        )
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    # The same file name ending: mmdebstrap reads a .sources file as deb822.
    sources = BUILD_DIR / f"apt-{suite}{host_sources.suffix or '.list'}"
    sources.write_text(suite_sources(suite, host_sources, host_suite()))
    command = [
        mmdebstrap,
        f"--variant={ROOTFS_VARIANT}",
        f"--include={','.join(rootfs_packages(suite) + extra)}",
        suite,
        "-",
        str(sources),
    ]
    log_path = BUILD_DIR / f"node-rootfs-{digest}.log"
    tarball = BUILD_DIR / f"node-rootfs-{digest}.tar"
    log(f"{tag}: mmdebstrap {suite} from {host_sources}'s mirror (about a minute;"
        f" log: {log_path})")
    started = time.monotonic()
    try:
        # Through a file rather than a pipe: a failing mmdebstrap must not leave a truncated
        # root file system imported under the tag.
        with open(log_path, "w") as out, open(tarball, "wb") as tar:
            out.write(" ".join(command) + "\n")
            out.flush()
            result = subprocess.run(command, stdout=tar, stderr=out, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            if suite_missing(log_path.read_text(errors="replace"), suite):
                raise LabError(
                    f"{tag}: the mirror in {host_sources} does not serve Debian suite"
                    f" {suite!r}; pick another release; full log: {log_path}"
                )
            raise LabError(
                f"{tag}: `mmdebstrap ... {suite} - {sources}` failed"
                f" (exit {result.returncode}); full log: {log_path}"
            )
        answer = client.api.import_image(
            src=str(tarball),
            repository=ROOTFS_REPO,
            tag=digest,
            changes=[f"LABEL {LABEL_RECIPE}={digest} {LABEL_IMAGE}=node-rootfs"],
        )
        with open(log_path, "a") as out:
            out.write(f"docker import: {answer}\n")
    finally:
        tarball.unlink(missing_ok=True)
    if not _labelled(client, tag, digest):
        raise LabError(f"{tag}: `docker import` did not produce the image; full log: {log_path}")
    _untag_stale_rootfs(client)
    log(f"{tag}: made in {time.monotonic() - started:.0f} s")
    return tag


def suite_missing(log_text: str, suite: str) -> bool:
    """apt's words for a suite the mirror has no Release file for."""
    return any(
        suite in line and ("does not have a Release file" in line or "404" in line)
        for line in log_text.splitlines()
    )


def _untag_stale_rootfs(client: docker.DockerClient) -> None:
    """Root file systems of older recipes are half a gigabyte each and never used again;
    every current recipe's stays."""
    current = {f"{ROOTFS_REPO}:{rootfs_digest(r.suite, r.extra)}"
               for r in RECIPES.values() if r.directory == "node"}
    for image in client.images.list(filters={"label": f"{LABEL_IMAGE}=node-rootfs"}):
        for tag in image.tags:
            if tag.startswith(f"{ROOTFS_REPO}:") and tag not in current:
                with contextlib.suppress(APIError):
                    client.images.remove(tag)


# --- the Incus node image ------------------------------------------------------------------
# The local node image of the lab's release as it is (same recipe, same digest), with
# images/incus/rootfs/ on top and Incus's metadata.yaml and templates beside it: one unified
# tarball that the incus provider imports under an alias carrying incus_image_digest(release).
INCUS_DIR = IMAGES_DIR / "incus"
# metadata.yaml's words for what the image's release is (its `release` property and its
# description), filled in per tarball.
RELEASE_PLACEHOLDER = "@RELEASE@"


def incus_base(release: str) -> str:
    """The local node image an Incus node image of `release` is made from."""
    return f"swarmlab/node:{release}"


def incus_image_digest(release: str) -> str:
    """The digest of the Incus node image of `release`: its base image's recipe (which holds
    the suite, through the root file system's) and images/incus/."""
    return _digest({
        "image": "node-incus",
        "base": recipe_digest(incus_base(release)),
        "files": _tree_entries(INCUS_DIR),
    })


def build_incus_tarball(
    release: str, log: Callable[[str], None] = print, client: docker.DockerClient | None = None
) -> Path:
    """Write the Incus node image of `release` as a unified tarball under .cache/images/ and
    return it. A release the host's mirror does not serve fails in ensure_images, as one line
    naming the suite.

    The base image's file system comes out of `docker export` of a container that is made
    for it and never started, and is rewritten under rootfs/ as it streams: no copy of half
    a gigabyte is unpacked on the host.
    """
    base = incus_base(release)
    client = _engine(client)
    ensure_images([base], log=log, client=client)
    digest = incus_image_digest(release)
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    # A name of its own per call: labs of a class come up side by side, each may build it.
    path = BUILD_DIR / f"node-incus-{digest}-{os.getpid()}-{threading.get_ident()}.tar"
    overlay = INCUS_DIR / "rootfs"
    # Files only: the overlay's directories are the base's own (/etc, /usr/local/sbin...).
    added = [p for p in sorted(overlay.rglob("*")) if p.is_symlink() or not p.is_dir()]
    replaced = {p.relative_to(overlay).as_posix() for p in added}
    started = time.monotonic()
    container = _checked(base, lambda: client.containers.create(
        base, "/bin/true", labels={LABEL_IMAGE: "node-incus-export"}))
    partial = path.with_suffix(".partial")
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as out:
            exported = _ChunkReader(client.api.export(container.id))
            with tarfile.open(fileobj=exported, mode="r|") as source:
                for member in source:
                    name = member.name.removeprefix("./").rstrip("/")
                    if not name or name in replaced:
                        continue
                    member.name = f"rootfs/{name}"
                    if member.islnk():  # a hard link names another member of the archive
                        member.linkname = f"rootfs/{member.linkname.removeprefix('./')}"
                    out.addfile(member, source.extractfile(member) if member.isreg() else None)
            for item in added:
                out.add(item, arcname=f"rootfs/{item.relative_to(overlay).as_posix()}",
                        recursive=False, filter=_normalised)
            metadata = (INCUS_DIR / "metadata.yaml").read_text().replace(
                "creation_date: 0", f"creation_date: {int(time.time())}").replace(
                RELEASE_PLACEHOLDER, release)
            _add_text(out, "metadata.yaml", metadata)
            for template in sorted((INCUS_DIR / "templates").glob("*.tpl")):
                out.add(template, arcname=f"templates/{template.name}", filter=_normalised)
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)
        with contextlib.suppress(APIError):
            container.remove(force=True)
    log(f"node-incus {release} {digest}: tarball in {time.monotonic() - started:.1f} s")
    return path


class _ChunkReader(io.RawIOBase):
    """A file object over the byte chunks the Docker API streams (tarfile wants read())."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            self._rest = next(self._chunks, b"")
            if not self._rest:
                return 0
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size


def _add_text(archive: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
    archive.addfile(info, io.BytesIO(data))


def _busybox_binary() -> Path:
    # Debian's plain `busybox` package puts a dynamically linked binary at the same path,
    # useless in an empty image: only the static package will do.
    query = ["dpkg-query", "-W", "-f=${db:Status-Status}", "busybox-static"]
    installed = bool(shutil.which("dpkg-query")) and (
        subprocess.run(query, capture_output=True, text=True).stdout == "installed"
    )
    if not installed or not BUSYBOX_BINARY.is_file():
        raise LabError(
            "swarmlab/busybox:latest needs Debian's static busybox: run"
            " `apt-get install busybox-static`"
        )
    return BUSYBOX_BINARY


def _go() -> str:
    go = shutil.which("go")
    if not go:
        raise LabError("swarmlab/whoami:latest needs Go: run `apt-get install golang-go`")
    return go


def _go_version() -> str:
    return subprocess.run(
        [_go(), "version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _go_build(name: str, directory: Path) -> Path:
    """Compile whoami statically on the host; the image then holds only the binary."""
    output = BUILD_DIR / "whoami" / "whoami"
    output.parent.mkdir(parents=True, exist_ok=True)
    log_path = BUILD_DIR / "whoami-go.log"
    env = {
        **os.environ,
        **GO_ENV,
        "GOPATH": str(CACHE_DIR / "go"),
        "GOCACHE": str(CACHE_DIR / "go-build"),
    }
    command = [_go(), "build", *GO_BUILD_FLAGS, "-o", str(output), str(directory / "main.go")]
    with open(log_path, "w") as out:
        result = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
        )
    if result.returncode != 0:
        raise LabError(
            f"{name}: `go build images/whoami/main.go` failed (exit {result.returncode});"
            f" full log: {log_path}"
        )
    return output


def _one_line(text: object, limit: int = 200) -> str:
    """Squash to one line; cut the middle, since errors end with their point (an exit code)."""
    line = " ".join(str(text).split())
    if len(line) <= limit:
        return line
    half = (limit - 3) // 2
    return f"{line[:half]}...{line[-half:]}"


def _full_name(arg: str) -> str:
    """Accept `busybox` as well as `swarmlab/busybox:latest` on the command line."""
    for name, recipe in RECIPES.items():
        if arg == recipe.short:
            return name
    return arg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.images",
        description="Build the lab's images that are missing or stale (all by default).",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(IMAGE_NAMES))
    args = parser.parse_args(argv)
    names = [_full_name(arg) for arg in args.names] or list(IMAGE_NAMES)
    try:
        results = ensure_images(names, log=lambda line: print(line, file=sys.stderr, flush=True))
    except LabError as exc:
        print(exc, file=sys.stderr)
        return 1
    for name, state in results.items():
        print(f"{name}: {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
