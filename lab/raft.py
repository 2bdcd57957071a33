"""How far a manager's Raft log goes: the term and index of its last entry, read from its disk.

When no manager of a swarm has a leader, `--force-new-cluster` must run on the manager whose
log is the most complete, or what the others committed last is lost. Docker does not tell:
`docker info` on a leaderless manager has no Raft figures, and the file times lie (a
leaderless manager keeps writing its log while it campaigns: seen every ~14 s here). The log
itself does: swarmkit encrypts each entry's data but leaves the etcd WAL framing, and each
entry's term and index, in the clear. Raft's own rule then decides (§5.4.1): the later last
term wins, then the higher last index.
"""

from __future__ import annotations

import base64
import gzip
import re
import struct

from .remote import Node

RAFT_DIR = "/var/lib/docker/swarm/raft"
# The newest WAL segment (segments are preallocated to 64 MB of mostly zeros: gzip makes that
# about 64 kB) and every snapshot's name, which is its term and index.
READ = (
    f"cd {RAFT_DIR} 2>/dev/null || exit 0; ls snap-v3-encrypted 2>/dev/null | sed 's/^/snap /';"
    " last=$(ls wal-v3-encrypted/*.wal 2>/dev/null | sort | tail -n 1);"
    ' [ -n "$last" ] && echo "wal $(gzip -9 -c "$last" | base64 -w0)"; true'
)
SNAP_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")
ENTRY_RECORD = 2  # etcd walpb.Record types: 1 metadata, 2 entry, 3 state, 4 crc, 5 snapshot


def last_entry(node: Node) -> tuple[int, int]:
    """(term, index) of the last entry in the node's Raft log; (0, 0) if it has none."""
    output = node.run(READ, timeout=120, check=True, shown="read the Raft log's last entry").stdout
    newest = (0, 0)
    for line in output.splitlines():
        kind, _, value = line.partition(" ")
        if kind == "snap" and (match := SNAP_NAME.match(value)):
            newest = max(newest, (int(match[1], 16), int(match[2], 16)))
        elif kind == "wal" and value:
            newest = max(newest, wal_last_entry(gzip.decompress(base64.b64decode(value))))
    return newest


def wal_last_entry(wal: bytes) -> tuple[int, int]:
    """(term, index) of the last entry record of one etcd WAL segment."""
    last = (0, 0)
    offset = 0
    while offset + 8 <= len(wal):
        (frame,) = struct.unpack_from("<Q", wal, offset)
        if frame == 0:  # the zeros after the last record
            break
        size = frame & 0x00FF_FFFF_FFFF_FFFF
        padding = (frame >> 56) & 0x7 if frame >> 63 else 0
        record = _fields(wal[offset + 8: offset + 8 + size])
        offset += 8 + size + padding
        if record.get(1) == ENTRY_RECORD:
            entry = _fields(record.get(3, b""))  # raftpb.Entry: 2 term, 3 index, 4 data
            last = (int(entry.get(2, 0)), int(entry.get(3, 0)))
    return last


def _fields(data: bytes) -> dict[int, int | bytes]:
    """The top-level fields of a protobuf message (the last one of each number wins)."""
    found: dict[int, int | bytes] = {}
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, kind = key >> 3, key & 7
        if kind == 0:
            found[number], i = _varint(data, i)
        elif kind == 2:
            size, i = _varint(data, i)
            found[number] = data[i: i + size]
            i += size
        elif kind in (1, 5):
            width = 8 if kind == 1 else 4
            found[number] = int.from_bytes(data[i: i + width], "little")
            i += width
        else:
            raise ValueError(f"protobuf wire type {kind} is not expected in a Raft WAL")
    return found


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i
