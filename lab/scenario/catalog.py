"""Finding scenarios: by name in the project's scenarios/ folder, or by a path to a file."""

from __future__ import annotations

from pathlib import Path

from .errors import ScenarioError

FOLDER = "scenarios"
SUFFIXES = (".yaml", ".yml")


def files(root: Path) -> list[Path]:
    folder = root / FOLDER
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES) if folder.is_dir() else []


def find(root: Path, name: str) -> Path:
    """A name (`whoami-dns`) from scenarios/, or a path to a file of one's own."""
    if name.endswith(SUFFIXES) or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise ScenarioError(f"no scenario file {name}")
        return path
    for suffix in SUFFIXES:
        path = root / FOLDER / f"{name}{suffix}"
        if path.is_file():
            return path
    known = ", ".join(p.stem for p in files(root)) or "none"
    raise ScenarioError(
        f"unknown scenario {name!r}; known: {known} (`invoke scenario.list`),"
        " or give a path to a .yaml file"
    )
