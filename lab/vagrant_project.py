"""One lab's Vagrant project: its directory, the JSON the Vagrantfile reads, and vagrant runs.

Every lab gets its own project directory inside its state directory, holding a two-line
Vagrantfile that loads the project's shared `vagrant/Vagrantfile` with the lab's JSON spec,
and Vagrant's own `.vagrant` data. So two labs never share a machine, and an instructor can
`cd` there and use `vagrant status` / `vagrant ssh manager1` directly.

python-vagrant drives the commands it knows; the few it cannot express (snapshots of all
machines with --force or --no-provision, machine-readable lists) run through `run()`. Either
way vagrant's output goes to the project's log, and a failure becomes one line taken from the
end of what vagrant said, with the log's path.

Every vagrant command has a bound (python-vagrant's own calls wait forever): commands that
make, start or stop machines get the project's `machine_timeout`, the others (status,
ssh-config, lists) QUICK_SECONDS. Past it, vagrant is stopped and one line names the command
that hung. Output goes to files, never to pipes, so a helper that vagrant started and that
outlives it cannot keep the wait open.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .atomic import write_atomic
from .errors import LabError

VAGRANTFILE = Path(__file__).resolve().parent.parent / "vagrant" / "Vagrantfile"
SPEC_NAME = "spec.json"
LOG_NAME = "vagrant.log"
AUTHORIZED_KEYS = "authorized_keys"
MIN_VERSION = (2, 2, 0)  # the docker provider's create_args and snapshots as used here
INSTALL_HINT = "run `sudo scripts/install-vagrant` (Debian's vagrant package)"
# `vagrant status` of three libvirt machines takes about 10 s on a loaded 2-core host.
QUICK_SECONDS = 180.0
# Subcommands that make, start or stop machines: they get the project's machine_timeout.
MACHINE_COMMANDS = frozenset({"up", "destroy", "halt", "reload", "resume", "suspend", "provision",
                              "snapshot"})
DEFAULT_MACHINE_SECONDS = 3600.0
# After SIGTERM vagrant cleans up its lock files; a vagrant that ignores it is killed.
STOP_GRACE_SECONDS = 30.0
# Nothing may leave the machine: no version checkpoint, no box update checks.
QUIET_ENV = {"VAGRANT_CHECKPOINT_DISABLE": "1", "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1"}

# VirtualBox 6.1.28+ allows host-only addresses only in this range unless
# /etc/vbox/networks.conf lists others (and then only those).
VBOX_DEFAULT_RANGE = ipaddress.IPv4Network("192.168.56.0/21")
VBOX_NETWORKS_CONF = Path("/etc/vbox/networks.conf")

STUB = """\
# Made by swarmlab for lab {lab}: the machines are defined in {vagrantfile}.
ENV["SWARMLAB_SPEC"] ||= File.expand_path("{spec}", __dir__)
load {vagrantfile_literal}
"""


def vagrant_binary() -> str:
    path = shutil.which("vagrant")
    if not path:
        raise LabError(f"vagrant is not installed (no `vagrant` on PATH); {INSTALL_HINT}")
    return path


def vbox_allowed_ranges(path: Path = VBOX_NETWORKS_CONF) -> list[ipaddress.IPv4Network]:
    """The IPv4 ranges VirtualBox lets host-only networks use, as networks.conf says.

    Lines look like `* 10.0.0.0/8 192.168.0.0/16`; `#` starts a comment. Without the file,
    VirtualBox allows 192.168.56.0/21 only; with it, only what it lists.
    """
    if not path.exists():
        return [VBOX_DEFAULT_RANGE]
    ranges: list[ipaddress.IPv4Network] = []
    for line in path.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "*":
            continue
        for word in words[1:]:
            try:
                network = ipaddress.ip_network(word, strict=False)
            except ValueError:
                continue
            if isinstance(network, ipaddress.IPv4Network):
                ranges.append(network)
    return ranges


def vbox_range_fix(subnet: ipaddress.IPv4Network, path: Path) -> str:
    """What to do so that VirtualBox accepts `subnet`: the exact line for networks.conf."""
    if path.exists():
        return f"add the line `* {subnet}` to {path}"
    # Creating the file replaces VirtualBox's default range: keep it in the same line.
    return f"create {path} with the line `* {VBOX_DEFAULT_RANGE} {subnet}`"


def parse_ssh_config(text: str) -> dict[str, dict[str, str]]:
    """`vagrant ssh-config` output (one `Host` block per running machine) -> name -> options."""
    hosts: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if len(words) < 2 or words[0].startswith("#"):
            continue
        key, value = words[0], words[1].strip().strip('"')
        if key == "Host":
            current = hosts.setdefault(value, {})
        elif current is not None:
            current[key] = value
    return hosts


def parse_machine_readable(text: str) -> list[tuple[str, str, list[str]]]:
    """Machine-readable lines `time,target,kind,data...` -> (target, kind, data fields)."""
    rows = []
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) < 3:
            continue
        data = [f.replace("%!(VAGRANT_COMMA)", ",").replace("\\n", "\n") for f in fields[3:]]
        rows.append((fields[1], fields[2], data))
    return rows


def parse_snapshot_list(text: str) -> dict[str, list[str]]:
    """`vagrant snapshot list --machine-readable` -> machine -> snapshot names, oldest first.

    Vagrant prints an empty `output` line and then one `detail` line per snapshot; with no
    snapshots, its `output` line says so and the `detail` line is advice, not a name.
    """
    found: dict[str, list[str]] = {}
    listing: dict[str, bool] = {}
    for target, kind, data in parse_machine_readable(text):
        if kind != "ui" or not target or not data:
            continue
        found.setdefault(target, [])
        if data[0] == "output":
            # An empty line opens the list; vagrant-libvirt's carries the `==> NAME:` prefix.
            said = re.sub(r"^==> [^:]+:", "", ",".join(data[1:]).strip()).strip()
            listing[target] = not said
        elif data[0] == "detail" and listing.get(target):
            name = ",".join(data[1:]).strip()
            if name:
                found[target].append(name)
    return found


# Progress lines (`==> manager1: ...`, `    manager1: ...`), Ruby backtraces and our own
# command echo: everything in a log that is not the error text itself.
NOT_ERROR_LINE = re.compile(r"^(==> |\s{4}[\w.-]+: |Bringing machine |/\S+\.rb:\d+:in |\$ )")
# Vagrant wraps the real reason in these; the paragraph after them is the point.
WRAPPER = re.compile(r"^(An error occurred while executing|There are errors in the configuration)")


def error_summary(text: str, limit: int = 300) -> str:
    """The point of what vagrant printed on failure, as one line.

    Its errors are paragraphs at the end of the output, often after a wrapper ("An error
    occurred while executing the action on the 'manager1' machine...") and sometimes after a
    Ruby backtrace; machine-readable commands put it in an `error-exit` line instead.
    """
    for _target, kind, data in parse_machine_readable(text):
        if kind == "error-exit" and len(data) > 1:
            text = data[1]
    lines = [line for line in text.splitlines() if not NOT_ERROR_LINE.match(line)]
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", "\n".join(lines))]
    paragraphs = [p for p in paragraphs if p and not WRAPPER.match(p)]
    if not paragraphs:
        return "vagrant gave no reason"
    point = paragraphs[0]
    if point.endswith(":") and len(paragraphs) > 1:
        point += " " + paragraphs[1]
    return point if len(point) <= limit else point[: limit - 3] + "..."


def run_bounded(command: list[str], *, timeout: float, what: str, log_path: Path | None = None,
                **popen: Any) -> int:
    """Run `command` to its end within `timeout` s and return its exit status; past the bound
    it is stopped (SIGTERM, then SIGKILL) and one LabError names what hung."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, **popen)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        said = f"; what it said is in {log_path}" if log_path else ""
        raise LabError(f"`{what}` hung: still running after {timeout:g} s, so it was stopped{said}"
                       ) from None
    except BaseException:  # Ctrl-C or an error here: vagrant must not run on unwatched
        process.kill()
        process.wait()
        raise


def version_tuple(text: str) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if not match:
        raise LabError(f"cannot read vagrant's version from {text.strip()!r}; {INSTALL_HINT}")
    return tuple(int(part) for part in match.groups())


def _python_vagrant() -> Any:
    # python-vagrant logs a multi-line warning at import when vagrant is not on PATH; the
    # provider says that itself, in one line.
    logger = logging.getLogger("vagrant")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    import vagrant

    return vagrant


class VagrantProject:
    """A lab's Vagrant project directory and the vagrant commands run in it."""

    def __init__(self, directory: Path, provider: str, lab: str,
                 machine_timeout: float = DEFAULT_MACHINE_SECONDS):
        self.directory = directory
        self.provider = provider
        self.lab = lab
        self.machine_timeout = machine_timeout
        self.quick_timeout = QUICK_SECONDS
        self._client: Any = None

    @property
    def spec_path(self) -> Path:
        return self.directory / SPEC_NAME

    @property
    def log_path(self) -> Path:
        return self.directory / LOG_NAME

    @property
    def exists(self) -> bool:
        return (self.directory / "Vagrantfile").exists()

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **QUIET_ENV,
            "SWARMLAB_SPEC": str(self.spec_path),
            # A user's own VAGRANT_CWD or VAGRANT_DOTFILE_PATH would point every lab at one
            # project: pin both to this lab's directory.
            "VAGRANT_CWD": str(self.directory),
            "VAGRANT_DOTFILE_PATH": str(self.directory / ".vagrant"),
            "VAGRANT_DEFAULT_PROVIDER": self.provider,
        }

    # --- files -------------------------------------------------------------------------
    def write(self, spec: dict[str, Any], authorized_key: str | None = None) -> None:
        """Write (or rewrite) the JSON spec and the stub Vagrantfile, atomically each."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        write_atomic(self.spec_path, json.dumps(spec, indent=2, sort_keys=True) + "\n")
        write_atomic(self.directory / "Vagrantfile", STUB.format(
            lab=self.lab, vagrantfile=VAGRANTFILE, spec=SPEC_NAME,
            vagrantfile_literal=json.dumps(str(VAGRANTFILE)),
        ))
        if authorized_key is not None:
            # Bind-mounted read-only as root's authorized_keys in docker nodes.
            write_atomic(self.directory / AUTHORIZED_KEYS, authorized_key + "\n", mode=0o644)

    def read_spec(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.spec_path.read_text())
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    # --- commands ----------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """python-vagrant's Vagrant object for this project, logging to the project's log."""
        if self._client is None:
            vagrant_binary()
            module = _python_vagrant()
            log_cm = module.make_file_cm(str(self.log_path))
            self._client = _bounded_client(module, self)(
                root=str(self.directory), env=self.env, out_cm=log_cm, err_cm=log_cm
            )
        return self._client

    def bounded(self, command: list[str], **popen: Any) -> int:
        """Run a vagrant command line in the project with the bound its subcommand gets."""
        args = [arg for arg in command[1:] if not arg.startswith("-")]
        machines = bool(args) and args[0] in MACHINE_COMMANDS and args[1:2] != ["list"]
        timeout = self.machine_timeout if machines else self.quick_timeout
        what = " ".join(["vagrant", *command[1:]])
        return run_bounded(command, timeout=timeout, what=what, log_path=self.log_path,
                           cwd=self.directory, env=self.env, **popen)

    @contextmanager
    def failing_as(self, what: str) -> Iterator[None]:
        """Turn a failed vagrant command into one LabError line: what vagrant said last."""
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        try:
            yield
        except subprocess.CalledProcessError as exc:
            said = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else ""
            raise LabError(
                f"`{what}` failed: {self.last_words(start, said)}; full log: {self.log_path}"
            ) from None
        except OSError as exc:
            raise LabError(f"`{what}` could not run: {exc}; {INSTALL_HINT}") from None

    def last_words(self, start: int = 0, extra: str = "") -> str:
        """Vagrant's error since `start` in the log (plus `extra`), as one line."""
        text = extra
        if self.log_path.exists():
            with open(self.log_path, errors="replace") as log:
                log.seek(start)
                text = log.read() + "\n" + extra
        return error_summary(text)

    def run(self, *args: str, what: str | None = None) -> str:
        """Run `vagrant ARGS` in the project; its stdout, or one LabError line on failure."""
        command = [vagrant_binary(), *args]
        shown = what or "vagrant " + " ".join(args)
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.failing_as(shown), open(self.log_path, "a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            with tempfile.TemporaryFile() as out:
                code = self.bounded(command, stdout=out, stderr=log)
                out.seek(0)
                said = out.read().decode(errors="replace")
            log.write(said)
            if code != 0:
                raise subprocess.CalledProcessError(code, command)
        return said

    def version(self) -> str:
        with self.failing_as("vagrant --version"):
            return str(self.client.version())

    def status(self) -> dict[str, str]:
        """Machine name -> Vagrant's state word (running, not_created, poweroff, stopped...)."""
        with self.failing_as("vagrant status"):
            found = self.client.status()
        return {entry.name: entry.state for entry in found}

    def machine_id(self, name: str) -> str | None:
        """Vagrant's id of a machine (VM uuid, container id): changes when it is recreated."""
        path = self.directory / ".vagrant" / "machines" / name / self.provider / "id"
        try:
            return path.read_text().strip() or None
        except OSError:
            return None

    def ssh_configs(self) -> dict[str, dict[str, str]]:
        """The SSH settings of every running machine, from one `vagrant ssh-config`."""
        try:
            text = self.client.ssh_config()
        except subprocess.CalledProcessError as exc:
            # Vagrant prints the running machines' blocks, then fails on a stopped one.
            text = exc.output.decode(errors="replace") if exc.output else ""
        return parse_ssh_config(text)


def _bounded_client(module: Any, project: VagrantProject) -> type:
    """python-vagrant's Vagrant class, its two ways of running vagrant given the project's
    bounds (its own use subprocess.check_call/check_output without a timeout)."""

    class BoundedVagrant(module.Vagrant):  # type: ignore[misc, name-defined]
        def _call_vagrant_command(self, args: list[str | None]) -> None:
            command = self._make_vagrant_command(args)
            with self.out_cm() as out, self.err_cm() as err:
                code = project.bounded(command, stdout=out, stderr=err)
            if code != 0:
                raise subprocess.CalledProcessError(code, command)

        def _run_vagrant_command(self, args: list[str | None]) -> str:
            command = self._make_vagrant_command(args)
            with self.err_cm() as err, tempfile.TemporaryFile() as out:
                code = project.bounded(command, stdout=out, stderr=err)
                out.seek(0)
                said = out.read()
            if code != 0:
                raise subprocess.CalledProcessError(code, command, output=said)
            return said.decode(errors="replace")

    return BoundedVagrant

