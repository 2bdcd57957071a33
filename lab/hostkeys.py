"""The lab's SSH identity and the nodes' pinned host keys.

Each lab has its own key pair (never the user's ~/.ssh) and its own known_hosts file.
A node's host key is pinned when the provider makes the machine: providers that can put a
key in place (local containers) generate it here; providers that cannot (VMs) record the key
the machine shows on its first contact right after creation, and every later connection must
match it.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import paramiko

from .atomic import write_atomic
from .errors import LabError
from .waits import wait_until

KEY_NAME = "id_ed25519"
KNOWN_HOSTS = "known_hosts"


def ensure_keypair(path: Path, comment: str) -> Path:
    """Make an ed25519 key pair at `path` (private) and `path.pub` unless present."""
    if path.exists() and path.with_suffix(".pub").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    for stale in (path, path.with_suffix(".pub")):
        stale.unlink(missing_ok=True)
    try:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        raise LabError("ssh-keygen is missing; install openssh-client") from None
    except subprocess.CalledProcessError as exc:
        raise LabError(f"ssh-keygen failed for {path}: {exc.stderr.strip()}") from None
    return path


def lab_key(lab_dir: Path, lab: str) -> Path:
    return ensure_keypair(lab_dir / KEY_NAME, f"swarmlab-{lab}")


def public_key(private_key: Path) -> str:
    return private_key.with_suffix(".pub").read_text().strip()


def known_hosts_path(lab_dir: Path) -> Path:
    path = lab_dir / KNOWN_HOSTS
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
    return path


def host_entry(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def pinned(lab_dir: Path, host: str, port: int) -> str | None:
    """The key pinned for host:port, as "type base64", or None."""
    entry = host_entry(host, port)
    for line in known_hosts_path(lab_dir).read_text().splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == entry:
            return f"{words[1]} {words[2]}"
    return None


def pin(lab_dir: Path, host: str, port: int, public_key_line: str) -> None:
    """Record `public_key_line` ("ssh-ed25519 AAAA...") as the only key of host:port."""
    path = known_hosts_path(lab_dir)
    entry = host_entry(host, port)
    kept = [
        line for line in path.read_text().splitlines()
        if line.strip() and line.split()[0] != entry
    ]
    key_type, key_data = public_key_line.split()[:2]
    kept.append(f"{entry} {key_type} {key_data}")
    write_atomic(path, "\n".join(kept) + "\n")


def unpin(lab_dir: Path, host: str, port: int) -> None:
    path = known_hosts_path(lab_dir)
    entry = host_entry(host, port)
    kept = [line for line in path.read_text().splitlines() if line.split()[:1] != [entry]]
    write_atomic(path, "\n".join(kept) + ("\n" if kept else ""))


def scan(host: str, port: int, timeout: float) -> str:
    """The host key a server shows, as "type base64" (for trust on first use after creation)."""

    last_error = ["no answer"]

    def host_key() -> str:
        try:
            with socket.create_connection((host, port), timeout=5) as sock:
                transport = paramiko.Transport(sock)
                try:
                    transport.get_security_options().key_types = ["ssh-ed25519"]
                    transport.start_client(timeout=10)
                    key = transport.get_remote_server_key()
                    return f"{key.get_name()} {key.get_base64()}"
                finally:
                    transport.close()
        except (OSError, paramiko.SSHException, EOFError) as exc:
            last_error[0] = str(exc) or type(exc).__name__
            raise

    # Refused, reset or a half-started sshd: not there yet. The message is the one providers
    # wrap ("VM X has its address but no SSH host key from ..."), with what was seen last.
    return wait_until(host_key, timeout=timeout, interval=1,
                      what=f"an SSH host key from {host}:{port}",
                      retry_on=(OSError, paramiko.SSHException, EOFError),
                      error=lambda _: LabError(f"no SSH host key from {host}:{port} within"
                                               f" {timeout:.0f} s ({last_error[0]})"))


def make_host_key(directory: Path, node: str) -> tuple[Path, str]:
    """A fresh ed25519 host key for a node the provider can put files into."""
    path = directory / f"{node}.hostkey"
    public = Path(f"{path}.pub")
    path.unlink(missing_ok=True)
    public.unlink(missing_ok=True)
    made = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node, "-f", str(path)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        raise LabError(f"ssh-keygen failed for {node}'s host key: {made.stderr.strip()}")
    key_line = public.read_text().strip()
    public.unlink()
    return path, key_line
