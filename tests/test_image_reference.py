"""The lab file's image grammar is the engine's: what lab/fields.py takes, dockerd takes.

The oracle is the engine that saves the images here (prepare/images.py runs `docker save`):
`docker save` parses each reference strictly before it looks for the image, and writes
nothing when it fails. Never pulled, never tagged: nothing on the engine changes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.errors import SpecError
from lab.fields import image
from tests.conftest import docker_ok

pytestmark = pytest.mark.local

DIGEST = "sha256:" + "0123456789abcdef" * 4
REFERENCES = [
    "busybox", "swarmlab/busybox:latest", "a", "a.b", "a:1", "a_b", "a__b", "a--b", "a-b-c/d",
    "localhost/x", "localhost:5000/team/x:1.2", "registry.example.org:5000/team/busybox:1.36",
    "UPPER.example.org/x", "a.b/x", f"busybox@{DIGEST}", f"busybox:1@{DIGEST}", "a:_x",
    "a:T_t.1-", "x" * 237, "a/" + "x" * 244, "r.example.org/" + "x" * 241,
    # refused
    "BusyBox", "UPPER/x", "Localhost/x", "x/Y", "busybox:", ":latest", "a._b", "a..b", "a.-b",
    "a___b", "a/-b", "a//b", "a/b/", "a:b:c", "x:-y", "busybox@sha256:abc", "[::1]:5000/x",
    "busy box", "busybox;reboot", "$(reboot)", "x" * 238, "a/" + "x" * 245,
    "r.example.org/" + "x" * 242,
]


def engine_takes(reference: str, tmp: Path) -> bool:
    done = subprocess.run(["docker", "save", "-o", str(tmp / "never.tar"), "--", reference],
                          capture_output=True, text=True, timeout=60)
    (tmp / "never.tar").unlink(missing_ok=True)
    # Both are the parser's words; any other answer ("No such image") means it parsed.
    return not any(words in done.stderr for words in
                   ("invalid reference format", "repository name must"))


def fields_take(reference: str) -> bool:
    try:
        image("lab file: images.busybox", reference)
    except SpecError:
        return False
    return True


def test_fields_and_the_engine_agree_on_every_reference(tmp_path: Path) -> None:
    if not docker_ok():
        pytest.skip("no Docker engine answers here: the engine is the oracle of this test")
    disagree = [(ref, fields_take(ref)) for ref in REFERENCES
                if fields_take(ref) != engine_takes(ref, tmp_path)]
    assert not disagree, f"(reference, lab/fields.py takes it) where dockerd differs: {disagree}"
