"""A browser terminal bridged to an interactive shell on one node, over SSH on the server.

The connection is lab.remote's (the lab's key, the pinned host key, sudo checked), so the
private key never leaves the server and no second copy of that knowledge exists. paramiko
is blocking: the shell's output is read by a thread of its own per terminal and handed to
the event loop through a bounded queue, which also holds the shell back when a browser
reads slowly.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import threading
from collections.abc import Callable

import paramiko

from ..context import Lab
from ..errors import LabError
from ..spec import LabSpec

TERM = "xterm-256color"
QUEUE = 256  # output chunks held for a slow browser before the shell is held back
CHUNK = 32 * 1024


def _quiet(line: str) -> None:
    """Opening a terminal logs nothing to the server's console."""


class Shell:
    """One interactive shell on one node; `on_output(None)` says it ended."""

    def __init__(self, spec: LabSpec, node: str, cols: int, rows: int):
        self.spec = spec
        self.node_name = node
        self.cols, self.rows = cols, rows
        self._lab: Lab | None = None
        self._channel: paramiko.Channel | None = None
        self._closed = threading.Event()

    def open(self) -> None:
        """Connect and start the shell (blocking); LabError says why not in one line."""
        self._lab = Lab(self.spec, log=_quiet)
        node = self._lab.node(self.node_name)
        # The provider knows a stopped machine at once; SSH would wait for its timeout.
        machine = next((m for m in self._lab.provider.status() if m.name == self.node_name),
                       None)
        if machine is None or not machine.running:
            raise LabError(f"{self.node_name} is {machine.power if machine else 'absent'}")
        # A connection of its own per terminal (this Lab's own Node): closing it can never
        # cut another's session.
        self._channel = node.open_shell(TERM, self.cols, self.rows)

    def pump(self, on_output: Callable[[str | None], None]) -> None:
        """Read the shell until it ends (blocking: run in a thread of its own)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        channel = self._channel
        try:
            while channel is not None and not self._closed.is_set():
                data = channel.recv(CHUNK)
                if not data:
                    break
                text = decoder.decode(data)
                if text:
                    on_output(text)
        except (OSError, paramiko.SSHException, EOFError):
            pass
        finally:
            on_output(None)

    def write(self, text: str) -> None:
        if self._channel is not None:
            self._channel.sendall(text.encode())

    def resize(self, cols: int, rows: int) -> None:
        if self._channel is not None:
            with contextlib.suppress(OSError, paramiko.SSHException):
                self._channel.resize_pty(width=cols, height=rows)

    def close(self) -> None:
        self._closed.set()
        if self._channel is not None:
            with contextlib.suppress(Exception):
                self._channel.close()
        if self._lab is not None:
            with contextlib.suppress(Exception):
                self._lab.close()


async def start_pump(shell: Shell, queue: asyncio.Queue[str | None]) -> threading.Thread:
    """The shell's output into `queue`, from a daemon thread (one per terminal, not the pool:
    a pool of a few threads would be held by idle shells)."""
    loop = asyncio.get_running_loop()

    def hand_over(text: str | None) -> None:
        future = asyncio.run_coroutine_threadsafe(queue.put(text), loop)
        with contextlib.suppress(Exception):
            future.result(timeout=60)

    thread = threading.Thread(target=shell.pump, args=(hand_over,), daemon=True,
                              name=f"shell-{shell.node_name}")
    thread.start()
    return thread
