"""govmomi's vSphere simulator as a managed process, for tests and for trying the provider.

`python -m lab.vcsim start` builds vcsim if needed (vmware/build-vcsim), starts it in the
background with a template ready (`swarmlab-template`), and prints its URL; `url` prints it
again; `stop` ends it by the PID it recorded, with SIGTERM, so that vcsim removes the
containers of container-backed VMs and its temporary folders itself.

Each instance has a folder of its own: its PID, URL and output files, and a TMPDIR for the
simulated datastores. VCSIM_BUSYBOX names a local image with tar (vcsim would otherwise try
to pull busybox to write the VMs' DMI files), so nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError
from .waits import wait_until

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "vmware" / "build-vcsim"
DEFAULT_DIR = ROOT / ".cache" / "vcsim" / "run"
DEFAULT_PORT = 18443
TEMPLATE = "swarmlab-template"
URL_PREFIX = "VCSIM_URL="
# Images with tar, in order of preference: the smallest first.
TAR_IMAGES = ("swarmlab/busybox:latest", "swarmlab/node:bookworm", "swarmlab/node:test")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0  # vcsim stops and removes every VM container before it exits


def build() -> Path:
    """The vcsim binary, built from vmware/vcsim/main.go unless the digest says it is current."""
    try:
        done = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise LabError("building vcsim took over 10 minutes; run vmware/build-vcsim") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"building vcsim failed: {last}")
    return Path(done.stdout.strip().splitlines()[-1])


def tar_image() -> str:
    """A local image vcsim can run `tar` in: the first one present, else the one that
    `python -m lab.images` builds (vcsim looks it up only when a container VM starts)."""
    for image in TAR_IMAGES:
        try:
            found = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
        except FileNotFoundError:  # no docker CLI: no container-backed VMs either
            break
        if found.returncode == 0:
            return image
    return TAR_IMAGES[0]


@dataclass
class Vcsim:
    """One running simulator: where it listens and how to stop it."""

    directory: Path
    pid: int
    url: str

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def running(self) -> bool:
        return _is_vcsim(self.pid)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM by PID (only if that PID is still our vcsim), then wait for it to exit."""
        if _is_vcsim(self.pid):
            os.kill(self.pid, signal.SIGTERM)

            def gone() -> bool:
                _reap(self.pid)
                return not _is_vcsim(self.pid)

            wait_until(gone, timeout=timeout, interval=0.1,
                       what=f"vcsim (PID {self.pid}) to exit on SIGTERM",
                       last_seen=lambda _gone: f"process state {_state(self.pid)}",
                       hint="it removes its VM containers first; see `docker ps`")
            _reap(self.pid)
        for name in ("pid", "url"):
            (self.directory / name).unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect our own child's exit status, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):  # not our child: init reaps it
        os.waitpid(pid, os.WNOHANG)


def _state(pid: int) -> str:
    """The process's state letter (R, S, D, Z...), or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def _is_vcsim(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # A zombie has exited already; its PID must not be signalled again.
    return _state(pid) not in ("Z", "gone") and \
        Path(cmdline.split(b"\0")[0].decode()).name == "vcsim"


def start(
    directory: Path = DEFAULT_DIR,
    *,
    port: int = 0,
    username: str | None = None,
    password: str | None = None,
    tls: tuple[Path, Path] | None = None,
    esx: bool = False,
    template: str | None = TEMPLATE,
) -> Vcsim:
    """Build if needed and start vcsim on 127.0.0.1 (port 0: a free one); wait for its URL."""
    binary = build()
    directory.mkdir(parents=True, exist_ok=True)
    current = running(directory)
    if current is not None:
        raise LabError(f"vcsim already runs from {directory} at {current.url} (PID {current.pid});"
                       " stop it first: python -m lab.vcsim stop")
    tmp = directory / "tmp"
    tmp.mkdir(exist_ok=True)
    argv = [str(binary), "-l", f"127.0.0.1:{port}"]
    if username is not None and password is not None:
        argv += ["-username", username, "-password", password]
    if tls is not None:
        argv += ["-tlscert", str(tls[0]), "-tlskey", str(tls[1])]
    if esx:
        argv.append("-esx")
    if template:
        argv += ["-template", template]
    env = {**os.environ, "TMPDIR": str(tmp), "VCSIM_BUSYBOX": tar_image()}
    out_path, err_path = directory / "stdout", directory / "stderr"
    # Output goes to files, not pipes: vcsim outlives `python -m lab.vcsim start`.
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)

    def printed_url() -> str:
        for line in out_path.read_text().splitlines():
            if line.startswith(URL_PREFIX):
                return line[len(URL_PREFIX):].strip()
        if process.poll() is not None:
            raise LabError(f"vcsim exited at start ({process.returncode}): {last_said()}")
        return ""

    def last_said(_url: object = None) -> str:
        return (err_path.read_text().strip().splitlines() or ["no output"])[-1]

    try:
        url = wait_until(printed_url, timeout=START_TIMEOUT, interval=0.05,
                         what="vcsim to print its URL", last_seen=last_said,
                         hint=f"see {err_path}")
    except LabError:
        if process.poll() is None:
            process.terminate()
        raise
    (directory / "pid").write_text(f"{process.pid}\n")
    (directory / "url").write_text(url + "\n")
    return Vcsim(directory, process.pid, url)


def running(directory: Path = DEFAULT_DIR) -> Vcsim | None:
    """The vcsim recorded in `directory`, if it still runs."""
    try:
        pid = int((directory / "pid").read_text())
        url = (directory / "url").read_text().strip()
    except (OSError, ValueError):
        return None
    found = Vcsim(directory, pid, url)
    return found if found.running() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.vcsim", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("build", "start", "stop", "url"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the instance's folder")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port on 127.0.0.1 for start (default {DEFAULT_PORT})")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(build())
        elif args.command == "start":
            sim = start(args.dir, port=args.port)
            print(f"{URL_PREFIX}{sim.url}")
            print(f"vcsim runs as PID {sim.pid} with template {TEMPLATE}; any user and any"
                  " non-empty password log in; stop it with: python -m lab.vcsim stop")
        elif args.command == "url":
            sim = running(args.dir)
            if sim is None:
                raise LabError("no vcsim runs; start one with: python -m lab.vcsim start")
            print(sim.url)
        else:
            sim = running(args.dir)
            if sim is None:
                print("no vcsim runs")
            else:
                sim.stop()
                print(f"vcsim (PID {sim.pid}) stopped")
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
