"""The root task namespace (`invoke --list`), and a `swarmlab` program with the lab's config."""

from __future__ import annotations

import os
import sys
from types import TracebackType

from invoke import Collection, Program

from . import __version__
from .config import LabConfig
from .tasks import class_tasks, failure_tasks, lab_tasks, scenario_tasks, swarm_tasks, web_tasks
from .tasks.common import BUG_EXIT, debugging, unexpected

namespace = Collection()
namespace.add_collection(lab_tasks.namespace)
namespace.add_collection(swarm_tasks.namespace)
namespace.add_collection(scenario_tasks.namespace)
namespace.add_collection(failure_tasks.namespace)
namespace.add_collection(class_tasks.namespace)
# The class in a browser: its tasks live apart from the collections they join.
class_tasks.namespace.add_task(web_tasks.class_serve, name="serve")
lab_tasks.namespace.add_task(web_tasks.lab_serve, name="serve")

program = Program(namespace=namespace, config_class=LabConfig, name="swarmlab",
                  binary="swarmlab", version=__version__)


def _lab_file_errors(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    """invoke reads the `-f` file itself, before any task runs: a YAML mistake or a file that
    is not a mapping would end in a traceback from invoke. Say it in one line instead, and exit
    2 like other lab file errors.
    """
    if kind.__module__.split(".")[0] in ("yaml", "invoke") and kind.__name__.endswith("Error") \
            and hasattr(error, "problem_mark"):
        mark = error.problem_mark  # type: ignore[attr-defined]
        where = f"{mark.name} line {mark.line + 1}" if mark else "the lab file"
        problem = getattr(error, "problem", None) or "not valid YAML"
        sys.stderr.write(f"error: lab file {where}: {problem}; fix the YAML\n")
        sys.stderr.flush()
        os._exit(2)
    frame = tb
    while frame is not None:
        code = frame.tb_frame.f_code
        if code.co_name in ("_merge_file", "_load_file") and code.co_filename.endswith(
            os.path.join("invoke", "config.py")
        ):
            config = frame.tb_frame.f_locals.get("self")
            where = getattr(config, "_runtime_path", None) or "the lab file"
            sys.stderr.write(
                f"error: lab file {where}: must be a mapping of settings (name:, nodes:, ...)\n"
            )
            sys.stderr.flush()
            os._exit(2)
        frame = frame.tb_next
    if issubclass(kind, Exception) and not debugging():
        # invoke fails on some lab files before any task (and its user_errors) runs.
        sys.stderr.write(unexpected(error) + "\n")
        sys.stderr.flush()
        os._exit(BUG_EXIT)
    sys.__excepthook__(kind, error, tb)


sys.excepthook = _lab_file_errors
