"""The class in a browser: a real `class.serve`, real labs, real headless Chromium.

One class of two students (t-h9-a, t-h9-b; three nodes each, subnets 10.201.200-201.0/24),
one server and one browser for the module. The student's page is driven as a student would:
keys typed into manager1's terminal, the answer read back from the terminal's own DOM, the
swarm's picture read from the SVG the server pushed. The instructor's page breaks student
a's lab with a click and the student's page must show it; a second click fixes it, and the
lab's own status must say so. Screenshots of both pages go to
docs/screenshots/ (the README shows them).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import INVOKE, ROOT, run_cli, write_lab

pytestmark = [pytest.mark.web, pytest.mark.local]

CLASS = "t-h9"
STUDENTS = ("a", "b")
LABS = [f"{CLASS}-{sid}" for sid in STUDENTS]
SHOTS = ROOT / "docs" / "screenshots"
IDLE_SECONDS = 10  # the least --idle-seconds takes: the idle test's second server uses it
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Without these Chromium tries the network (updates, sync, QUIC probes); the test bed has none.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000")


def wait_until(what: str, probe: Callable[[], Any], timeout: float, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as exc:  # the page is still being drawn; look again
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:g} s (last saw {last!r})")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def labelled_containers(lab: str, node: str = "") -> list[str]:
    filters = ["--filter", f"label=swarmlab.lab={lab}"]
    if node:
        filters += ["--filter", f"label=swarmlab.node={node}"]
    return subprocess.run(["docker", "ps", "-aq", *filters], capture_output=True, text=True,
                          check=True).stdout.split()


def remove_leftovers() -> None:
    """What an interrupted earlier run left, by these labs' labels only."""
    for lab in LABS:
        for kind in ("container", "volume", "network"):
            listed = subprocess.run(
                ["docker", kind, "ls", *(["-a"] if kind == "container" else []), "-q",
                 "--filter", f"label=swarmlab.lab={lab}"], capture_output=True, text=True)
            if listed.stdout.split():
                verb = ["rm", "-f"] if kind != "network" else ["rm"]
                subprocess.run(["docker", kind, *verb, *listed.stdout.split()],
                               capture_output=True)


@dataclass
class Served:
    base: str
    instructor: str  # the instructor's URL
    secrets: dict[str, str]  # student id -> secret
    lab_file: Path
    output: list[str] = field(default_factory=list)  # everything the server printed

    def student(self, sid: str, secret: str | None = None) -> str:
        return f"{self.base}/s/{sid}/{secret or self.secrets[sid]}/"


def http(url: str, data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def served(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("web")
    lab_file = tmp / f"{CLASS}.yaml"
    lab_file.write_text(yaml.safe_dump({
        "name": CLASS, "subnet": "10.201.200.0/24", "state_dir": str(tmp / "state"),
        "nodes": [{"name": "manager1", "role": "manager", "address": "10.201.200.11"},
                  {"name": "manager2", "role": "manager", "address": "10.201.200.12"},
                  {"name": "worker1", "role": "worker", "address": "10.201.200.13"}],
        "classroom": {"address_pool": "10.201.200.0/23", "parallel": 2},
    }))
    roster = tmp / "roster.csv"
    roster.write_text("id,name\na,Ada Lovelace\nb,Bo Diddley\n")
    remove_leftovers()
    server: subprocess.Popen[str] | None = None
    try:
        up = run_cli("-f", str(lab_file), "class.up", "--roster", str(roster), timeout=600)
        assert up.code == 0, up.output
        port = free_port()
        server = subprocess.Popen(
            [*INVOKE, "-f", str(lab_file), "class.serve", "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert server.stdout is not None
        output: list[str] = []
        for line in server.stdout:
            output.append(line)
            if line.startswith("Ctrl-C stops") or server.poll() is not None:
                break
        said = "".join(output)
        found = re.search(r"^instructor: (\S+)$", said, re.MULTILINE)
        assert found, said
        threading.Thread(target=lambda: output.extend(server.stdout),  # type: ignore[arg-type]
                         daemon=True).start()
        links = json.loads((tmp / "state" / f"{CLASS}.class" / "web-secrets.json").read_text())
        result = Served(f"http://127.0.0.1:{port}", found.group(1), links["students"],
                        lab_file, output)
        wait_until("the server answers", lambda: http(result.base + "/")[0] == 404, 30)
        yield result
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        # The last lab test took the class down already, unless an earlier one failed.
        down = run_cli("-f", str(lab_file), "class.down", timeout=600)
        remove_leftovers()
        assert down.code == 0 or "has no students yet" in down.stderr, down.output


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    for program in (CHROMIUM, CHROMEDRIVER):
        if not Path(program).exists():
            pytest.fail(f"{program} is missing: apt-get install --no-install-recommends"
                        " chromium chromium-driver (scripts/host-setup does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="t-h9-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def terminal_text(driver: Any, node: str) -> str:
    from selenium.webdriver.common.by import By

    pane = driver.find_element(By.CSS_SELECTOR, f'.pane[data-node="{node}"]')
    return pane.find_element(By.CSS_SELECTOR, ".xterm-rows").text


def type_in(driver: Any, node: str, keys: str) -> None:
    from selenium.webdriver.common.by import By

    pane = driver.find_element(By.CSS_SELECTOR, f'.pane[data-node="{node}"]')
    pane.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys(keys)


def pane_state(driver: Any, node: str) -> str:
    from selenium.webdriver.common.by import By

    pane = driver.find_element(By.CSS_SELECTOR, f'.pane[data-node="{node}"]')
    return f"{pane.get_attribute('data-state')} {pane.find_element(By.CSS_SELECTOR, '.state').text}"


def picture_nodes(driver: Any) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {g.get_attribute("data-node"): g.get_attribute("data-state")
            for g in driver.find_elements(By.CSS_SELECTOR, "#picture g.node")}


def picture_tasks(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#picture text.task")]


def test_a_secret_opens_its_own_students_page_only(served: Served, tmp_path: Path) -> None:
    folder = served.lab_file.parent / "state" / f"{CLASS}.class"
    secrets_file = folder / "web-secrets.json"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    tokens = [*served.secrets.values(), served.instructor.rstrip("/").rsplit("/", 1)[1]]
    assert len(set(tokens)) == 3
    assert all(len(token) >= 22 for token in tokens)  # 22 url-safe characters: 132 bits
    code, page = http(served.student("a"))
    assert code == 200 and "Ada Lovelace" in page
    # Nothing on a student's page names another student.
    assert "Bo Diddley" not in page and f"{CLASS}-b" not in page
    a_secret = served.secrets["a"]
    assert http(served.student("b", a_secret))[0] == 403
    assert http(served.student("b", a_secret) + "events")[0] == 403
    assert http(served.student("a", a_secret[:-1] + ("x" if a_secret[-1] != "x" else "y")))[0] \
        == 403
    assert http(f"{served.base}/i/{a_secret}/")[0] == 403
    assert http(f"{served.base}/i/{a_secret}/board")[0] == 403
    assert http(f"{served.base}/i/{a_secret}/act", b'{"student": "b", "action": "check"}')[0] \
        == 403
    code, board = http(served.instructor + "board")
    assert code == 200 and {row["student"] for row in json.loads(board)["students"]} == {"a", "b"}
    # A websocket to another student's node with this secret is refused before it opens.
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as refused:
        connect(served.student("b", a_secret).replace("http", "ws", 1) + "term/manager1",
                open_timeout=10)
    assert refused.value.response.status_code == 403


def test_terminals_are_bounded_per_student(served: Served) -> None:
    from websockets.sync.client import connect

    from lab.web.app import MAX_TERMINALS

    url = served.student("a").replace("http", "ws", 1) + "term/worker1"
    with contextlib.ExitStack() as opened:
        for _ in range(MAX_TERMINALS):
            socket_ = opened.enter_context(connect(url, open_timeout=10))
            assert socket_.recv(timeout=10) == "sconnecting"
            assert socket_.recv(timeout=20) == "sup"
        with connect(url, open_timeout=10) as extra:
            said = extra.recv(timeout=10)
        assert said.startswith(f"sfull {MAX_TERMINALS} terminals are open already"), said
        # b's terminals are b's own count: a's full house does not hold b back.
        with connect(served.student("b").replace("http", "ws", 1) + "term/manager1",
                     open_timeout=10) as other:
            assert other.recv(timeout=10) == "sconnecting"
            assert other.recv(timeout=20) == "sup"

    def terminals_of(student: str) -> int:
        board = json.loads(http(served.instructor + "board")[1])
        return next(row["terminals"] for row in board["students"] if row["student"] == student)

    # Closed in the browser, gone from the count (the next test opens a's page).
    wait_until("a's terminals are all released", lambda: terminals_of("a") == 0, 15)


def test_the_students_page_terminal_and_picture(served: Served, browser: Any) -> None:
    browser.get(served.student("a"))
    wait_until("manager1's terminal opens", lambda: pane_state(browser, "manager1")
               .startswith("up"), 30)
    type_in(browser, "manager1", "docker node ls\n")
    ready = wait_until(
        "docker node ls lists three Ready nodes in the terminal",
        lambda: sorted(set(re.findall(r"(manager1|manager2|worker1)\s+Ready",
                                      terminal_text(browser, "manager1"))))
        if len(set(re.findall(r"(manager1|manager2|worker1)\s+Ready",
                              terminal_text(browser, "manager1")))) == 3 else None, 30)
    assert ready == ["manager1", "manager2", "worker1"]
    nodes = wait_until("the picture shows three nodes", lambda: picture_nodes(browser)
                       if len(picture_nodes(browser)) == 3 else None, 30)
    assert nodes["manager1"] == "Leader" and nodes["worker1"] == "Ready", nodes
    type_in(browser, "manager1", "docker service create -d --no-resolve-image --name web"
                                 " --replicas 2 swarmlab/whoami:latest\n")
    tasks = wait_until("the picture shows the service's two tasks", lambda: sorted(
        t for t in picture_tasks(browser) if t.startswith("▪ web.")) if len([
            t for t in picture_tasks(browser) if t.startswith("▪ web.")]) == 2 else None, 60)
    assert [t.split(".")[1] for t in tasks] == ["1", "2"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "student.png"))


def lesson_marks(driver: Any) -> dict[int, str] | None:
    """Press "check my work" and wait for its answer: step number -> status (None: no answer)."""
    from selenium.webdriver.common.by import By

    driver.execute_script("document.getElementById('checked').textContent = '';")
    driver.find_element(By.ID, "check-work").click()
    said = wait_until("the check's answer", lambda: (lambda t: t if "passed" in t or
                      "did not" in t else None)(driver.find_element(By.ID, "checked").text), 120,
                      every=0.5)
    assert "steps passed" in said, said
    return {int(li.get_attribute("data-step")): li.get_attribute("data-status")
            for li in driver.find_elements(By.CSS_SELECTOR, "#lesson li")}


def test_check_my_work_marks_the_lessons_steps(served: Served, browser: Any) -> None:
    """The lesson (swarm-basics, the default) judged read-only: a step is failed before the
    student does it and passed after, and the check itself creates nothing."""
    browser.get(served.student("a"))
    wait_until("manager1's terminal opens", lambda: pane_state(browser, "manager1")
               .startswith("up"), 30)
    start = time.monotonic()
    before = lesson_marks(browser)
    took = time.monotonic() - start
    assert before is not None and len(before) == 10, before
    # 1 creates swarm_test1 (judged by its effect), 2 lists it: neither done yet. 4 scales:
    # only its command could be judged, so it is not checkable; 10 "it is gone" holds.
    assert (before[1], before[2], before[3]) == ("failed", "failed", "failed"), before
    assert before[4] == "not checkable read-only" and before[10] == "passed", before
    listed = subprocess.run(["docker", "exec", f"swarmlab-{CLASS}-a-manager1", "docker", "service",
                             "ls", "--format", "{{.Name}}"], capture_output=True, text=True)
    assert "swarm_test1" not in listed.stdout.split(), "the check created the service"
    type_in(browser, "manager1", "docker service create -d --no-resolve-image --name"
                                 " swarm_test1 swarmlab/busybox:latest sleep 3600\n")
    # Steps 1 and 2 both read 1/1, one after the other: wait until the service is there.
    after = wait_until("steps 1 and 2 marked passed", lambda: (lambda m: m if m and m[1] == m[2]
                       == "passed" else None)(lesson_marks(browser)), 90, every=2)
    assert (after[1], after[2], after[3]) == ("passed", "passed", "passed"), after
    assert after[4] == "not checkable read-only" and after[10] == "failed", after
    print(f"check my work: {took:.1f} s for 10 steps")
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "student-lesson.png"))
    type_in(browser, "manager1", "docker service rm swarm_test1\n")


def test_a_roster_change_while_serving_is_one_line(served: Served, tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("id,name\na,Ada Lovelace\n")
    up = run_cli("-f", str(served.lab_file), "class.up", "--roster", str(roster), timeout=300)
    assert up.code == 0, up.output
    line = wait_until("the server says the roster changed", lambda: next(
        (said for said in served.output if "roster changed" in said), None), 20)
    assert line.strip() == (f"class {CLASS}: the roster changed while serving (new: none;"
                            " left: b); restart class.serve to serve it as it is now")
    # b is still served until then: nothing was taken from under an open page.
    assert http(served.student("b"))[0] == 200
    roster.write_text("id,name\na,Ada Lovelace\nb,Bo Diddley\n")
    up = run_cli("-f", str(served.lab_file), "class.up", "--roster", str(roster), timeout=300)
    assert up.code == 0, up.output
    wait_until("the server says the roster is back", lambda: any(
        said.strip() == f"class {CLASS}: the roster is as served again"
        for said in served.output), 20)


def test_a_node_that_is_down_says_so_in_its_pane(served: Served, browser: Any) -> None:
    stopped = labelled_containers(f"{CLASS}-b", "worker1")
    assert len(stopped) == 1
    subprocess.run(["docker", "stop", "-t", "1", *stopped], check=True, capture_output=True)
    started = time.monotonic()
    browser.get(served.student("b"))
    state = wait_until("worker1's pane says down", lambda: pane_state(browser, "worker1")
                       if pane_state(browser, "worker1").startswith("down") else None, 10)
    assert time.monotonic() - started < 10 and "exited" in state, state
    wait_until("manager1's pane opens beside it", lambda: pane_state(browser, "manager1")
               .startswith("up"), 20)
    # The board counts it too, from the same looks (no SSH of its own).
    board = wait_until("the board shows b with 2 of 3 nodes up", lambda: next(
        row for row in json.loads(http(served.instructor + "board")[1])["students"]
        if row["student"] == "b" and row["summary"].get("nodes_up") == 2), 20)
    assert board["summary"]["nodes_total"] == 3


def test_the_instructor_breaks_a_lab_and_the_student_sees_it(
    served: Served, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    browser.get(served.student("a"))
    student_tab = browser.current_window_handle
    wait_until("a's picture", lambda: len(picture_nodes(browser)) == 3, 30)
    browser.switch_to.new_window("tab")
    instructor_tab = browser.current_window_handle
    browser.get(served.instructor)
    row = wait_until("a's row", lambda: browser.find_element(
        By.CSS_SELECTOR, 'tr[data-student="a"]'), 10)
    Select(row.find_element(By.CSS_SELECTOR, "select.failure")).select_by_value(
        "already-in-swarm")

    def job_of_a() -> tuple[str, str]:
        """The row's job state and text in one read: the page redraws between two reads."""
        return tuple(browser.execute_script(
            'const tr = document.querySelector(\'tr[data-student="a"]\');'
            ' return [tr.dataset.job, tr.querySelector("td.job").textContent];'))

    def finished(action: str) -> Callable[[], tuple[str, str] | None]:
        def probe() -> tuple[str, str] | None:
            state, text = job_of_a()
            return (state, text) if state in ("ok", "failed") and text.startswith(action) \
                else None
        return probe

    row.find_element(By.CSS_SELECTOR, 'button[data-action="break"]').click()
    state, job = wait_until("the break is done", finished("break"), 240, every=1)
    assert state == "ok", job
    done = time.monotonic()
    browser.switch_to.window(student_tab)
    changed = wait_until(
        "the student's picture shows the broken swarm",
        lambda: picture_nodes(browser) if picture_nodes(browser).get("manager2", "")
        .startswith("not in the swarm") else None, 10, every=0.2)
    # Docker's own words on the page: which manager answers first varies.
    text = browser.find_element(By.ID, "picture").text
    assert re.search("does not have a leader|not a swarm manager|no manager answers", text), text
    findings = wait_until("the doctor's finding on the student's page", lambda: [
        li.text for li in browser.find_elements(By.CSS_SELECTOR, "#doctor li.finding")], 10)
    seen_after = time.monotonic() - done
    assert seen_after <= 10, (seen_after, changed, findings)
    assert any("manager2" in finding for finding in findings), findings
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "student-broken.png"))
    Select(browser.find_element(By.ID, "lang")).select_by_value("zh")
    def chinese_text() -> str | None:
        # The list is redrawn with every picture: an element read mid-redraw is stale.
        from selenium.common.exceptions import StaleElementReferenceException

        with contextlib.suppress(StaleElementReferenceException):
            return " ".join(li.text for li in browser.find_elements(By.CSS_SELECTOR,
                                                                    "#doctor li"))
        return None

    chinese = wait_until("the doctor in Chinese", chinese_text, 10)
    assert re.search("[\u4e00-\u9fff]", chinese) and "原因分析" in chinese, chinese
    browser.switch_to.window(instructor_tab)
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-student="a"]')
    row.find_element(By.CSS_SELECTOR, 'button[data-action="check"]').click()

    seen = wait_until("the check is done", finished("check"), 120, every=1)
    board = json.loads(http(served.instructor + "board")[1])
    a_row = next(row for row in board["students"] if row["student"] == "a")
    assert a_row["job"]["action"] == "check" and a_row["job"]["state"] == "ok", (seen, a_row)
    assert a_row["grade"] and not a_row["grade"]["healthy"], a_row
    grade_cell = wait_until("a's grade on the board", lambda: row.find_element(
        By.CSS_SELECTOR, "td.grade").text, 10)
    assert grade_cell.startswith("NOT healthy"), (grade_cell, a_row)
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "instructor.png"))
    code, body = http(served.instructor + "grade.json")
    grade = {row["student"]: row for row in json.loads(body)["students"]}
    assert code == 200 and grade["a"]["checked"] and not grade["a"]["healthy"]
    assert grade["a"]["reasons"] and not grade["b"]["checked"], grade
    code, body = http(served.instructor + "grade.xml")
    suite = ElementTree.fromstring(body)
    steps = grade["a"]["lesson"]
    assert len(steps) == 10 and steps[3]["status"] == "not checkable read-only", steps
    failed = sum(step["status"] == "failed" for step in steps)
    unjudged = sum(step["status"] == "not checkable read-only" for step in steps)
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        str(2 + len(steps)), str(1 + failed), str(1 + unjudged))
    assert suite.find('testcase[@name="a: step 4 Scale it to 4 tasks"]/skipped') is not None

    # The fix button runs the failure's own fix (failure.fix): the quorum forced back, the
    # manager joined again. Proven on the lab itself, not by the board's words.
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-student="a"]')
    row.find_element(By.CSS_SELECTOR, 'button[data-action="fix"]').click()
    state, job = wait_until("the fix is done", finished("fix"), 300, every=1)
    assert state == "ok" and "already-in-swarm fixed" in job, job
    a_lab = served.lab_file.parent / "state" / f"{CLASS}.class" / "labs" / "a.yaml"
    status = run_cli("-f", str(a_lab), "lab.status", "--json", timeout=120)
    found = json.loads(status.stdout)
    assert status.code == 0 and not found["differences"], status.output
    assert found["broken"] == [], found["broken"]
    browser.close()
    browser.switch_to.window(student_tab)
    nodes = wait_until("the student's picture shows manager2 back in the swarm", lambda: (
        lambda seen: seen if sorted(seen.values()) == ["Leader", "Reachable", "Ready"] else None
    )(picture_nodes(browser)), 20, every=0.5)
    assert nodes["worker1"] == "Ready" and nodes["manager2"] in ("Leader", "Reachable"), nodes
    wait_until("the doctor's finding about manager2 is gone from the student's page", lambda:
               not any("manager2" in li.text for li in browser.find_elements(
                   By.CSS_SELECTOR, "#doctor li.finding")), 20, every=0.5)


def test_a_message_over_the_bound_is_refused_with_a_reason(served: Served) -> None:
    """A browser message past MAX_MESSAGE closes the terminal, saying why (1009)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from lab.web.app import MAX_MESSAGE

    url = served.student("b").replace("http", "ws", 1) + "term/manager1"
    with connect(url, open_timeout=30) as socket_:
        while socket_.recv(timeout=30) != "sup":
            pass
        socket_.send("i" + "x" * MAX_MESSAGE)  # one past the bound with its "i"
        said = []
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            while True:
                said.append(socket_.recv(timeout=20))
        closing = [m for m in said if m.startswith("sclosed")]
        assert closing and "too long" in closing[-1], said[-3:]
        assert socket_.close_code == 1009, (socket_.close_code, socket_.close_reason)


def test_a_reset_closes_the_students_terminals_and_says_why(served: Served,
                                                           browser: Any) -> None:
    """b's worker1 is still stopped (above): a reset to a swarm brings it back too."""
    browser.get(served.student("b"))
    wait_until("b's manager1 terminal opens", lambda: pane_state(browser, "manager1")
               .startswith("up"), 20)
    code, said = http(served.instructor + "act",
                      b'{"student": "b", "action": "reset", "to": "swarm"}')
    assert code == 200 and json.loads(said)["started"] == ["b"], said
    closed = wait_until("manager1's pane is closed, saying why", lambda: pane_state(
        browser, "manager1") if pane_state(browser, "manager1").startswith("closed") else None,
        60)
    assert "resetting your lab" in closed, closed

    def reset_job() -> dict[str, Any] | None:
        board = json.loads(http(served.instructor + "board")[1])
        job = next(row for row in board["students"] if row["student"] == "b")["job"]
        return job if job["state"] != "running" else None

    job = wait_until("the reset is done", reset_job, 300, every=2)
    assert job["state"] == "ok", job
    board = json.loads(http(served.instructor + "board")[1])
    assert next(row for row in board["students"] if row["student"] == "b")[
        "last_reset"]["to"] == "swarm"
    def swarm_anew() -> dict[str, str]:
        nodes = picture_nodes(browser)
        if sorted(nodes.values()) != ["Leader", "Reachable", "Ready"]:
            raise AssertionError(nodes)  # wait_until shows the last one
        return nodes

    nodes = wait_until("b's picture shows the swarm anew", swarm_anew, 20)
    assert nodes["worker1"] == "Ready", nodes
    type_in(browser, "manager1", "\n")  # Enter in a closed pane opens it again
    wait_until("manager1's terminal reopens", lambda: pane_state(browser, "manager1")
               .startswith("up"), 20)


def test_the_cards_carry_each_students_link_and_qr_code(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "cards.html"
    result = run_cli("-f", str(served.lab_file), "class.cards", "--out", str(out), timeout=120)
    assert result.code == 0, result.output
    page = out.read_text()
    for sid in STUDENTS:
        card = page.split(f'id="student-{sid}"', 1)[1].split("</section>", 1)[0]
        assert served.student(sid) in card
        assert '<div class="web"><svg' in card
        others = [served.secrets[other] for other in STUDENTS if other != sid]
        assert not any(secret in card for secret in others)


def test_an_idle_terminal_is_closed_and_enter_opens_a_new_shell(
    served: Served, browser: Any
) -> None:
    """A second server of the same class with --idle-seconds 10: a's terminal is closed 10 s
    after its last keystroke, the pane says so, and Enter opens a new shell.

    After the cards test: serving records its address in the class's folder (class.cards
    prints links from it), and this server's is another port.
    """
    port = free_port()
    server = subprocess.Popen(
        [*INVOKE, "-f", str(served.lab_file), "class.serve", "--listen", f"127.0.0.1:{port}",
         "--idle-seconds", str(IDLE_SECONDS)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout is not None
        said = []
        for line in server.stdout:
            said.append(line)
            if line.startswith("Ctrl-C stops") or server.poll() is not None:
                break
        assert said and said[-1].startswith("Ctrl-C stops"), "".join(said)
        threading.Thread(target=server.stdout.read, daemon=True).start()  # never blocks it
        browser.get(f"http://127.0.0.1:{port}/s/a/{served.secrets['a']}/")
        wait_until("manager1's terminal opens", lambda: pane_state(browser, "manager1")
                   .startswith("up"), 30)
        # A keystroke a few seconds in: the bound counts from the last one, not from the open.
        time.sleep(IDLE_SECONDS / 2)
        type_in(browser, "manager1", "true\n")
        typed = time.monotonic()
        closed = wait_until("manager1's pane is closed for want of keystrokes", lambda: (
            lambda state: state if state.startswith("closed") else None
        )(pane_state(browser, "manager1")), IDLE_SECONDS + 20, every=0.2)
        quiet = time.monotonic() - typed
        sentence = f"closed after {IDLE_SECONDS} seconds without a keystroke"
        assert sentence in closed, closed
        assert quiet >= IDLE_SECONDS - 0.5, f"closed {quiet:.1f} s after the last keystroke"
        # The student reads it in the terminal itself, with what to do next (compared without
        # white space: a narrow pane wraps the line anywhere).
        shown = terminal_text(browser, "manager1")
        assert "".join(f"[closed: {sentence}; press Enter to reconnect]".split()) in "".join(
            shown.split()), shown
        type_in(browser, "manager1", "\n")
        wait_until("Enter opens manager1's terminal again", lambda: pane_state(
            browser, "manager1").startswith("up"), 30)
        type_in(browser, "manager1", "echo new-shell-$((6*7))\n")
        wait_until("the new shell answers", lambda: "new-shell-42" in terminal_text(
            browser, "manager1"), 20)
    finally:
        # Away from its page first: uvicorn's shutdown waits for the page's open event stream.
        with contextlib.suppress(Exception):
            browser.get("about:blank")
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_the_server_survives_the_class_going_down_under_open_pages(
    served: Served, browser: Any
) -> None:
    """Last of the lab tests: class.down with a's terminals and picture open."""
    browser.get(served.student("a"))
    wait_until("a's terminals open", lambda: all(
        pane_state(browser, node).startswith("up") for node in ("manager1", "worker1")), 20)
    down = run_cli("-f", str(served.lab_file), "class.down", timeout=600)
    assert down.code == 0, down.output
    wait_until("every pane says it closed or is down", lambda: all(
        pane_state(browser, node).split()[0] in ("closed", "down")
        for node in ("manager1", "manager2", "worker1")), 20)
    wait_until("the picture says the lab is gone", lambda: all(
        state.startswith("down") for state in picture_nodes(browser).values()), 20)
    assert http(served.base + "/")[0] == 404  # still serving
    assert http(served.instructor + "board")[0] == 200
    type_in(browser, "manager1", "\n")  # reopening a node that is gone: down, at once
    wait_until("manager1 says down", lambda: pane_state(browser, "manager1")
               .startswith("down"), 10)


def test_no_secret_in_the_servers_output(served: Served) -> None:
    """Runs last: by now every page and socket above went through the server."""
    said = "".join(served.output)
    for secret in served.secrets.values():
        assert secret not in said
    assert "GET /" not in said  # no access log: its paths carry secrets


@pytest.mark.parametrize("args, expected", [
    (("--listen", "localhost"), "error: --listen 'localhost' is not ADDRESS:PORT"),
    (("--tls-cert", "{tmp}/cert.pem", "--tls-key", "{tmp}/key.pem"),
     "error: --tls-cert {tmp}/cert.pem with --tls-key {tmp}/key.pem does not load"),
    (("--listen", "127.0.0.1:{busy}"), "error: cannot listen on 127.0.0.1:{busy}: Address"
                                       " already in use"),
    (("--idle-seconds", "half an hour"), "error: --idle-seconds is 'half an hour'; allowed: a"
                                         " whole number from 10 to 86400"),
    (("--idle-seconds", "5"), "error: --idle-seconds is 5; allowed: a whole number from 10"),
])
def test_serving_mistakes_are_one_line(tmp_path: Path, args: tuple[str, ...],
                                       expected: str) -> None:
    """No lab needs to be up for these: lab.serve checks before it serves."""
    lab_file = write_lab(tmp_path, "t-h9-x", 219).file
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    (tmp_path / "key.pem").write_text("not a key\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {"tmp": str(tmp_path), "busy": busy.getsockname()[1]}
        result = run_cli("-f", str(lab_file), "lab.serve",
                         *(arg.format(**values) for arg in args), timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.code != 0 and len(lines) == 1, result.output
    assert lines[0].startswith(expected.format(**values)), lines
    assert "Traceback" not in result.output


def test_the_picture_escapes_what_nodes_say() -> None:
    """Names and errors come from the nodes: a hostile one is text in the SVG, never markup."""
    from lab.web import picture

    view = picture.SwarmView([picture.NodeView("manager1", "manager", True, "active"),
                              picture.NodeView("worker1", "worker", False, "exited")])
    hostile = '<script>alert(1)</script>"'
    output = "\n".join([
        json.dumps({"Hostname": "manager1", "Status": "Ready", "ManagerStatus": "Leader"}),
        "not json", picture.SEPARATOR,
        json.dumps({"Name": hostile, "Replicas": "1/1", "Mode": "replicated", "Ports": ""}),
        picture.SEPARATOR,
        json.dumps({"Name": f"{hostile}.1", "Node": "manager1"}),
        picture.SEPARATOR, json.dumps({"Name": "ingress"}), json.dumps({"Name": "appnet"})])
    drawn = picture.svg(picture.parse(view, output, "manager1"))
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn
    assert view.networks == ["appnet", "ingress"]
    assert view.nodes[0].tasks == [f"{hostile}.1"] and not view.nodes[1].listed
    assert 'data-state="down (exited)"' in drawn
    assert view.summary()["swarm"] == "partial" and view.summary()["nodes_up"] == 1


def test_the_idle_bound_is_said_in_the_units_it_was_given() -> None:
    """The pane's sentence for the default (whole minutes) and for short bounds."""
    from lab.web.app import IDLE, spoken

    assert (spoken(IDLE), spoken(60), spoken(90), spoken(10)) == (
        "30 minutes", "1 minute", "90 seconds", "10 seconds")


def test_links_and_the_junit_grade(tmp_path: Path) -> None:
    from lab.classroom.links import Links
    from lab.web import grade, pages
    from lab.web.jobs import Grade
    from lab.web.room import lab_room

    links = Links.load(tmp_path, ["a", "b"])
    assert links.student_ok("a", links.students["a"])
    assert not links.student_ok("a", links.students["b"]) and not links.student_ok("c", "")
    assert not links.instructor_ok(links.students["a"])
    again = Links.load(tmp_path, ["a", "b"])
    assert again.students == links.students and again.instructor == links.instructor
    renewed = Links.load(tmp_path, ["a", "b"], renew=True)
    assert not set(renewed.students.values()) & set(links.students.values())
    spec = write_lab(tmp_path, "t-h9-g", 218)
    from lab.spec import parse_spec

    room = lab_room(parse_spec(yaml.safe_load(spec.file.read_text())))
    seat = room.seats[0].id
    # The board's rows are drawn from the state file at once, before any look.
    assert "not made · looking…" in pages.instructor(room)
    suite = ElementTree.fromstring(grade.as_junit(room, {}))
    assert (suite.get("skipped"), suite.get("failures")) == ("1", "0")
    suite = ElementTree.fromstring(grade.as_junit(room, {seat: Grade(False, ["x <&> y"], 0)}))
    assert suite.find("testcase/failure").get("message") == "x <&> y"


def test_only_questions_are_run_read_only() -> None:
    """The judge of "read-only": a query runs; anything that changes, redirects or chains
    does not (a check never runs a step's command that changes the lab)."""
    from lab.scenario.readonly import is_question

    for asked in ("docker service ls", "nslookup -type=a tasks.whoami", "ping -c 2 whoami",
                  "docker inspect --format '{{.Slot}} | x' $(docker service ps -q whoami)"):
        assert is_question(asked), asked
    for changes in ("docker service create --name x busybox", "docker service ls; reboot",
                    "docker service ls > /etc/motd", "docker inspect $(docker rm -f x)",
                    "docker service ls && docker swarm leave", "docker ps | sh",
                    "timeout 5 wget -qO- http://whoami:8000", "docker service ls `reboot`"):
        assert not is_question(changes), changes
