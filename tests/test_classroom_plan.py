"""Classes without machines: the roster, the plan, the runner, the memory gate, the cards."""

from __future__ import annotations

import ipaddress
import threading
import time
from pathlib import Path

import pytest

from lab.classroom import cards, runner
from lab.classroom.capacity import RoomGate, memory_mib, needs
from lab.classroom.plan import ClassPlan, make_plan, write_lab_files
from lab.classroom.record import ClassRecord
from lab.classroom.roster import read_roster
from lab.classroom.settings import parse_settings
from lab.errors import LabError, SpecError
from lab.hostroom import INOTIFY_PER_NODE
from lab.spec import LAB_DEFAULTS, parse_spec

pytestmark = [pytest.mark.classroom, pytest.mark.unit]


def roster(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(text)
    return path


def plan_for(tmp_path: Path, text: str, provider: str = "local", members: list[str] | None = None,
             **section: object) -> ClassPlan:
    data = {**LAB_DEFAULTS, "name": "t-classp", "state_dir": str(tmp_path / "state"),
            "provider": provider}
    if provider == "vmware":
        data["vmware"] = {"vcenter": "127.0.0.1:1", "user": "u", "datacenter": "DC0",
                          "cluster": "C0", "datastore": "DS", "network": "N", "template": "T",
                          "folder": "classes"}
    if provider == "incus":
        data["incus"] = {"memory": "512MiB"}
    base = parse_spec(data)
    settings = parse_settings({"address_pool": "10.210.0.0/16", **section}, base)
    record = ClassRecord.load(base.state_dir, settings.name)
    path = roster(tmp_path, text)
    return make_plan(base, settings, data, read_roster(path), record, str(path), members)


@pytest.mark.parametrize(("text", "message"), [
    ("id,name\nann,Ann\nANN,Ann again\n",
     "row 3: student id 'ANN' is also on row 2; ids must be unique"),
    ("id,name\nann,Ann\n\nben,Ben\n", "row 3: empty row"),
    ("id,name\nann,Ann\n,,\nben,Ben\n", "row 3: empty row"),
    ("id,name\nann_b,Ann\n", "row 2: student id 'ann_b' has character '_', which host names do"),
    ("id,name\nann.b,Ann\n", "row 2: student id 'ann.b' has character '.'"),
    ("id,name\n-ann,Ann\n", "row 2: student id '-ann' has a '-' at the start or end"),
    ("id,name\nzoë,Zoë\n", "row 2: student id 'zoë' has character 'ë'"),
    ("id,name\n,Nobody\n", "row 2: no student id"),
    ("name,email\nAnn,a@x\n", "row 1: the header has no 'id' column"),
    ("id,name,shoe\nann,Ann,42\n", "row 1: unknown column 'shoe'"),
    ("id,name\nann,Ann,extra\n", "row 2: 3 cells but the header has 2 columns"),
    ("id,name\n", "a header but no students"),
    ("", "empty; give a header row"),
])
def test_bad_rosters_are_one_line_naming_the_row(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        read_roster(roster(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_missing_roster_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="No such file or directory; give a CSV file"):
        read_roster(tmp_path / "nope.csv")


def test_roster_reads_overrides_notes_bom_and_trailing_blank_lines(tmp_path: Path) -> None:
    students = read_roster(roster(
        tmp_path, "\ufeffID,Name,firewall,note\nAnn,Ann Lee,disable,\"row, with comma\"\n"
                  "ben,,,\n\n\n"))
    assert [(s.id, s.name, s.row) for s in students] == [("ann", "Ann Lee", 2), ("ben", "ben", 3)]
    assert students[0].overrides == {"firewall": "disable"}
    assert students[0].note == "row, with comma"


def test_plan_gives_each_student_their_own_names_and_subnet(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "id,name\nann,Ann\nben,Ben\ncy,Cy\n")
    assert [lab.lab for lab in plan.labs] == ["t-classp-ann", "t-classp-ben", "t-classp-cy"]
    subnets = [ipaddress.IPv4Network(lab.spec.subnet) for lab in plan.labs]
    assert [str(s) for s in subnets] == ["10.210.0.0/24", "10.210.1.0/24", "10.210.2.0/24"]
    for lab, subnet in zip(plan.labs, subnets, strict=True):
        # Each node keeps its offset from the lab file: manager1 .11, manager2 .12, worker1 .13.
        assert [(n.name, n.address) for n in lab.spec.nodes] == [
            ("manager1", str(subnet.network_address + 11)),
            ("manager2", str(subnet.network_address + 12)),
            ("worker1", str(subnet.network_address + 13)),
        ]
    addresses = [n.address for lab in plan.labs for n in lab.spec.nodes]
    assert len(set(addresses)) == len(addresses)


def test_a_recorded_subnet_stays_put_when_the_roster_changes(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "id,name\nann,Ann\nben,Ben\n")
    record = ClassRecord.load(plan.base.state_dir, plan.name)
    for lab in plan.labs:
        record.students[lab.id] = {"name": lab.student.name, "row": lab.student.row,
                                   "subnet": lab.spec.subnet}
    record.save()
    # Ann leaves, Dee joins before Ben: Ben keeps his subnet, Dee does not get Ann's.
    again = plan_for(tmp_path, "id,name\ndee,Dee\nben,Ben\n")
    assert {lab.id: lab.spec.subnet for lab in again.labs} == {
        "dee": "10.210.2.0/24", "ben": "10.210.1.0/24"}


def test_more_students_than_the_pool_fits_names_the_first_row_without_room(
    tmp_path: Path,
) -> None:
    text = "id,name\n" + "".join(f"s{i},S{i}\n" for i in range(5))
    with pytest.raises(SpecError) as caught:
        plan_for(tmp_path, text, address_pool="10.210.0.0/23", student_prefix=25)
    assert str(caught.value).startswith(f"roster {tmp_path / 'roster.csv'} row 6 (s4): no room"
                                        " left in the address pool 10.210.0.0/23: it fits 4")


def test_explicit_subnets_that_overlap_name_the_row(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"row 3 \(ben\): subnet 10.210.7.0/24 overlaps ann's"):
        plan_for(tmp_path, "id,name,subnet\nann,Ann,10.210.7.0/24\nben,Ben,10.210.7.0/24\n")
    plan = plan_for(tmp_path, "id,name,subnet\nann,Ann,\nben,Ben,10.210.0.0/24\n")
    # The pool skips what a student asked for explicitly.
    assert [lab.spec.subnet for lab in plan.labs] == ["10.210.1.0/24", "10.210.0.0/24"]


def test_overrides_are_checked_as_lab_fields_and_name_the_row(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "id,name,firewall,time_sync\nann,Ann,disable,no\n")
    assert (plan.labs[0].spec.firewall, plan.labs[0].spec.time_sync) == ("disable", False)
    with pytest.raises(SpecError, match=r"row 2 \(ann\): firewall is 'off'; allowed"):
        plan_for(tmp_path, "id,name,firewall\nann,Ann,off\n")


def test_ids_too_long_for_a_lab_name_or_a_bridge_name_the_row(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"row 2 .*too long \(32 characters at most\)"):
        plan_for(tmp_path, "id,name\n" + "a" * 30 + ",A\n")
    with pytest.raises(SpecError, match=r"row 3 \(annabel\): its network bridge would be"
                                        r" sl-t-classp-ann, as row 2 \(annabeth\)'s"):
        plan_for(tmp_path, "id,name\nannabeth,A\nannabel,B\n")


def test_incus_bridges_of_two_students_must_differ_in_their_first_eleven_characters(
        tmp_path: Path) -> None:
    # sli-<lab> keeps 11 characters of the lab name where local's sl-<lab> keeps 12.
    plan_for(tmp_path, "id,name\nabc,A\nabd,B\n")
    with pytest.raises(SpecError, match=r"row 3 \(abd\): its network bridge would be"
                                        r" sli-t-classp-ab, as row 2 \(abc\)'s"):
        plan_for(tmp_path, "id,name\nabc,A\nabd,B\n", provider="incus")


def test_room_gate_counts_incus_memory_and_inotify_per_node(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "id,name\nann,Ann\n", provider="incus")
    assert needs(plan.labs[0].spec, 300) == (512, INOTIFY_PER_NODE)
    gate = RoomGate(300, free_mib=lambda: 1500, free_inotify=lambda: (1000, 1024))
    assert gate(plan.labs[0]) == (
        "not enough memory here for 3 new nodes: they need 1536 MiB (512 MiB a node) and 1500"
        " MiB are free beside the labs being made; free memory, run fewer students, or lower"
        " incus.memory")
    assert [memory_mib(size) for size in ("512MiB", "2GiB", "1GB")] == [512, 2048, 954]


def test_a_class_spreads_its_incus_labs_over_the_cluster_and_a_lab_never_moves(
        tmp_path: Path) -> None:
    members = ["m1", "m2", "m3"]
    text = "id,name\n" + "".join(f"s{i},S{i}\n" for i in range(7))
    plan = plan_for(tmp_path, text, provider="incus", members=members)
    assert [lab.spec.provider_settings["target"] for lab in plan.labs] == [
        "m1", "m2", "m3", "m1", "m2", "m3", "m1"]
    # Recorded members stay put; a newcomer goes where fewest labs are.
    record = ClassRecord.load(plan.labs[0].spec.state_dir, "t-classp")
    record.students.update({"s0": {"member": "m3"}, "s1": {"member": "m3"}})
    record.save()
    plan = plan_for(tmp_path, "id,name\ns0,A\ns1,B\nnew,C\n", provider="incus",
                    members=members)
    assert [lab.spec.provider_settings["target"] for lab in plan.labs] == ["m3", "m3", "m1"]


def test_vsphere_gets_a_folder_per_student_inside_the_class_folder(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "id,name\nann,Ann\nannabeth,A\n", provider="vmware")
    assert [lab.spec.provider_settings["folder"] for lab in plan.labs] == [
        "classes/t-classp-ann", "classes/t-classp-annabeth"]


def test_student_lab_files_are_lab_files(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "id,name\nann,Ann\n")
    write_lab_files(plan)
    from lab.config import load_spec

    assert load_spec(None, lab_file=str(plan.labs[0].lab_file)) == plan.labs[0].spec


@pytest.mark.parametrize(("section", "message"), [
    ({"color": 1}, "classroom.color is unknown"),
    ({"address_pool": "10.210.0.1/16"}, "classroom.address_pool is '10.210.0.1/16'"),
    ({"student_prefix": 8}, "classroom.student_prefix is 8"),
    ({"address_pool": "10.210.0.0/24", "student_prefix": 20}, "larger than address_pool"),
    ({"parallel": 0}, "classroom.parallel is 0"),
    ({"instructions": ["run {nothing}"]}, "instructions[0] has a bad placeholder"),
    ({"name": "Bad Name"}, "classroom.name is 'Bad Name'"),
])
def test_bad_class_settings_name_the_field(section: dict, message: str) -> None:
    base = parse_spec(dict(LAB_DEFAULTS))
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_settings(section, base)


def test_student_prefix_too_small_for_the_node_offsets(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="a /29 subnet cannot hold manager1 at offset 11"):
        plan_for(tmp_path, "id,name\nann,Ann\n", student_prefix=29)


def test_runner_one_failure_does_not_stop_the_others_and_is_named(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "id,name\nann,Ann\nben,Ben\ncy,Cy\ndee,Dee\n")
    at_once = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def work(entry, log):
        with lock:
            at_once["now"] += 1
            at_once["peak"] = max(at_once["peak"], at_once["now"])
        log("==> step")
        time.sleep(0.2)
        with lock:
            at_once["now"] -= 1
        if entry.id == "ben":
            raise LabError("ben's worker1 is on fire")
        if entry.id == "cy":
            raise KeyError("a bug")
        return "fine", entry.id

    lines: list[str] = []
    results = runner.run(list(plan.labs), work, what="test", parallel=2, say=lines.append,
                         log_dir=tmp_path / "logs")
    assert [(r.student, r.status) for r in results] == [
        ("ann", "ok"), ("ben", "failed"), ("cy", "failed"), ("dee", "ok")]
    assert at_once["peak"] == 2
    assert "ben's worker1 is on fire" in results[1].detail
    assert "KeyError" in results[2].detail
    assert any(line.startswith("[") and "ann" in line and "==> step" in line for line in lines)
    assert lines[-1].startswith("[4/4]")
    runner.summary(results, "test", lines.append)
    assert lines[-1] == "test: 2 of 4 ok; failed: ben, cy"
    assert "ben's worker1 is on fire" in (tmp_path / "logs" / "ben.log").read_text()


def test_room_gate_stops_new_labs_and_names_students_without_one(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "id,name\nann,Ann\nben,Ben\ncy,Cy\n")
    free = {"mib": 2000}
    gate = RoomGate(300, free_mib=lambda: free["mib"], free_inotify=lambda: (1000, 1024))

    def work(entry, log):
        free["mib"] -= 900  # the lab's three nodes now use the memory they were given
        return "up", None

    lines: list[str] = []
    results = runner.run(list(plan.labs), work, what="class.up", parallel=1, say=lines.append,
                         log_dir=tmp_path / "logs", gate=gate, release=gate.release)
    assert [r.status for r in results] == ["ok", "ok", "no lab"]
    assert results[2].detail.startswith("not enough memory here for 3 new nodes: they need"
                                        " 900 MiB (300 MiB a node) and 200 MiB are free")
    runner.summary(results, "class.up", lines.append)
    assert lines[-1] == "class.up: 2 of 3 ok; no lab: cy"


def test_room_gate_counts_inotify_instances_for_node_containers(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "id,name\nann,Ann\nben,Ben\n")
    one_lab = 3 * INOTIFY_PER_NODE
    gate = RoomGate(300, free_mib=lambda: 10_000, free_inotify=lambda: (one_lab + 15, 128))
    ann, ben = plan.labs
    assert gate(ann) is None  # one lab's worth, and 15 more
    assert gate(ben) == (
        f"no room here for 3 new node containers: their systemd needs {one_lab} inotify"
        " instances and 15 of the host's 128 (fs.inotify.max_user_instances) are free; raise"
        " the limit (sysctl -w fs.inotify.max_user_instances=1024) or run fewer students")


def test_room_gate_reserves_for_labs_being_made_and_skips_made_ones(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "id,name\nann,Ann\nben,Ben\n")
    gate = RoomGate(300, free_mib=lambda: 1000, free_inotify=lambda: (1000, 1024))
    ann, ben = plan.labs
    assert gate(ann) is None
    assert gate(ben) is not None  # Ann's 900 MiB are not used yet, but they are promised
    gate.release(ann)
    assert gate(ben) is None
    from lab.state import LabState

    state = LabState.load(ann.spec.state_dir, ann.lab)
    for node in ann.spec.nodes:
        state.record_machine(node.name, id="x")
    assert RoomGate(300, free_mib=lambda: 0, free_inotify=lambda: (0, 128))(ann) is None


def test_inotify_instances_are_counted_on_this_host() -> None:
    import ctypes
    import os

    from lab.hostroom import inotify_free

    libc = ctypes.CDLL(None, use_errno=True)
    held = [libc.inotify_init() for _ in range(3)]  # three of our own, open while counting
    try:
        assert all(fd >= 0 for fd in held)
        free, limit = inotify_free()
    finally:
        for fd in held:
            os.close(fd)
    assert limit == int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    assert free <= limit - 3


def test_cards_escape_and_one_section_per_student(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "id,name,note\nann,<Ann & Co>,\"use \"\"ssh\"\"\"\nben,Ben,\n")
    page = cards.render(plan)
    assert page.count('<section class="card"') == 2
    assert "&lt;Ann &amp; Co&gt;" in page and "<Ann" not in page
    assert "docker swarm init --advertise-addr 10.210.0.11" in page
    assert "@media print" in page and "break-after: page" in page
