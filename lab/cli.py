"""The root task namespace (`invoke --list`), and a `swarmlab` program with the lab's config."""

from __future__ import annotations

from invoke import Collection, Program

from . import __version__
from .config import LabConfig
from .tasks import lab_tasks, swarm_tasks

namespace = Collection()
namespace.add_collection(lab_tasks.namespace)
namespace.add_collection(swarm_tasks.namespace)

program = Program(namespace=namespace, config_class=LabConfig, name="swarmlab",
                  binary="swarmlab", version=__version__)
