"""A small client for Incus's REST API on its unix socket: what the incus provider needs.

Why not the `incus` CLI: its JSON output is a view for people and each call is a process;
the API is versioned (/1.0), every answer has one shape (type, status, metadata, error),
and long work comes back as an operation to wait on. Why not pylxd: it is LXD's client,
and Incus is a fork that renames its headers (X-Incus-*) and its socket; following a fork's
drift through another project's client is a dependency for fifty lines of http.client.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import LabError
from ..waits import wait_until

# Debian's incus package and upstream agree on this path; INCUS_SOCKET overrides it, as
# for the incus CLI.
DEFAULT_SOCKET = "/var/lib/incus/unix.socket"
OPERATION_TIMEOUT = 600


class IncusError(LabError):
    """Incus refused or failed a request; `status` is its HTTP status (404: not found)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("incus", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS to a remote Incus: the client certificate it trusts, and its own certificate
    pinned (Incus servers sign their own; the pinned file is their identity, not a name)."""

    def __init__(self, url: str, timeout: float, tls: Remote):
        parsed = urllib.parse.urlsplit(url)
        context = ssl.create_default_context(cafile=tls.server_cert)
        if tls.server_cert:
            context.check_hostname = False
        context.load_cert_chain(tls.client_cert, tls.client_key)
        super().__init__(parsed.hostname or "", parsed.port or 8443, timeout=timeout,
                         context=context)


@dataclass(frozen=True)
class Remote:
    """A remote Incus server or cluster: its URL and the TLS files that identify both ends."""

    url: str
    client_cert: str
    client_key: str
    server_cert: str | None = None  # None: the system's CAs vouch for the server's name


def socket_path() -> str:
    if os.environ.get("INCUS_SOCKET"):
        return os.environ["INCUS_SOCKET"]
    if os.environ.get("INCUS_DIR"):
        return str(Path(os.environ["INCUS_DIR"]) / "unix.socket")
    return DEFAULT_SOCKET


class Incus:
    """One Incus server; `project` is added to every request that names one."""

    def __init__(self, path: str | None = None, timeout: float = 120,
                 remote: Remote | None = None):
        self.remote = remote
        self.path = remote.url if remote else path or socket_path()
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.remote:
            return _TLSConnection(self.remote.url, self.timeout, self.remote)
        return _UnixConnection(self.path, self.timeout)

    def ping(self) -> dict[str, Any]:
        """The server's /1.0; a LabError that says how to start Incus when nothing answers."""
        try:
            server = self.get("/1.0")
        except ssl.SSLError as exc:
            raise LabError(
                f"TLS with the Incus server at {self.path} failed ({exc.reason or exc});"
                " check incus.server_cert, incus.client_cert and incus.client_key"
            ) from None
        except OSError as exc:
            if self.remote:
                raise LabError(
                    f"no Incus server answers at {self.path} ({exc.strerror or exc});"
                    " check incus.remote and that the server listens there"
                    " (core.https_address)"
                ) from None
            raise LabError(
                f"no Incus daemon answers on {self.path} ({exc.strerror or exc});"
                " run `make incus` to install and start it"
            ) from None
        if self.remote and server.get("auth") != "trusted":
            raise LabError(
                f"the Incus server at {self.path} does not trust {self.remote.client_cert};"
                f" on the server: `incus config trust add-certificate CERT` with that file"
            )
        return server

    # --- requests ------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        project: str | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Any:
        """Send one request; an async answer is waited for. Returns the answer's metadata."""
        params = dict(query or {})
        if project:
            params["project"] = project
        url = path + ("?" + urllib.parse.urlencode(params) if params else "")
        sent_headers = dict(headers or {})
        payload: bytes | BinaryIO | None
        if body is None or isinstance(body, bytes) or hasattr(body, "read"):
            payload = body
        else:
            payload = json.dumps(body).encode()
            sent_headers["Content-Type"] = "application/json"
        connection = self._connection()
        try:
            connection.request(method, url, body=payload, headers=sent_headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            answer = json.loads(raw)
        except ValueError:
            # File reads answer with the file itself, not a JSON envelope.
            if response.status < 400:
                return raw
            raise IncusError(f"{method} {path}: HTTP {response.status}", response.status) from None
        if answer.get("type") == "error":
            raise IncusError(
                f"{method} {path}: {answer.get('error') or answer.get('status')}",
                answer.get("error_code") or response.status,
            )
        if answer.get("type") == "async" and wait:
            return self.wait(answer["operation"])
        return answer.get("metadata")

    def wait(self, operation: str) -> Any:
        """Wait for an operation (its ID or `/1.0/operations/ID`); its metadata, or its error
        raised. Requests sent with wait=False return the operation, whose "id" goes here."""
        if not operation.startswith("/"):
            operation = f"/1.0/operations/{operation}"
        op = self.request(
            "GET", f"{operation}/wait", query={"timeout": str(OPERATION_TIMEOUT)}
        )
        if op.get("status") != "Success":
            raise IncusError(f"{op.get('description', operation)}: {op.get('err') or op}")
        return op

    def wait_all(self, operations: list[str]) -> list[IncusError | None]:
        """Wait for operations side by side; each one's error or None, in order.

        Incus forgets a finished operation a few seconds after it ends, so one waited for
        only once another is done may be gone: restoring the snapshots of ten labs' nodes
        one wait after another, a restore that finished meanwhile answered "Operation not
        found". Waiting for all at once, every wait is under way while its operation lives."""

        def one(operation: str) -> IncusError | None:
            try:
                self.wait(operation)
            except IncusError as exc:
                return exc
            return None

        if not operations:
            return []
        with ThreadPoolExecutor(max_workers=len(operations)) as pool:
            return list(pool.map(one, operations))

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("PUT", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def find(self, path: str, **kwargs: Any) -> Any | None:
        """GET, with None for 'not found' instead of an error."""
        try:
            return self.get(path, **kwargs)
        except IncusError as exc:
            if exc.status == 404:
                return None
            raise

    # --- helpers ---------------------------------------------------------------------------
    def push_file(
        self, instance: str, path: str, content: bytes, mode: int, *, project: str
    ) -> None:
        """Write a file into an instance (running or not), owned by root inside it."""
        self.post(
            f"/1.0/instances/{instance}/files",
            content,
            project=project,
            query={"path": path},
            headers={
                "Content-Type": "application/octet-stream",
                "X-Incus-uid": "0",
                "X-Incus-gid": "0",
                "X-Incus-mode": f"{mode:04o}",
                "X-Incus-type": "file",
                "X-Incus-write": "overwrite",
            },
        )

    def make_directory(self, instance: str, path: str, mode: int, *, project: str) -> None:
        self.post(
            f"/1.0/instances/{instance}/files",
            b"",
            project=project,
            query={"path": path},
            headers={
                "X-Incus-uid": "0",
                "X-Incus-gid": "0",
                "X-Incus-mode": f"{mode:04o}",
                "X-Incus-type": "directory",
            },
        )

    def create_network(self, body: dict[str, Any], target: str | None = None) -> None:
        """Make a network. Incus lists every link on the host while it sets a new bridge up,
        and a veth that Docker removes meanwhile fails the whole request ("Failed to run:
        ip -d -j link show vethX ... does not exist"): seen here twice in a few runs beside
        busy local labs. Such a request made nothing, so it is sent again. In a cluster a
        bridge is first made pending on each member (`target`), then made with its config."""
        query = {"target": target} if target else None
        self._despite_vanishing_links(lambda: self.post("/1.0/networks", body, query=query),
                                      f"Incus to make network {body['name']}")

    def members(self) -> list[str] | None:
        """The cluster's member names, or None where the server is not clustered."""
        if not self.get("/1.0/cluster").get("enabled"):
            return None
        return [m["server_name"] for m in self.get("/1.0/cluster/members",
                                                    query={"recursion": "1"})]

    def delete_network(self, name: str) -> None:
        """Remove a network. Deleting a bridge, Incus lists its children and trips over a veth
        gone meanwhile the same way (seen with the three labs of a class going down side by
        side: two of three deletes failed); the bridge is still there, so it is asked again."""
        self._despite_vanishing_links(lambda: self.delete(f"/1.0/networks/{name}"),
                                      f"Incus to remove network {name}")

    def _despite_vanishing_links(self, request: Callable[[], Any], what: str) -> None:
        def attempt() -> bool:
            try:
                request()
            except IncusError as exc:
                if "link show" in str(exc) and "does not exist" in str(exc):
                    raise _VanishedLink(str(exc)) from None
                raise
            return True

        wait_until(attempt, timeout=30, interval=0.5, retry_on=(_VanishedLink,), what=what)

    def import_image(self, tarball: Path, alias: str, description: str) -> str:
        """Import a unified image tarball into the default project; returns its fingerprint."""
        with open(tarball, "rb") as data:
            op = self.post(
                "/1.0/images",
                data,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(tarball.stat().st_size),
                },
            )
        fingerprint = op["metadata"]["fingerprint"]
        self.post("/1.0/images/aliases", {
            "name": alias, "target": fingerprint, "description": description,
        })
        return fingerprint


class _VanishedLink(Exception):
    """Incus tripped over a host link that vanished while it made a bridge: try again."""
