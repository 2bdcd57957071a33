"""Starting the server: the address, TLS, the links, then uvicorn until Ctrl-C.

What a user can get wrong (an address, a port in use, a certificate that does not load) is
found before uvicorn starts and said in one line. uvicorn's access log is off: every URL of
these pages carries a secret.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

from .. import fields
from ..atomic import write_atomic
from ..classroom.links import SERVED, Links
from ..errors import LabError, SpecError
from .app import IDLE, MAX_MESSAGE, STATIC, make_app
from .room import Room

DEFAULT_LISTEN = "127.0.0.1:8080"
# A shorter bound would close a terminal while its student reads; a longer one holds an SSH
# session and a thread per forgotten tab past a class day.
IDLE_LEAST, IDLE_MOST = 10, 24 * 60 * 60


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
        if not sep or not 1 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise SpecError(f"--listen {listen!r} is not ADDRESS:PORT such as 127.0.0.1:8080"
                        " (0.0.0.0:8080 for every address of this machine)") from None
    return host, number


def idle_bound(value: int | str) -> int:
    """--idle-seconds as a whole number; from the command line it comes as text."""
    number: int | str = value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value.strip()):
        number = int(value)
    return fields.whole("--idle-seconds", number, IDLE_LEAST, IDLE_MOST)


def check_tls(cert: str, key: str) -> bool:
    if not cert and not key:
        return False
    if not cert or not key:
        raise SpecError("give both --tls-cert and --tls-key (PEM files), or neither")
    for what, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise SpecError(f"{what} {path}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise SpecError(f"--tls-cert {cert} with --tls-key {key} does not load ({exc});"
                        " give a PEM certificate and its own private key") from None
    return True


def check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise LabError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; give"
                           " another --listen ADDRESS:PORT") from None


def base_url(host: str, port: int, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def student_url(base: str, student: str, links: Links) -> str:
    return f"{base}/s/{student}/{links.students[student]}/"


def instructor_url(base: str, links: Links) -> str:
    return f"{base}/i/{links.instructor}/"


def serve(room: Room, *, listen: str = DEFAULT_LISTEN, tls_cert: str = "", tls_key: str = "",
          new_secrets: bool = False, say: Callable[[str], None] = print,
          period: float | None = None, idle_seconds: int | str = IDLE) -> None:
    import uvicorn

    host, port = parse_listen(listen)
    idle = idle_bound(idle_seconds)
    if not (STATIC / "vendor" / "xterm.js").is_file():
        raise LabError(f"xterm.js is missing from {STATIC / 'vendor'}: run `make web` once"
                       " (it copies it from the npm registry's package; pages never fetch it)")
    tls = check_tls(tls_cert, tls_key)
    check_port(host, port)
    links = Links.load(room.folder, [seat.id for seat in room.seats], renew=new_secrets)
    base = base_url(host, port, tls)
    write_atomic(room.folder / SERVED, json.dumps({"base": base}) + "\n")
    if new_secrets:
        say("new secrets: every earlier link is dead; print the cards again (class.cards)")
    say(f"serving {room.title} ({len(room.seats)} student(s)) on {base}")
    if host in ("0.0.0.0", "::"):
        say("  (every address of this machine: give students this machine's address instead)")
    say(f"instructor: {instructor_url(base, links)}")
    if len(room.seats) == 1:
        say(f"student: {student_url(base, room.seats[0].id, links)}")
    else:
        say("students: their links are on their cards (class.cards), and in"
            f" {links.path} (keep it to yourself)")
    say("Ctrl-C stops")
    config = uvicorn.Config(
        make_app(room, links, period, say, idle), host=host, port=port, access_log=False,
        log_level="warning", ws_max_size=4 * MAX_MESSAGE, lifespan="on",
        ssl_certfile=tls_cert or None, ssl_keyfile=tls_key or None)
    uvicorn.Server(config).run()
