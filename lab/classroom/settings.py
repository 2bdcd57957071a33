"""The lab file's `classroom:` section, and the class's base lab (the file without it).

Every student's lab starts as the lab file's lab; the section only says how a class spreads
it over students: the class name, the address pool subnets are cut from, how many labs are
worked on at once, and how much memory a local node may need.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from invoke import Context

from ..config import INVOKE_KEYS, _plain, load_config, project_dir
from ..errors import SpecError
from ..spec import NAME_RE, LabSpec, parse_spec

SECTION = "classroom"
DEFAULT_POOL = "10.100.0.0/16"
DEFAULT_PARALLEL = 4
# Measured: an idle node takes 50-75 MiB, but booting, starting dockerd and loading the
# service images take more for a while; 256 MiB a node keeps a class clear of the OOM killer.
DEFAULT_MEMORY_PER_NODE_MIB = 256
ALLOWED = ("name", "address_pool", "student_prefix", "parallel", "memory_per_node_mib",
           "instructions")
DEFAULT_INSTRUCTIONS = (
    "Build the swarm: on {first_manager} run `docker swarm init --advertise-addr"
    " {first_manager_address}`.",
    "Print the join tokens there: `docker swarm join-token manager` and"
    " `docker swarm join-token worker`.",
    "Join every other node with the right token, each with --advertise-addr set to its own"
    " address.",
    "Check on {first_manager}: `docker node ls` shows every node Ready with its role.",
)
# What a step of the instructions may name; the cards fill them in per student.
PLACEHOLDERS = ("first_manager", "first_manager_address", "lab", "subnet")


@dataclass(frozen=True)
class ClassSettings:
    name: str
    address_pool: str
    student_prefix: int
    parallel: int
    memory_per_node_mib: int
    instructions: tuple[str, ...]


def _where(key: str) -> str:
    return f"lab file: {SECTION}.{key}"


def _int(raw: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"{_where(key)} is {value!r}; allowed: a whole number from {low} to {high}")
    return value


def parse_settings(raw: Any, base: LabSpec) -> ClassSettings:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(f"lab file: {SECTION} must be a mapping of " + ", ".join(ALLOWED))
    unknown = sorted(set(raw) - set(ALLOWED))
    if unknown:
        raise SpecError(f"{_where(unknown[0])} is unknown; allowed: " + ", ".join(ALLOWED))
    name = raw.get("name", base.name)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SpecError(
            f"{_where('name')} is {name!r}; allowed: 2-32 characters of a-z, 0-9 and '-',"
            " starting with a letter (each lab is named CLASS-STUDENT)"
        )
    try:
        pool = ipaddress.IPv4Network(str(raw.get("address_pool", DEFAULT_POOL)), strict=True)
    except ValueError:
        raise SpecError(
            f"{_where('address_pool')} is {raw.get('address_pool')!r}; allowed: an IPv4 network"
            " such as 10.100.0.0/16 (host bits zero)"
        ) from None
    base_prefix = ipaddress.IPv4Network(base.subnet).prefixlen
    prefix = _int(raw, "student_prefix", base_prefix, 16, 29)
    if prefix < pool.prefixlen:
        raise SpecError(
            f"{_where('student_prefix')} /{prefix} is larger than address_pool {pool};"
            " give a longer prefix or a wider pool"
        )
    instructions = raw.get("instructions", list(DEFAULT_INSTRUCTIONS))
    if isinstance(instructions, str):
        instructions = [instructions]
    if not isinstance(instructions, list) or not all(
        isinstance(step, str) and step.strip() for step in instructions
    ):
        raise SpecError(f"{_where('instructions')} must be a list of steps (text) for the cards")
    for index, step in enumerate(instructions):
        try:
            step.format(**dict.fromkeys(PLACEHOLDERS, ""))
        except (KeyError, IndexError, ValueError) as exc:
            raise SpecError(
                f"{_where('instructions')}[{index}] has a bad placeholder ({exc}); allowed: "
                + ", ".join("{" + name + "}" for name in PLACEHOLDERS) + " (write {{ for a brace)"
            ) from None
    return ClassSettings(
        name=name,
        address_pool=str(pool),
        student_prefix=prefix,
        parallel=_int(raw, "parallel", DEFAULT_PARALLEL, 1, 64),
        memory_per_node_mib=_int(raw, "memory_per_node_mib", DEFAULT_MEMORY_PER_NODE_MIB, 16,
                                 1024 * 1024),
        instructions=tuple(instructions),
    )


def load_class(
    ctx: Context | None, *, provider: str | None = None, lab_file: str | None = None
) -> tuple[LabSpec, ClassSettings, dict[str, Any]]:
    """The class's base lab, its settings, and the lab file's data every student lab copies.

    The `classroom` section is taken out before the lab file is checked as a lab, so a class
    file is a lab file with one more section.
    """
    config = load_config(ctx, lab_file)
    data = {key: _plain(config[key]) for key in config if key not in INVOKE_KEYS}
    section = data.pop(SECTION, None)
    if provider:
        data["provider"] = provider
    base = parse_spec(data, known_extra=INVOKE_KEYS)
    state_dir = Path(base.state_dir)
    if not state_dir.is_absolute():
        state_dir = project_dir(ctx) / state_dir
    base = replace(base, state_dir=str(state_dir))
    data["state_dir"] = str(state_dir)
    return base, parse_settings(section, base), data
