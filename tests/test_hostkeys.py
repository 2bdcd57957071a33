"""hostkeys.scan against a real SSH server on the loopback (paramiko's server side): the key
it shows, a server that comes up late, and a port that never answers. No node needed."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import paramiko
import pytest

from lab import hostkeys
from lab.errors import LabError

pytestmark = pytest.mark.unit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_one_handshake(port: int, key_file: Path, after: float) -> threading.Thread:
    """After `after` s, listen on `port` and show the host key to whoever connects, once."""

    def run() -> None:
        time.sleep(after)
        with socket.create_server(("127.0.0.1", port)) as server:
            conn, _ = server.accept()
            transport = paramiko.Transport(conn)
            transport.add_server_key(paramiko.Ed25519Key.from_private_key_file(str(key_file)))
            try:
                transport.start_server(server=paramiko.ServerInterface())
            except (paramiko.SSHException, EOFError):
                pass  # the scanner hangs up once it has the key
            finally:
                transport.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_scan_returns_the_key_of_a_server_that_comes_up_late(tmp_path: Path) -> None:
    key_file, public = hostkeys.make_host_key(tmp_path, "t-h11-scan")
    port = free_port()
    server = serve_one_handshake(port, key_file, after=1.5)
    assert hostkeys.scan("127.0.0.1", port, timeout=30) == " ".join(public.split()[:2])
    server.join(10)


def test_scan_of_a_silent_port_says_what_it_saw_last(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(LabError) as caught:
        hostkeys.scan("127.0.0.1", port, timeout=2)
    assert time.monotonic() - started < 10
    # Providers put this after "VM X has its address but ".
    assert str(caught.value) == (
        f"no SSH host key from 127.0.0.1:{port} within 2 s ([Errno 111] Connection refused)")
