"""A scenario removes only what it made, on a real lab of the local provider (real nodes, SSH,
swarm), through the real CLI.

A student's own services named like a scenario's (`whoami`, `client`) or holding its port
stop the run before step 1 with one line naming them and the command that frees them;
`--clean` frees them and says so; after any run, only what carries the scenario's label is
gone. One lab for the module (t-h2-own, 10.201.110.0/24); each test leaves the swarm empty.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.scenario import journal, ownership
from lab.scenario.model import Where
from lab.scenario.results import IN_THE_WAY, RunRecord
from tests.conftest import LabHandle, lab_fixture

pytestmark = pytest.mark.scenario
LOCAL = pytest.mark.local  # the tests on the lab; the others read listings and records

BUSYBOX = "swarmlab/busybox:latest"
WHOAMI = "swarmlab/whoami:latest"


@pytest.fixture(scope="module")
def lab(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    yield from lab_fixture(tmp_path_factory.mktemp("own"), "t-h2-own", 110)


def on_manager(lab: LabHandle, command: str) -> str:
    result = lab.invoke("lab.exec", "manager1", command)
    assert result.code == 0, result.output
    return result.stdout


def services(lab: LabHandle) -> dict[str, str]:
    """name -> ID of every service on the swarm."""
    listing = on_manager(lab, "docker service ls --format '{{.Name}} {{.ID}}'")
    return dict(line.split() for line in listing.splitlines() if line.strip())


def networks(lab: LabHandle) -> list[str]:
    return on_manager(lab, "docker network ls --filter scope=swarm --format '{{.Name}}'").split()


def students(lab: LabHandle, *commands: str) -> dict[str, str]:
    """What a student made by hand, as they would (no label); the services' IDs."""
    on_manager(lab, " && ".join(f"{command} >/dev/null" for command in commands))
    return services(lab)


@pytest.fixture
def empty(lab: LabHandle) -> Iterator[LabHandle]:
    """The lab, and afterwards its swarm emptied (this lab is the module's own)."""
    yield lab
    # Overlay networks go once the removed services' tasks are gone; ingress always stays.
    on_manager(lab, "docker service ls -q | xargs -r docker service rm >/dev/null; for i in"
               " $(seq 30); do docker network prune -f >/dev/null; [ $(docker network ls -q"
               " --filter scope=swarm | wc -l) -le 1 ] && break; sleep 1; done")


@LOCAL
def test_a_students_services_of_the_same_names_stop_the_run_and_survive(
    empty: LabHandle,
) -> None:
    before = students(
        empty,
        f"docker service create --detach --name whoami --no-resolve-image {WHOAMI}",
        f"docker service create --detach --name client --no-resolve-image {BUSYBOX} sleep 3600",
    )
    result = empty.invoke("scenario.run", "whoami-dns", timeout=300)
    assert result.code == 4, result.output
    assert result.stdout.rstrip().splitlines()[-1] == (
        "service whoami, service client: in the way, not made by this scenario; free them with"
        " `docker service rm whoami client` on manager1, or rerun with --clean to let the"
        " scenario do it"
    )
    assert "[1/" not in result.stdout  # stopped before its first step
    assert "Traceback" not in result.output
    assert services(empty) == before  # the same services, untouched


@LOCAL
def test_ports_held_by_a_students_service_and_container_are_named(empty: LabHandle) -> None:
    before = students(
        empty,
        f"docker service create --detach --name web --publish 1000:8000 --no-resolve-image"
        f" {WHOAMI}",
    )
    # A plain container on one node, holding the port of the host-mode service there.
    worker = empty.invoke("lab.exec", "worker1",
                          f"docker run -d --name web1001 -p 1001:8000 {WHOAMI} >/dev/null")
    assert worker.code == 0, worker.output
    try:
        result = empty.invoke("scenario.run", "routing-mesh", timeout=300)
        assert result.code == 4, result.output
        assert result.stdout.rstrip().splitlines()[-1] == (
            "port 1000 (published by service web), port 1001 (published by container web1001"
            " on worker1): in the way, not made by this scenario; free them with `docker service"
            " update --detach --publish-rm published=1000,target=8000 web` on manager1 and"
            " `docker stop web1001` on worker1, or rerun with --clean to let the scenario do it"
        )
        assert services(empty) == before
        ports = on_manager(empty, "docker service inspect web --format"
                                  " '{{range .Endpoint.Spec.Ports}}{{.PublishedPort}}{{end}}'")
        assert ports.strip() == "1000"
    finally:
        gone = empty.invoke("lab.exec", "worker1", "docker rm -f web1001")
        assert gone.code == 0, gone.output


@LOCAL
def test_clean_frees_the_names_says_so_and_keeps_everything_else(
    empty: LabHandle, tmp_path: Path
) -> None:
    before = students(
        empty,
        f"docker service create --detach --name whoami --no-resolve-image {WHOAMI}",
        f"docker service create --detach --name client --no-resolve-image {BUSYBOX} sleep 3600",
        f"docker service create --detach --name notes --no-resolve-image {BUSYBOX} sleep 3600",
        "docker network create --driver overlay whoami-net",
    )
    journal = tmp_path / "run.json"
    result = empty.invoke("scenario.run", "whoami-dns", "--clean", "--json", str(journal),
                          timeout=600)
    assert result.code in (0, 3), result.output  # 3: no IPVS in this kernel
    assert ("... --clean: removing what is in the way: service whoami, service client,"
            " network whoami-net") in result.stdout
    assert "manager1$ docker service rm whoami client\nwhoami\nclient\n" in result.stdout
    # What it made carried its label, and that label is all its cleanup removed by.
    assert ("$ docker service create --label swarmlab.scenario=whoami-dns --container-label"
            " swarmlab.scenario=whoami-dns --detach --name whoami ") in result.stdout
    record = json.loads(journal.read_text())
    cleanup = [c["command"] for step in record["cleanup"] for c in step["commands"]]
    assert cleanup and all("--filter label=swarmlab.scenario=whoami-dns" in c for c in cleanup)
    assert services(empty) == {"notes": before["notes"]}
    assert "whoami-net" not in networks(empty)


LESSON = """\
    title: Ownership
    teaches: Make a service and a network; leave the rest alone.
    requires: {swarm: 3, images: [busybox]}
    steps:
      - name: A network
        run: docker network create --driver overlay t-own-net
      - name: A service on it
        run: >-
          docker service create --detach --name t-own-a --network t-own-net
          --no-resolve-image {{images.busybox}} sleep 3600
        wait: {for: replicas, service: t-own-a}
    """


@LOCAL
def test_a_run_removes_only_what_carries_its_label(empty: LabHandle, tmp_path: Path) -> None:
    lesson = tmp_path / "t-own-lesson.yaml"
    lesson.write_text(textwrap.dedent(LESSON))
    before = students(
        empty,
        f"docker service create --detach --name notes --no-resolve-image {BUSYBOX} sleep 3600",
        # Left by an interrupted earlier run of the lesson: it carries the lesson's label.
        f"docker service create --detach --name t-own-a --label swarmlab.scenario=t-own-lesson"
        f" --no-resolve-image {BUSYBOX} sleep 3600",
    )
    result = empty.invoke("scenario.run", str(lesson), timeout=300)
    assert result.code == 0, result.output
    assert "[cleanup 1/2] Remove the services this scenario made" in result.stdout
    assert "[cleanup 2/2] Remove the networks this scenario made" in result.stdout
    assert services(empty) == {"notes": before["notes"]}
    assert "t-own-net" not in networks(empty)


# `docker KIND inspect` lines as probe_command asks for them: name, label, published ports.
LISTING = (
    "#service\n"
    "whoami\trouting-mesh\t1000:8000/tcp \n"  # left by another scenario
    "client\twhoami-dns\t\n"  # its own leftover: the quiet removal takes it
    "dns\t\t1000:53/udp 1001:53/tcp \n"  # a student's, on the scenario's port
    "#network\n"
    "whoami-net\t\t\n"
)


@pytest.mark.unit
def test_what_is_in_the_way_is_named_with_who_made_it() -> None:
    creates = ownership.creations([
        "docker network create --driver overlay whoami-net",
        "docker service create --name whoami --publish 1000:8000 img",
        "docker service create --name client img sh -c 'x -p 9:9'",
    ])
    assert creates.names == {"network": ["whoami-net"], "service": ["whoami", "client"]}
    assert creates.ports == [1000]  # a -p inside the task's own command is not the service's
    found = ownership.in_the_way(LISTING, creates, "whoami-dns")
    assert [way.what for way in found] == [
        "service whoami, made by scenario routing-mesh",
        "network whoami-net",
        "port 1000 (published by service dns)",
    ]
    assert ownership.refusal(found, "manager2") == (
        "service whoami, made by scenario routing-mesh, network whoami-net, port 1000"
        " (published by service dns): in the way, not made by this scenario; free them with"
        " `docker service rm whoami && docker network rm whoami-net && docker service update"
        " --detach --publish-rm published=1000,target=53,protocol=udp dns` on manager2, or"
        " rerun with --clean to let the scenario do it"
    )
    # --clean: services and ports first, then the network once no task holds it.
    first, then = ownership.clearing(found, Where("lesson.yaml", 0))
    assert first.run.startswith("docker service rm whoami && docker service update")
    assert then.run == (
        "docker network inspect whoami-net --format '{{.Name}}' 2>/dev/null | xargs -r docker"
        " network rm; docker network inspect whoami-net --format 'left: {{.Name}}' 2>/dev/null")
    assert then.wait is not None and then.wait.kind == "success"


@pytest.mark.unit
def test_a_plain_container_holding_a_port_is_named_with_its_node() -> None:
    creates = ownership.creations(
        ["docker service create --name web --publish mode=host,published=1001,target=8000 i"])
    listing = ("web.1.abc\tweb\t0.0.0.0:1001->8000/tcp\n"  # a task: its service's port
               "db\t\t0.0.0.0:1001->5432/tcp, :::1001->5432/tcp\n"
               "idle\t\t\n")
    found = ownership.containers_in_the_way(listing, "worker1", creates)
    assert found == [ownership.InTheWay(
        "container", "db", "port 1001 (published by container db on worker1)",
        "docker stop db", "worker1")]
    (step,) = ownership.clearing(found, Where("lesson.yaml", 0))
    assert (str(step.target), step.run) == ("worker1", "docker stop db")


@pytest.mark.unit
def test_a_refused_run_is_a_failure_for_a_grader(tmp_path: Path) -> None:
    run = RunRecord("whoami-dns", "DNS", "scenarios/whoami-dns.yaml", "lab", "local", 0.0)
    run.outcome, run.exit_code, run.message = IN_THE_WAY, 4, "service whoami: in the way"
    journal.write_junit(run, str(tmp_path / "run.xml"))
    text = (tmp_path / "run.xml").read_text()
    assert 'failures="1"' in text and 'message="service whoami: in the way"' in text
