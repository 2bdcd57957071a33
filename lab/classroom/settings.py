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

from .. import fields
from ..config import INVOKE_KEYS, _plain, load_config, project_dir
from ..errors import SpecError
from ..spec import LabSpec, parse_spec

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


def _instructions(raw: Any) -> tuple[str, ...]:
    steps = [raw] if isinstance(raw, str) else raw
    if not isinstance(steps, list):
        raise SpecError(f"{_where('instructions')} must be a list of steps (text) for the cards")
    for index, step in enumerate(steps):
        if not isinstance(step, str) or not step.strip():
            raise SpecError(f"{_where('instructions')}[{index}] is {fields.shown(step)}; allowed:"
                            " a step (text) for the cards")
        fields.line(f"{_where('instructions')}[{index}]", step)
        try:
            step.format(**dict.fromkeys(PLACEHOLDERS, ""))
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise SpecError(
                f"{_where('instructions')}[{index}] has a bad placeholder ({exc}); allowed: "
                + ", ".join("{" + name + "}" for name in PLACEHOLDERS) + " (write {{ for a brace)"
            ) from None
    return tuple(steps)


def parse_settings(raw: Any, base: LabSpec) -> ClassSettings:
    section = fields.mapping(f"lab file: {SECTION}", {} if raw is None else raw, ALLOWED,
                             what="a mapping of " + ", ".join(ALLOWED))
    name = fields.name(_where("name"), section.get("name", base.name),
                       "each lab is named CLASS-STUDENT")
    pool = fields.ipv4_network(_where("address_pool"),
                               section.get("address_pool", DEFAULT_POOL), "10.100.0.0/16")
    base_prefix = ipaddress.IPv4Network(base.subnet).prefixlen
    prefix = fields.whole(_where("student_prefix"), section.get("student_prefix", base_prefix),
                          16, 29)
    if prefix < pool.prefixlen:
        raise SpecError(
            f"{_where('student_prefix')} /{prefix} is larger than address_pool {pool};"
            " give a longer prefix or a wider pool"
        )
    return ClassSettings(
        name=name,
        address_pool=str(pool),
        student_prefix=prefix,
        parallel=fields.whole(_where("parallel"), section.get("parallel", DEFAULT_PARALLEL),
                              1, 64),
        memory_per_node_mib=fields.whole(
            _where("memory_per_node_mib"),
            section.get("memory_per_node_mib", DEFAULT_MEMORY_PER_NODE_MIB), 16, 1024 * 1024),
        instructions=_instructions(section.get("instructions", list(DEFAULT_INSTRUCTIONS))),
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
