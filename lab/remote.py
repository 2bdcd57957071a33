"""Talking to nodes: Fabric connections with pinned host keys, timeouts and parallel runs.

Every provider ends at an SSH target, so this is the one road to a node. Fabric's
ThreadingGroup joins its threads without a timeout (one hung host blocks the group), so
parallel work goes through a bounded thread pool with a deadline instead, and each node's
outcome is kept apart from the others'.
"""

from __future__ import annotations

import logging
import re
import shlex
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import paramiko
from fabric import Connection
from invoke.exceptions import CommandTimedOut

from .errors import NodeError
from .providers.base import SSHTarget
from .spec import NodeSpec, SSHSettings

# paramiko's transport thread logs a dropped connection ("Socket exception: Connection reset
# by peer") and, with no handler of ours, Python prints it on stderr beside the one-line error
# the CLI gives for the same event.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

T = TypeVar("T")

# Join tokens look like SWMTKN-1-<digest>-<secret>; nothing that prints may show one.
TOKEN_RE = re.compile(r"SWMTKN-1-[0-9a-z]+-[0-9a-z]+")


def redact(text: str) -> str:
    return TOKEN_RE.sub("SWMTKN-1-<redacted>", text)


@dataclass
class CommandResult:
    command: str  # as shown to people: secrets redacted
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


class Node:
    """One lab node reached over SSH; the only way shared code touches a machine."""

    def __init__(self, spec: NodeSpec, target: SSHTarget, settings: SSHSettings):
        self.spec = spec
        self.target = target
        self.settings = settings
        self._connection: Connection | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def address(self) -> str:
        return self.spec.address

    def _connect(self) -> Connection:
        if self._connection is not None and self._connection.is_connected:
            return self._connection
        target = self.target
        connection = Connection(
            host=target.host,
            port=target.port,
            user=target.user,
            connect_timeout=self.settings.connect_timeout,
            connect_kwargs={
                "key_filename": [target.key_filename],
                "look_for_keys": False,
                "allow_agent": False,
                "banner_timeout": self.settings.connect_timeout,
                "auth_timeout": self.settings.connect_timeout,
            },
        )
        # Trust only the host key the provider pinned for this node: never the user's
        # known_hosts, never "add whatever the server shows".
        connection.client = paramiko.SSHClient()
        connection.client.load_host_keys(target.known_hosts)
        connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if target.host_key_alias:
            # paramiko looks keys up by "[host]:port"; alias the pinned entry to it.
            keys = connection.client.get_host_keys()
            alias = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
            if target.host_key_alias in keys:
                for key_type, key in keys[target.host_key_alias].items():
                    keys.add(alias, key_type, key)
        try:
            connection.open()
        except paramiko.BadHostKeyException:
            raise NodeError(
                self.name,
                f"host key of {target.host}:{target.port} does not match the pinned key in"
                f" {target.known_hosts}; the machine was replaced behind the lab's back:"
                " run `invoke lab.up` to re-pin it",
            ) from None
        except paramiko.SSHException as exc:
            raise NodeError(
                self.name, f"SSH to {target.host}:{target.port} failed: {exc}"
            ) from None
        except (TimeoutError, OSError) as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise NodeError(
                self.name,
                f"SSH to {target.host}:{target.port} failed: {reason}; is the node running?"
                " (`invoke lab.status`)",
            ) from None
        if target.user != "root":
            self._check_sudo(connection)
        self._connection = connection
        return connection

    def _check_sudo(self, connection: Connection) -> None:
        """A sudo user must reach root without a password, or every step would hang on a prompt
        no one sees (sudo -n fails instead): say so at the first contact, with the fix."""
        user = self.target.user
        try:
            found = connection.run("sudo -n true", hide=True, warn=True, in_stream=False,
                                   timeout=self.settings.connect_timeout)
        except CommandTimedOut:
            connection.close()
            raise NodeError(self.name, f"`sudo -n true` as {user} did not answer within"
                                       f" {self.settings.connect_timeout:g} s; does the node"
                                       " resolve its own name (/etc/hosts)?") from None
        if found.ok:
            return
        connection.close()
        if found.exited == 127:
            raise NodeError(self.name, f"user {user} cannot become root: sudo is not installed;"
                                       " install it or log in as root (ssh.user: root)")
        said = (found.stdout + found.stderr).strip().splitlines()
        if said and "password is required" not in said[-1]:
            raise NodeError(self.name, f"user {user} cannot run `sudo -n`: {said[-1]}")
        raise NodeError(
            self.name,
            f"user {user} cannot run sudo without a password; add"
            f" `{user} ALL=(ALL) NOPASSWD: ALL` to /etc/sudoers.d/{user}",
        )

    def as_root(self, command: str) -> str:
        """The command as the node runs it: as is for root, else through password-less sudo.

        Every command shared code sends needs root (Docker, systemd, /etc), and templates and
        boxes often log in as a sudo user, so the switch happens here, once, for all of them.
        """
        if self.target.user == "root":
            return command
        return f"sudo -n sh -c {shlex.quote(command)}"

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        check: bool = False,
        shown: str | None = None,
        stdin: str | None = None,
        reveal: bool = False,
    ) -> CommandResult:
        """Run a shell command; `shown` is how the command appears in messages (no secrets).

        Output is redacted of join tokens unless `reveal` is set, for the one caller that
        needs a token itself (and must never print it).
        """
        display = redact(shown if shown is not None else command)
        connection = self._connect()
        limit = timeout or self.settings.command_timeout
        kwargs: dict[str, Any] = {"hide": True, "warn": True, "timeout": limit, "pty": False}
        if stdin is not None:
            import io

            kwargs["in_stream"] = io.StringIO(stdin)
        else:
            kwargs["in_stream"] = False
        try:
            result = connection.run(self.as_root(command), **kwargs)
        except CommandTimedOut:
            raise NodeError(self.name, f"`{display}` did not finish within {limit:g} s") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise NodeError(
                self.name, f"lost the SSH connection during `{display}`: {exc}"
            ) from None
        except KeyboardInterrupt:
            # Ctrl-C mid-command leaves the session half-read: the cleanup that follows must
            # get a fresh connection, not this one.
            self.close()
            raise
        outcome = CommandResult(
            command=display,
            exit_code=result.exited,
            stdout=result.stdout if reveal else redact(result.stdout),
            stderr=redact(result.stderr),
        )
        if check and not outcome.ok:
            last = outcome.output.splitlines()[-1] if outcome.output else "no output"
            raise NodeError(
                self.name, f"`{display}` exited {outcome.exit_code}: {last}"
            )
        return outcome

    def open_shell(self, term: str, cols: int, rows: int) -> paramiko.Channel:
        """An interactive login shell with a terminal, on the same pinned connection.

        A person's shell, not shared code's command: it runs as the lab's ssh.user (the
        sudo check still runs at connect, but nothing here becomes root), so a student
        logged in as a sudo user types `sudo` as on the real machine.
        """
        transport = self._connect().client.get_transport()
        if transport is None or not transport.is_active():
            self.close()
            raise NodeError(self.name, "the SSH connection closed before the shell opened")
        try:
            channel = transport.open_session(timeout=self.settings.connect_timeout)
            channel.get_pty(term=term, width=cols, height=rows)
            channel.invoke_shell()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise NodeError(self.name, f"no shell: {exc}") from None
        return channel

    def stream(self, local_path: Path, command: str, timeout: int) -> None:
        """Feed a local file to a remote command's stdin over one SSH channel.

        Faster than SFTP plus a second command, and nothing is left on the node's disk.
        """
        transport = self._connect().client.get_transport()
        if transport is None:
            raise NodeError(self.name, "SSH connection closed")
        channel = transport.open_session(timeout=self.settings.connect_timeout)
        channel.settimeout(timeout)
        try:
            channel.exec_command(self.as_root(command))
            with local_path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    channel.sendall(chunk)
            channel.shutdown_write()
            errors = channel.makefile_stderr("rb").read().decode(errors="replace").strip()
            status = channel.recv_exit_status()
        except (OSError, paramiko.SSHException) as exc:
            raise NodeError(self.name, f"`{command}` < {local_path.name} failed: {exc}") from None
        finally:
            channel.close()
        if status != 0:
            last = errors.splitlines()[-1] if errors else "no output"
            raise NodeError(self.name, f"`{command}` < {local_path.name} exited {status}: {last}")

    def write_file(self, remote_path: str, content: str, mode: str = "0644") -> None:
        quoted = shlex.quote(remote_path)
        self.run(
            f"mkdir -p $(dirname {quoted}) && cat > {quoted}.swarmlab-tmp && chmod {mode}"
            f" {quoted}.swarmlab-tmp && mv {quoted}.swarmlab-tmp {quoted}",
            stdin=content,
            check=True,
            shown=f"write {remote_path}",
        )

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None


@dataclass
class Outcome:
    """One node's result of a parallel call: a value or the error that stopped it."""

    node: str
    value: Any = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def run_parallel(
    nodes: Iterable[Node],
    work: Callable[[Node], T],
    *,
    parallel: int = 8,
    deadline: float | None = None,
) -> dict[str, Outcome]:
    """Run `work` on every node at once (bounded), never letting one node hide another's result.

    A node that raises gets its error recorded; a node still busy at the deadline is reported
    as timed out instead of blocking the caller forever.
    """
    node_list = list(nodes)
    outcomes: dict[str, Outcome] = {}
    if not node_list:
        return outcomes

    def timed(node: Node) -> Outcome:
        start = time.monotonic()
        try:
            value = work(node)
        except NodeError as exc:
            return Outcome(node.name, error=str(exc), seconds=time.monotonic() - start)
        except Exception as exc:  # a bug or fault in one node's work must not hide the others
            message = f"{node.name}: {type(exc).__name__}: {redact(str(exc))}"
            return Outcome(node.name, error=message, seconds=time.monotonic() - start)
        return Outcome(node.name, value=value, seconds=time.monotonic() - start)

    pool = ThreadPoolExecutor(max_workers=min(parallel, len(node_list)))
    futures = {pool.submit(timed, node): node for node in node_list}
    done, not_done = wait(futures, timeout=deadline)
    for future in done:
        outcome = future.result()
        outcomes[outcome.node] = outcome
    for future in not_done:
        node = futures[future]
        outcomes[node.name] = Outcome(
            node.name, error=f"{node.name}: still busy after {deadline} s"
        )
        node.close()
    pool.shutdown(wait=False, cancel_futures=True)
    return {node.name: outcomes[node.name] for node in node_list}


def first_error(outcomes: dict[str, Outcome]) -> str | None:
    errors = [o.error for o in outcomes.values() if o.error]
    if not errors:
        return None
    if len(errors) == 1:
        return errors[0]
    return f"{errors[0]} (and {len(errors) - 1} more node(s) failed)"
