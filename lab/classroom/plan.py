"""The class plan: one LabSpec per student, made from the lab file, that never collide.

- names: each lab is `<class>-<student id>`, so every container, VM, network, volume and
  state folder the providers derive from the lab name is the student's own;
- addresses: each student gets a subnet of `student_prefix` bits cut from the class's
  `address_pool`, and each node keeps its offset from the lab file (manager1 .11 stays .11);
  a student keeps the subnet recorded for them, so editing the roster never moves a lab;
- providers: local gets a Docker network per lab (from the lab name), vSphere a folder per
  student inside the class's folder, Vagrant a project per lab (in the lab's state folder),
  Incus a project per lab (`swarmlab-<lab>`, its quota the lab's nodes) and a bridge.

Each student's lab is also written out as a plain lab file, so every `lab.*` task works on
one student's lab: `invoke -f <class dir>/labs/<id>.yaml lab.ssh manager1`.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError
from ..providers.incus import BRIDGE_PREFIX as INCUS_BRIDGE_PREFIX
from ..spec import NAME_RE, LabSpec, parse_spec
from .record import ClassRecord
from .roster import Student
from .settings import ClassSettings

# Linux limits interface names to 15 characters, and the local and vagrant-docker providers
# name a lab's bridge "sl-<lab>" (incus "sli-<lab>") cut to that length: two labs must not
# end up with one name.
BRIDGE_PREFIXES = {"local": "sl-", "vagrant": "sl-", "incus": INCUS_BRIDGE_PREFIX}
BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def bridge_name(lab: str, provider: str = "local") -> str:
    return (BRIDGE_PREFIXES[provider] + lab)[:15]


@dataclass(frozen=True)
class StudentLab:
    student: Student
    spec: LabSpec
    lab_file: Path

    @property
    def id(self) -> str:
        return self.student.id

    @property
    def lab(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class ClassPlan:
    name: str
    base: LabSpec
    settings: ClassSettings
    labs: tuple[StudentLab, ...]
    directory: Path

    def only(self, student: str | None) -> list[StudentLab]:
        """Every lab, or the one of `student` (an error naming the ids there are)."""
        if not student:
            return list(self.labs)
        wanted = student.lower()
        found = [lab for lab in self.labs if lab.id == wanted]
        if not found:
            raise SpecError(
                f"no student {student!r} in class {self.name}; students are: "
                + ", ".join(lab.id for lab in self.labs)
            )
        return found


def _fault(student: Student, roster: str, message: str) -> SpecError:
    return SpecError(f"roster {roster} row {student.row} ({student.id}): {message}")


def _offsets(base: LabSpec) -> dict[str, int]:
    network = ipaddress.IPv4Network(base.subnet)
    return {node.name: int(ipaddress.IPv4Address(node.address)) - int(network.network_address)
            for node in base.nodes}


def _check_offsets(offsets: dict[str, int], prefix: int, where: str) -> None:
    size = 2 ** (32 - prefix)
    for node, offset in offsets.items():
        if not 2 <= offset <= size - 2:
            raise SpecError(
                f"{where}: a /{prefix} subnet cannot hold {node} at offset {offset} of the lab"
                f" file's subnet (it holds offsets 2-{size - 2}); give a shorter prefix or move"
                " the node's address"
            )


def _pool_subnets(pool: ipaddress.IPv4Network, prefix: int) -> Iterator[ipaddress.IPv4Network]:
    size = 2 ** (32 - prefix)
    for index in range(2 ** (prefix - pool.prefixlen)):
        yield ipaddress.IPv4Network((int(pool.network_address) + index * size, prefix))


def _assign_subnets(
    students: list[Student], settings: ClassSettings, record: ClassRecord,
    offsets: dict[str, int], roster: str,
) -> dict[str, ipaddress.IPv4Network]:
    """Explicit subnets first, then recorded ones, then the pool in roster order."""
    pool = ipaddress.IPv4Network(settings.address_pool)
    fits = 2 ** (settings.student_prefix - pool.prefixlen)
    assigned: dict[str, ipaddress.IPv4Network] = {}
    owners: dict[ipaddress.IPv4Network, str] = {}

    def take(student: Student, subnet: ipaddress.IPv4Network, source: str) -> None:
        for other, owner in owners.items():
            if other.overlaps(subnet):
                raise _fault(student, roster, f"{source} {subnet} overlaps {owner}'s {other};"
                             " every student needs a subnet of their own")
        assigned[student.id] = subnet
        owners[subnet] = student.id

    # Labs already made keep their subnets, even those of students no longer on the roster.
    for student_id, entry in record.students.items():
        if entry.get("subnet") and student_id not in {s.id for s in students}:
            owners[ipaddress.IPv4Network(entry["subnet"])] = student_id
    for student in students:
        explicit = student.overrides.get("subnet")
        if explicit is None:
            continue
        try:
            subnet = ipaddress.IPv4Network(explicit, strict=True)
        except ValueError:
            raise _fault(student, roster, f"subnet {explicit!r} is not an IPv4 network such as"
                         " 10.100.7.0/24 (host bits zero)") from None
        try:
            _check_offsets(offsets, subnet.prefixlen, "its subnet")
        except SpecError as exc:
            raise _fault(student, roster, str(exc)) from None
        take(student, subnet, "subnet")
    for student in students:
        recorded = record.students.get(student.id, {}).get("subnet")
        if student.id not in assigned and recorded:
            take(student, ipaddress.IPv4Network(recorded), "the recorded subnet")
    free = (subnet for subnet in _pool_subnets(pool, settings.student_prefix)
            if not any(subnet.overlaps(taken) for taken in owners))
    for student in students:
        if student.id in assigned:
            continue
        subnet = next(free, None)
        if subnet is None:
            raise _fault(student, roster, f"no room left in the address pool {pool}: it fits"
                         f" {fits} students of /{settings.student_prefix}; widen"
                         " classroom.address_pool or give a longer classroom.student_prefix")
        take(student, subnet, "subnet")
    return assigned


def _student_data(
    data: dict[str, Any], base: LabSpec, settings: ClassSettings, student: Student,
    subnet: ipaddress.IPv4Network, offsets: dict[str, int],
) -> dict[str, Any]:
    lab = f"{settings.name}-{student.id}"
    mine = copy.deepcopy(data)
    mine["name"] = lab
    mine["subnet"] = str(subnet)
    mine["nodes"] = [
        {"name": node.name, "role": node.role,
         "address": str(subnet.network_address + offsets[node.name])}
        for node in base.nodes
    ]
    for key, value in student.overrides.items():
        if key == "time_sync":
            mine[key] = BOOLEAN_WORDS.get(value.lower(), value)
        elif key != "subnet":
            mine[key] = value
    if mine["provider"] == "vmware":
        # A folder per student, inside the class's own folder.
        section = dict(mine.get("vmware") or {})
        parent = str(section.get("folder", f"swarmlab-{settings.name}")).strip("/")
        section["folder"] = f"{parent}/{lab}"
        mine["vmware"] = section
    return mine


def _spread(students: list[Student], record: ClassRecord, members: list[str]
            ) -> dict[str, str]:
    """Each student's cluster member: the recorded one (a lab never moves), else the member
    with the fewest labs so far, in roster order: round-robin over a new cluster."""
    placed: dict[str, str] = {}
    load = dict.fromkeys(members, 0)
    for sid, entry in record.students.items():
        if entry.get("member") in load:
            placed[sid] = entry["member"]
            load[entry["member"]] += 1
    for student in students:
        if student.id not in placed:
            member = min(members, key=lambda name: load[name])
            placed[student.id] = member
            load[member] += 1
    return placed


def make_plan(
    base: LabSpec, settings: ClassSettings, data: dict[str, Any], students: list[Student],
    record: ClassRecord, roster: str, members: list[str] | None = None,
) -> ClassPlan:
    """`members`: an Incus cluster's members to spread the students' labs over."""
    offsets = _offsets(base)
    placed = _spread(students, record, members) if members else {}
    _check_offsets(offsets, settings.student_prefix, "lab file: classroom.student_prefix")
    subnets = _assign_subnets(students, settings, record, offsets, roster)
    labs: list[StudentLab] = []
    bridges: dict[str, Student] = {}
    for student in students:
        lab = f"{settings.name}-{student.id}"
        if not NAME_RE.match(lab):
            room = 32 - len(settings.name) - 1
            raise _fault(student, roster, f"lab name {lab!r} is too long (32 characters at"
                         f" most): with class {settings.name!r} ids can have {room}"
                         " characters; shorten the id or classroom.name")
        mine = _student_data(data, base, settings, student, subnets[student.id], offsets)
        if student.id in placed:
            mine["incus"] = {**(mine.get("incus") or {}), "target": placed[student.id]}
        try:
            spec = parse_spec(mine)
        except SpecError as exc:
            raise _fault(student, roster, str(exc).removeprefix("lab file: ")) from None
        if spec.provider in BRIDGE_PREFIXES:
            bridge = bridge_name(lab, spec.provider)
            if bridge in bridges:
                other = bridges[bridge]
                raise _fault(student, roster, f"its network bridge would be {bridge}, as row"
                             f" {other.row} ({other.id})'s is (Linux allows 15 characters):"
                             " make ids differ in their first characters or shorten"
                             " classroom.name")
            bridges[bridge] = student
        labs.append(StudentLab(student, spec, record.directory / "labs" / f"{student.id}.yaml"))
    return ClassPlan(settings.name, base, settings, tuple(labs), record.directory)


def write_lab_files(plan: ClassPlan) -> None:
    """Each student's lab as a lab file of its own, for `invoke -f FILE lab.*`."""
    for entry in plan.labs:
        entry.lab_file.parent.mkdir(parents=True, exist_ok=True)
        spec = entry.spec
        data = {
            "name": spec.name, "provider": spec.provider, "os_family": spec.os_family,
            "firewall": spec.firewall, "selinux": spec.selinux, "time_sync": spec.time_sync,
            "subnet": spec.subnet,
            "nodes": [{"name": n.name, "role": n.role, "address": n.address} for n in spec.nodes],
            "images": dict(spec.images),
            "ssh": {"user": spec.ssh.user, "connect_timeout": spec.ssh.connect_timeout,
                    "command_timeout": spec.ssh.command_timeout, "parallel": spec.ssh.parallel},
            "state_dir": spec.state_dir,
            spec.provider: dict(spec.provider_settings),
        }
        header = (f"# Student {entry.student.name} ({entry.id}) of class {plan.name}:"
                  " written by class.up, do not edit.\n")
        entry.lab_file.write_text(header + yaml.safe_dump(data, sort_keys=False))
