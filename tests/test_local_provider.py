"""The local provider's own checks, fast: what it refuses before it makes anything.

Through the real CLI and a real Docker engine; no node is started.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import containers, write_lab

pytestmark = pytest.mark.local


def test_a_non_root_ssh_user_is_refused_before_any_node_is_made(
    engine: None, tmp_path: Path
) -> None:
    # The lab key goes to root only: as `student` every SSH login would fail after the
    # nodes were made (prepare: authentication failed), so lab.up stops before that.
    lab = write_lab(tmp_path, "t-h11-user", 242, ssh={"user": "student"})
    try:
        up = lab.invoke("lab.up", timeout=300)
        assert up.code != 0, up.output
        assert up.stderr.strip().splitlines() == [
            "error: "
            "lab file: ssh.user student cannot log in to new nodes of provider local (the lab"
            " key is installed for root only); make the lab with ssh.user: root, then add the"
            " user on its nodes, or use provider vagrant or vmware"], up.output
        assert "Traceback" not in up.output
        assert containers("swarmlab.lab=t-h11-user") == []
    finally:
        lab.invoke("lab.down", timeout=300)
