"""Service images on every node, with no registry: `docker save` here, `docker load` there.

Archives are cached by image ID (so a rebuilt image can never be served stale) and copied
only to nodes where that ID is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from docker.errors import ImageNotFound

from ..errors import LabError
from ..remote import Node
from .result import Change


@dataclass(frozen=True)
class ImageArchive:
    name: str
    image_id: str
    path: Path


def archives(image_names: list[str], cache_dir: Path) -> list[ImageArchive]:
    """Save each image from the controller's engine once per image ID."""
    from ..providers.local import docker_client

    client = docker_client()
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = []
    for name in image_names:
        try:
            image = client.images.get(name)
        except ImageNotFound:
            raise LabError(
                f"image {name} is not on this machine; build it with `make images`"
                " (or `docker load` it) before preparing nodes"
            ) from None
        digest = image.id.split(":", 1)[1][:16]
        path = cache_dir / f"{name.replace('/', '_').replace(':', '_')}-{digest}.tar"
        if not path.exists():
            for stale in cache_dir.glob(f"{name.replace('/', '_').replace(':', '_')}-*.tar"):
                stale.unlink()
            partial = path.with_suffix(".part")
            with partial.open("wb") as handle:
                for chunk in image.save(named=True):
                    handle.write(chunk)
            partial.rename(path)
        found.append(ImageArchive(name, image.id, path))
    return found


def converge(node: Node, wanted: list[ImageArchive]) -> Change:
    loaded = []
    for archive in wanted:
        current = node.run(
            f"docker image inspect --format '{{{{.Id}}}}' {archive.name} 2>/dev/null", timeout=60
        ).stdout.strip()
        if current == archive.image_id:
            continue
        remote = f"/tmp/swarmlab-{archive.path.name}"
        node.put(str(archive.path), remote)
        node.run(f"docker load -q -i {remote}; status=$?; rm -f {remote}; exit $status",
                 timeout=300, check=True, shown=f"docker load {archive.name}")
        loaded.append(archive.name)
    if loaded:
        return Change("images", "changed", "loaded " + ", ".join(loaded))
    return Change("images", "ok", f"{len(wanted)} present")
