"""Service images on every node, with no registry: `docker save` here, `docker load` there.

All wanted images travel as one archive, cached by their image IDs (so a rebuilt image can
never be served stale), streamed straight into `docker load` over the SSH channel, and only
to nodes where some ID is missing.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from docker.errors import ImageNotFound

from ..errors import LabError
from ..remote import Node
from .result import Change


@dataclass(frozen=True)
class ImageBundle:
    ids: dict[str, str]  # image name -> ID, as on the controller
    path: Path | None  # one `docker save` archive of them all; None when nothing is wanted


def bundle(image_names: list[str], cache_dir: Path) -> ImageBundle:
    """Save the wanted images from the controller's engine, once per set of image IDs."""
    from ..providers.local import docker_client

    names = sorted(set(image_names))
    if not names:
        return ImageBundle({}, None)
    client = docker_client()
    ids: dict[str, str] = {}
    for name in names:
        try:
            ids[name] = client.images.get(name).id
        except ImageNotFound:
            raise LabError(
                f"image {name} is not on this machine; build it with `make images`"
                " (or `docker load` it) before preparing nodes"
            ) from None
    key = hashlib.sha256(repr(sorted(ids.items())).encode()).hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"images-{key}.tar"
    if not path.exists():
        for stale in cache_dir.glob("images-*.tar"):
            stale.unlink()
        partial = path.with_suffix(".part")
        # The SDK saves one image per archive; the CLI saves several sharing their layers.
        saved = subprocess.run(["docker", "save", "-o", str(partial), *names],
                               capture_output=True, text=True)
        if saved.returncode != 0:
            raise LabError(f"`docker save {' '.join(names)}` failed: {saved.stderr.strip()}")
        partial.rename(path)
    return ImageBundle(ids, path)


def converge(node: Node, wanted: ImageBundle) -> Change:
    if not wanted.ids or wanted.path is None:
        return Change("images", "ok", "none wanted")
    names = " ".join(shlex.quote(name) for name in wanted.ids)
    present = node.run(
        f"for i in {names}; do docker image inspect --format '{{{{.Id}}}}' \"$i\" 2>/dev/null"
        " || echo missing; done",
        timeout=60,
    ).stdout.split()
    missing = [name for name, image_id in zip(wanted.ids, present, strict=False)
               if image_id != wanted.ids[name]]
    if len(present) != len(wanted.ids):
        missing = list(wanted.ids)
    if not missing:
        return Change("images", "ok", f"{len(wanted.ids)} present")
    node.stream(wanted.path, "docker load -q", timeout=300)
    return Change("images", "changed", "loaded " + ", ".join(missing))
