"""Configuration through invoke's config system: the lab file is `lab.yaml`, env is `LAB_*`.

`invoke lab.up` runs under invoke's own Config (prefix "invoke"), so the tasks rebuild a
LabConfig from the same sources: the project's lab.yaml, the `-f` file given to invoke,
and LAB_* environment variables, in invoke's usual order of precedence.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from invoke import Config, Context

from .errors import SpecError
from .spec import LAB_DEFAULTS, LabSpec, parse_spec

INVOKE_KEYS = set(Config.global_defaults())


class LabConfig(Config):
    prefix = "lab"
    env_prefix = "LAB"

    @staticmethod
    def global_defaults() -> dict[str, Any]:
        defaults = Config.global_defaults()
        defaults.update(copy.deepcopy(LAB_DEFAULTS))
        return defaults


def _check_yaml(path: Path) -> None:
    """A lab file must be a YAML mapping; say so in one line rather than a parser dump."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"lab file {path}: {exc.strerror}; give an existing file with -f") from None
    except UnicodeDecodeError:
        raise SpecError(f"lab file {path}: not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SpecError(f"lab file {path}{where}: {problem}; fix the YAML") from None
    if data is not None and not isinstance(data, dict):
        raise SpecError(f"lab file {path}: must be a mapping of settings (name:, nodes:, ...)")
    # invoke sorts the keys it holds and fails on a mix such as `1:` beside `name:`.
    odd = [key for key in data or {} if not isinstance(key, str)]
    if odd:
        raise SpecError(f"lab file {path}: the key {odd[0]!r} is not a setting's name;"
                        " settings are words (name:, nodes:, ...)")


def project_dir(ctx: Context | None = None) -> Path:
    # invoke sets the prefix to the folder of tasks.py with a trailing separator.
    prefix = getattr(ctx.config, "_project_prefix", None) if ctx is not None else None
    if prefix:
        return Path(prefix)
    return Path.cwd()


def runtime_path(ctx: Context | None) -> str | None:
    if ctx is None:
        return os.environ.get("LAB_FILE")
    return getattr(ctx.config, "_runtime_path", None) or os.environ.get("LAB_FILE")


def load_config(ctx: Context | None = None, lab_file: str | None = None) -> LabConfig:
    if ctx is not None and isinstance(ctx.config, LabConfig) and lab_file is None:
        return ctx.config
    root = project_dir(ctx)
    runtime = lab_file or runtime_path(ctx)
    project_file = root / "lab.yaml"
    if project_file.exists():
        _check_yaml(project_file)
    if runtime:
        _check_yaml(Path(runtime))
    config = LabConfig(project_location=str(root), runtime_path=runtime, lazy=True)
    config.load_project()
    if runtime:
        config.load_runtime()
    config.load_shell_env()
    return config


def load_spec(
    ctx: Context | None = None,
    *,
    provider: str | None = None,
    lab_file: str | None = None,
    name: str | None = None,
) -> LabSpec:
    config = load_config(ctx, lab_file)
    data = {key: _plain(config[key]) for key in config}
    if provider:
        data["provider"] = provider
    if name:
        data["name"] = name
    spec = parse_spec(data, known_extra=INVOKE_KEYS)
    state_dir = Path(spec.state_dir)
    if not state_dir.is_absolute():
        state_dir = project_dir(ctx) / state_dir
    from dataclasses import replace

    return replace(spec, state_dir=str(state_dir))


def _plain(value: Any) -> Any:
    """invoke's DataProxy objects to plain dicts and lists."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
