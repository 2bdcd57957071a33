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
    trixie = box.Box("trixie")
    first = box.recipe_digest(trixie)
    assert box.recipe_digest(trixie) == first and len(first) == 16
    (recipe / "customize").write_text((recipe / "customize").read_text() + "# changed\n")
    changed = box.recipe_digest(trixie)
    assert changed != first
    monkeypatch.setattr(box, "PACKAGES", (*box.PACKAGES, "htop"))
    assert box.recipe_digest(trixie) not in (first, changed)


def test_each_release_and_flavour_is_a_box_of_its_own() -> None:
    made = [box.Box(release, seed) for release in ("bookworm", "trixie") for seed in (False, True)]
    assert [b.name for b in made] == ["swarmlab/bookworm", "swarmlab/bookworm-seed",
                                      "swarmlab/trixie", "swarmlab/trixie-seed"]
    assert len({box.recipe_digest(b) for b in made}) == 4
    assert len({box.build_dir(b) for b in made}) == 4
    seed = box.Box("trixie", seed=True)
    assert {"firewalld", "selinux-policy-default", "docker-cli"} <= set(seed.packages)
    assert "firewalld" not in box.Box("trixie").packages
    assert "docker-cli" not in box.Box("bookworm").packages  # bookworm's comes with docker.io
    assert box.pool_volume_name(seed, "1.0") == (
        "swarmlab-VAGRANTSLASH-trixie-seed_vagrant_box_image_1.0_box.img")


def test_a_build_without_its_tools_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(box.LabError, match=r"box: mmdebstrap is missing; run `sudo scripts/host"):
        box.build(box.Box("trixie"), "0" * 16, log=lambda line: None)


@pytest.mark.parametrize("script", ["customize", "finish"])
def test_the_box_scripts_are_valid_posix_shell(script: str) -> None:
    path = box.BOX_RECIPE_DIR / script
    assert path.stat().st_mode & 0o111, f"{path} must be executable"
    checked = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
