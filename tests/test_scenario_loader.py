"""Scenario files: the shipped ones load, and every kind of mistake is named by file and line."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from lab.scenario import catalog, loader, ownership, template
from lab.scenario.errors import ScenarioError

pytestmark = [pytest.mark.scenario, pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
title: A lesson
teaches: Something.
requires:
  swarm: 3
  images: [busybox]
vars:
  service: web
steps:
  - name: Create
    on: a manager
    run: docker service create --name {{service}} {{images.busybox}}
    wait: {for: replicas, service: web}
  - name: Look
    on: task:web
    run: nslookup web
    expect:
      - capture: vip
        from: 'Address: ([0-9.]+)'
  - name: Use it
    on: every node
    run: ping -c 1 {{vip}}
    needs: ipvs
cleanup:
  - name: Remove
    run: docker service rm {{service}}
    expect:
      - exit: any
"""


def write(tmp_path: Path, text: str, name: str = "lesson.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        loader.load(write(tmp_path, text))
    return str(caught.value)


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line containing `needle`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


@pytest.mark.parametrize("name", ["swarm-basics", "whoami-dns", "routing-mesh"])
def test_shipped_scenarios_load(name: str) -> None:
    scenario = loader.load(catalog.find(ROOT, name))
    assert scenario.name == name
    assert scenario.requires.swarm_nodes == 3
    assert scenario.steps
    # Nothing is removed by name (a student's service of the same name would go too): what
    # a scenario makes carries its label, and the runner removes by that label.
    assert scenario.cleanup == ()
    assert ownership.creations(step.run for step in scenario.steps).kinds
    # Image names are settings: no shipped scenario names an image itself.
    for step in scenario.steps:
        assert "swarmlab/" not in step.run
        if "service create" in step.run:
            assert "--no-resolve-image" in step.run and "{{images." in step.run


def test_emulated_machines_stretch_every_timeout_and_nothing_else() -> None:
    from lab.scenario.model import slowed

    scenario = loader.load(catalog.find(ROOT, "whoami-dns"))
    assert slowed(scenario, 1) is scenario
    slow = slowed(scenario, 4)
    for fast, stretched in zip(scenario.steps + scenario.cleanup, slow.steps + slow.cleanup,
                               strict=True):
        assert stretched.timeout == fast.timeout * 4
        if fast.wait:
            assert stretched.wait and stretched.wait.timeout == fast.wait.timeout * 4
        assert (stretched.run, stretched.checks) == (fast.run, fast.checks)
    assert any(step.wait for step in slow.steps)


def test_ipvs_checks_are_declared_where_the_issue_says() -> None:
    mesh = loader.load(catalog.find(ROOT, "routing-mesh"))
    dns = loader.load(catalog.find(ROOT, "whoami-dns"))
    basics = loader.load(catalog.find(ROOT, "swarm-basics"))
    assert mesh.features() == dns.features() == {"ipvs"}
    assert basics.features() == set()
    needing = [s.run for s in mesh.steps if "ipvs" in s.needs]
    assert any("ipvsadm -Ln" in run for run in needing)
    assert any("127.0.0.1:1000" in run for run in needing)
    # Host-mode publishing and the DNAT rule are shown without IPVS.
    assert not any("1001" in run for run in needing)


def test_a_good_file_becomes_a_model(tmp_path: Path) -> None:
    scenario = loader.load(write(tmp_path, GOOD))
    create, look, use = scenario.steps
    assert (create.target.kind, look.target.kind, look.target.name) == ("manager", "task", "web")
    assert use.target.kind == "every-node" and use.needs == ("ipvs",)
    assert create.wait is not None and create.wait.kind == "replicas" and create.wait.timeout == 60
    # A step without an exit check expects status 0; the capture follows it.
    assert [c.kind for c in look.checks] == ["exit", "capture"]
    assert look.checks[0].code == 0
    assert look.checks[1].where.line == line_of(GOOD, "- capture: vip")
    assert scenario.cleanup[0].checks[0].code == "any"
    assert scenario.image_keys == ("busybox",)
    assert scenario.variables == {"service": "web"}


RUN = "    run: nslookup web\n"
ON = "    on: task:web\n"


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        (RUN, "    runn: nslookup web\n", "runn:", "unknown key 'runn'"),
        (ON, "    on: a mangaer\n", "a mangaer", "unknown target 'a mangaer'"),
        (ON, "    on: tsk:web\n", "tsk:web", "unknown target 'tsk:web'"),
        (RUN, "    run: nslookup {{vipp}}\n", "{{vipp}}", "{{vipp}} is not defined here"),
        (RUN, RUN + "    timeout: 0\n", "timeout: 0", "allowed: a whole number from 1 to 3600"),
        (RUN, RUN + "    needs: magic\n", "needs: magic", "'magic' is unknown; allowed: ipvs"),
        (RUN, RUN + "    wait: {for: ever}\n", "for: ever", "wait `for` is 'ever'"),
        (RUN, RUN + "    wait: {for: replicas}\n", "for: replicas}", "needs `service:`"),
        ("        from: 'Address: ([0-9.]+)'\n", "        from: '(unclosed'\n", "(unclosed",
         "bad regular expression"),
        ("        from: 'Address: ([0-9.]+)'\n", "        from: 'no group'\n", "no group",
         "needs a (group)"),
        ("      - capture: vip\n", "      - exit: maybe\n      - capture: vip\n", "exit: maybe",
         "allowed: 0-255, any, nonzero"),
        ("      - capture: vip\n", "      - match: a\n        no_match: b\n      - capture: vip\n",
         "match: a", "exactly one of"),
        ("      - capture: vip\n", "      - capture: vip\n        needs: ipvs\n", "capture: vip",
         "a capture cannot need an optional feature"),
    ],
)
def test_a_malformed_step_is_named_by_file_and_line(
    tmp_path: Path, old: str, new: str, needle: str, message: str
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    found = error_of(tmp_path, text)
    assert found.startswith(f"{tmp_path / 'lesson.yaml'}:{line_of(text, needle)}: "), found
    assert message in found, found


def test_a_capture_is_usable_from_the_next_step_only(tmp_path: Path) -> None:
    text = GOOD.replace(
        "        from: 'Address: ([0-9.]+)'\n",
        "        from: 'Address: ([0-9.]+)'\n      - match: '{{vip}}'\n",
    )
    found = error_of(tmp_path, text)
    line = line_of(text, "match: '{{vip}}'")
    assert f":{line}: " in found
    assert "a capture is usable from the next step on" in found


def test_cleanup_cannot_use_a_capture(tmp_path: Path) -> None:
    text = GOOD.replace("run: docker service rm {{service}}", "run: docker service rm {{vip}}")
    found = error_of(tmp_path, text)
    assert f":{line_of(text, 'service rm {{vip}}')}: cleanup step 1 (Remove)" in found


def test_yaml_faults_are_named_by_line(tmp_path: Path) -> None:
    text = GOOD.replace("    run: nslookup web\n", "    run: nslookup: web\n")
    assert f":{line_of(text, 'nslookup: web')}: mapping values are not allowed" in error_of(
        tmp_path, text
    )
    text = GOOD.replace("    run: nslookup web\n", "    run: nslookup web\n    run: again\n")
    assert f":{line_of(text, 'run: again')}: key 'run' given twice" in error_of(tmp_path, text)


def test_a_file_needs_its_title_and_steps(tmp_path: Path) -> None:
    assert "the scenario needs `title:`" in error_of(tmp_path, "teaches: x\nsteps: []\n")
    assert "`steps` must be a list of steps" in error_of(
        tmp_path, "title: t\nteaches: x\nsteps: []\n"
    )
    assert "must be a mapping" in error_of(tmp_path, "- just a list\n")


def test_unknown_scenario_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError) as caught:
        catalog.find(ROOT, "swarm-basic")
    assert "unknown scenario 'swarm-basic'" in str(caught.value)
    assert "swarm-basics" in str(caught.value) and "whoami-dns" in str(caught.value)
    assert caught.value.exit_code == 2


def test_docker_go_templates_are_left_alone() -> None:
    command = (
        "docker inspect --format '{{.Name}}{{range .Addresses}}{{.}}{{end}}"
        " {{json .Spec}}' {{service}}"
    )
    assert template.references(command) == ["service"]
    assert template.render(command, {"service": "web"}) == command.replace("{{service}}", "web")


def test_variables_in_patterns_are_escaped() -> None:
    rendered = template.render(r"^Address: {{vip}}$", {"vip": "10.0.1.2"}, quote=re.escape)
    assert rendered == r"^Address: 10\.0\.1\.2$"
    assert template.render("{{ips}}", {"ips": ["a", "b"]}) == "a b"


def test_a_value_inside_quotes_in_a_command_is_refused(tmp_path: Path) -> None:
    # Quoted by the runner and again by the author, a value would be unquoted in the shell.
    text = GOOD.replace("run: ping -c 1 {{vip}}", "run: ping -c 1 '{{vip}}'")
    found = error_of(tmp_path, text)
    assert found.endswith(
        f"/lesson.yaml:{line_of(text, 'ping -c 1')}: step 3 (Use it): {{{{vip}}}} is inside"
        " quotes in `run:`; write it bare: every value is shell-quoted where it goes in, and"
        " quotes around it would undo that"
    )
    # Docker's own templates in quotes are not ours and stay allowed.
    assert template.quoted_references("docker ps --format '{{.ID}}' {{vip}}") == []
    assert template.quoted_references('echo "{{a}}" \'{{b}}\' \\{{c}}') == ["a", "b", "c"]


def test_a_file_name_that_cannot_be_a_label_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        loader.load(write(tmp_path, GOOD, name="my lesson;x.yaml"))
    assert str(caught.value).endswith(
        "'my lesson;x' cannot name a scenario; rename the file with letters, digits, '.', '_'"
        " and '-' only (e.g. my-lesson.yaml)"
    )
