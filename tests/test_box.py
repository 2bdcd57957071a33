"""The libvirt box's recipe: what makes a new build, and the files the build boots with."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab import box

pytestmark = pytest.mark.unit


def test_the_recipe_digest_follows_every_file_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tmp_path / "box"
    shutil.copytree(box.BOX_RECIPE_DIR, recipe)
    monkeypatch.setattr(box, "BOX_RECIPE_DIR", recipe)
    first = box.recipe_digest()
    assert box.recipe_digest() == first and len(first) == 16
    (recipe / "customize").write_text((recipe / "customize").read_text() + "# changed\n")
    changed = box.recipe_digest()
    assert changed != first
    monkeypatch.setattr(box, "PACKAGES", (*box.PACKAGES, "htop"))
    assert box.recipe_digest() not in (first, changed)


def test_a_build_without_its_tools_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(box.LabError, match=r"box: mmdebstrap is missing; run `sudo scripts/host"):
        box.build("0" * 16, log=lambda line: None)


@pytest.mark.parametrize("script", ["customize", "finish"])
def test_the_box_scripts_are_valid_posix_shell(script: str) -> None:
    path = box.BOX_RECIPE_DIR / script
    assert path.stat().st_mode & 0o111, f"{path} must be executable"
    checked = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
