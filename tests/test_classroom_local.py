"""A class of three students on the local provider, through the real CLI, end to end.

up (interrupted once, then finished by a rerun), status, a failure broken for one student,
the grade naming that one, reset to `prepared` and to `swarm`, the cards, and down leaving
nothing. Plus the faults that cost no machines: a bad
roster and a host without room.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import INVOKE, ROOT, CLIResult, run_cli

pytestmark = pytest.mark.classroom

CLASS = "t-class"
STUDENTS = [("ann", "Ann Lee"), ("ben", "Ben Okafor"), ("cy", "Cy Twombly")]


def write_class(tmp: Path, name: str, pool: str, students: list[tuple[str, str]],
                **section: object) -> tuple[Path, Path]:
    lab_file = tmp / f"{name}.yaml"
    lab_file.write_text(yaml.safe_dump({
        "name": name, "subnet": "10.77.0.0/24", "state_dir": str(tmp / "state"),
        "classroom": {"address_pool": pool, "parallel": 3, **section},
    }))
    roster = tmp / "roster.csv"
    roster.write_text("id,name\n" + "".join(f"{sid},{display}\n" for sid, display in students))
    return lab_file, roster


def labelled(kind: str, lab: str) -> list[str]:
    out = subprocess.run(["docker", kind, "ls", *(["-a"] if kind == "container" else []), "-q",
                          "--filter", f"label=swarmlab.lab={lab}"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def remove_leftovers(labs: list[str]) -> None:
    """What an interrupted earlier run left, by the labs' labels only."""
    for lab in labs:
        for kind in ("container", "volume", "network"):
            ids = labelled(kind, lab)
            if ids:
                verb = ["rm", "-f"] if kind != "network" else ["rm"]
                subprocess.run(["docker", kind, *verb, *ids], capture_output=True)


class Class:
    def __init__(self, lab_file: Path, roster: Path):
        self.lab_file, self.roster = lab_file, roster

    def invoke(self, *args: str, timeout: int = 600) -> CLIResult:
        return run_cli("-f", str(self.lab_file), *args, timeout=timeout)

    def status(self) -> dict:
        result = self.invoke("class.status", "--json")
        assert result.code == 0, result.output
        return {row["student"]: row for row in json.loads(result.stdout)["students"]}


@pytest.fixture(scope="module")
def klass(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Class]:
    tmp = tmp_path_factory.mktemp("class")
    labs = [f"{CLASS}-{sid}" for sid, _ in STUDENTS]
    remove_leftovers(labs)
    found = Class(*write_class(tmp, CLASS, "10.210.0.0/16", STUDENTS))
    yield found
    found.invoke("class.down")
    remove_leftovers(labs)


def interrupted_up(klass: Class) -> tuple[int, str]:
    """class.up one lab at a time, Ctrl-C once the first lab is done."""
    process = subprocess.Popen(
        [*INVOKE, "-f", str(klass.lab_file), "class.up", "--roster", str(klass.roster),
         "--parallel", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if re.match(r"\[1/3\] \w+ +done in", line):
            process.send_signal(signal.SIGINT)
            break
    rest, _ = process.communicate(timeout=300)
    return process.returncode, "".join(lines) + rest


def test_a_class_from_up_to_down(klass: Class, tmp_path: Path) -> None:
    started = time.monotonic()
    code, output = interrupted_up(klass)
    assert code == 130, output
    assert "interrupted: no new labs start" in output
    assert re.search(r"class.up: 1 of 3 ok; interrupted: \w+, \w+", output), output
    assert "rerun the same command to finish the job" in output

    up = klass.invoke("class.up", "--roster", str(klass.roster))
    assert up.code == 0, up.output
    assert "class.up: 3 of 3 ok" in up.stdout
    assert "already up, nothing changed" in up.stdout  # the lab done before Ctrl-C
    up_seconds = time.monotonic() - started

    status = klass.status()
    assert sorted(status) == ["ann", "ben", "cy"]
    subnets = set()
    for sid, row in status.items():
        assert (row["nodes_up"], row["swarm"], row["doctor"]) == (3, "ok", []), row
        assert row["lab"] == f"{CLASS}-{sid}"
        lab_file = klass.lab_file.parent / "state" / f"{CLASS}.class" / "labs" / f"{sid}.yaml"
        subnets.add(yaml.safe_load(lab_file.read_text())["subnet"])
    assert subnets == {"10.210.0.0/24", "10.210.1.0/24", "10.210.2.0/24"}
    table = klass.invoke("class.status")
    assert re.search(r"ben +Ben Okafor +t-class-ben +3/3 +ok +ok +-", table.stdout), table.stdout

    broken = klass.invoke("class.break", "non-overlay-network", "--student", "ben")
    assert broken.code == 0, broken.output
    assert "class.break: 1 of 1 ok" in broken.stdout
    graded = klass.invoke("class.check")
    assert graded.code == 1, graded.output
    assert re.search(r"^ann +healthy$", graded.stdout, re.M)
    assert re.search(r"^ben +NOT healthy: .*lesson-net", graded.stdout, re.M), graded.stdout
    assert "grade: 2/3 labs healthy" in graded.stdout

    reset = klass.invoke("class.reset")
    assert reset.code == 0, reset.output
    assert "class.reset: 3 of 3 ok" in reset.stdout
    after = klass.status()
    assert {row["swarm"] for row in after.values()} == {"none"}
    assert all(row["last_reset"]["to"] == "prepared" for row in after.values())
    # The failure was undone by the reset: no local network is left for a service.
    nets = klass.invoke("-f", str(klass.lab_file.parent / "state" / f"{CLASS}.class" / "labs"
                                  / "ben.yaml"), "lab.exec", "manager1", "docker network ls")
    assert "lesson-net" not in nets.stdout
    assert klass.invoke("class.check").code == 1  # students now build the swarm themselves

    rebuilt = klass.invoke("class.reset", "--to", "swarm", "--student", "ben")
    assert rebuilt.code == 0, rebuilt.output
    assert klass.status()["ben"]["swarm"] == "ok"
    refused = klass.invoke("class.reset", "--to", "before-lesson", "--student", "ann")
    assert refused.code == 1
    assert "provider local cannot revert to a snapshot 'before-lesson'" in refused.stdout

    check_cards(klass, tmp_path)

    down = klass.invoke("class.down")
    assert down.code == 0, down.output
    assert "class.down: 3 of 3 ok" in down.stdout
    for sid, _ in STUDENTS:
        for kind in ("container", "volume", "network"):
            assert labelled(kind, f"{CLASS}-{sid}") == []
    assert list((klass.lab_file.parent / "state").iterdir()) == []
    print(f"class of three: up (interrupted, then finished) in {up_seconds:.0f} s,"
          f" whole flow in {time.monotonic() - started:.0f} s")


def check_cards(klass: Class, tmp_path: Path) -> None:
    """class.cards from the record; the printing itself is test_classroom_cards'."""
    out = tmp_path / "cards.html"
    written = klass.invoke("class.cards", "--out", str(out))
    assert written.code == 0, written.output
    assert f"3 cards written to {out}" in written.stdout
    page = out.read_text()
    assert page.count('<section class="card"') == len(STUDENTS)
    for sid, display in STUDENTS:
        assert display in page and f"labs/{sid}.yaml lab.ssh manager1" in page


def test_bad_roster_through_the_cli_is_one_line_naming_the_row(tmp_path: Path) -> None:
    lab_file, roster = write_class(tmp_path, "t-classr", "10.211.0.0/16",
                                   [("ann", "Ann"), ("ann", "Ann again")])
    result = run_cli("-f", str(lab_file), "class.up", "--roster", str(roster), timeout=120)
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: roster {roster} row 3: student id 'ann' is also on row 2; ids must be"
        " unique (case does not count)"]
    assert "Traceback" not in result.output
    crowded = tmp_path / "crowded.csv"
    crowded.write_text("id,name\n" + "".join(f"s{i},S{i}\n" for i in range(3)))
    lab_file.write_text(lab_file.read_text().replace("10.211.0.0/16", "10.211.0.0/23"))
    result = run_cli("-f", str(lab_file), "class.up", "--roster", str(crowded), timeout=120)
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: roster {crowded} row 4 (s2): no room left in the address pool 10.211.0.0/23:"
        " it fits 2 students of /24; widen classroom.address_pool or give a longer"
        " classroom.student_prefix"]


def test_a_host_without_room_makes_no_labs_and_names_the_students(
    images: None, tmp_path: Path,
) -> None:
    students = [("dee", "Dee"), ("eve", "Eve")]
    lab_file, roster = write_class(tmp_path, "t-classm", "10.212.0.0/16", students,
                                   memory_per_node_mib=1024 * 1024)
    result = run_cli("-f", str(lab_file), "class.up", "--roster", str(roster), timeout=300)
    assert result.code == 1, result.output
    assert "class.up: 0 of 2 ok; no lab: dee, eve" in result.stdout
    assert "not enough memory here for 3 new nodes" in result.stdout
    assert "labs not done: dee (no lab), eve (no lab)" in result.stderr
    for sid, _ in students:
        assert labelled("container", f"t-classm-{sid}") == []
    assert run_cli("-f", str(lab_file), "class.down", timeout=300).code == 0
