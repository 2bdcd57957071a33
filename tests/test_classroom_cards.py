"""The cards in a real browser: Debian's chromium, headless, prints one page per student."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.classroom import cards
from tests.test_classroom_plan import plan_for

pytestmark = [
    pytest.mark.classroom,
    pytest.mark.skipif(shutil.which("chromium") is None,
                       reason="chromium is absent: apt-get install --no-install-recommends"
                              " chromium (scripts/host-setup does)"),
]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
# A long note and a long name must still fit their student's one page.
ROSTER = ("id,name,note\n"
          "ann,Ann Lee,\n"
          "ben,Benedict Timothy Carlton Cumberbatch-Okafor," + "Bring your laptop. " * 20 + "\n"
          "cy,Cy Twombly,\n"
          "dee,Dee <&> Quotes \"here\",\n")


def browse(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"  # a fresh one
    return subprocess.run(["chromium", *FLAGS, f"--user-data-dir={profile}", *args,
                           page.as_uri()], capture_output=True, text=True, timeout=120)


def test_cards_print_one_page_per_student(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, ROSTER)
    page = cards.write(plan, tmp_path / "cards.html")
    pdf = tmp_path / "cards.pdf"
    printed = browse(tmp_path, page, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    assert printed.returncode == 0 and pdf.exists(), printed.stderr
    data = pdf.read_bytes()
    # One sheet a student: no card spills onto a second page, no two share one; A4 sheets.
    assert len(re.findall(rb"/Type\s*/Page\b", data)) == len(plan.labs) == 4
    assert re.search(rb"/MediaBox \[0 0 59[45]\.\d+ 84[12]\.\d+\]", data)

    dom = browse(tmp_path, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr
    assert dom.stdout.count('class="card"') == 4
    for entry in plan.labs:
        assert f'id="student-{entry.id}"' in dom.stdout
        assert f"root@{entry.spec.first_manager.address}" in dom.stdout
    assert "Dee &lt;&amp;&gt; Quotes" in dom.stdout

    shot = tmp_path / "cards.png"
    taken = browse(tmp_path, page, "--window-size=900,1300", f"--screenshot={shot}")
    assert taken.returncode == 0, taken.stderr
    assert shot.stat().st_size > 10_000  # a rendered sheet, not a blank page
