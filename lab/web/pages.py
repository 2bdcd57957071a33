"""The two pages, as HTML the server fills in; their scripts are static files of the
package (no inline script, so the Content-Security-Policy can forbid it)."""

from __future__ import annotations

import html
from typing import Any

from ..errors import LabError
from ..scenario.model import Scenario
from ..state import LabState
from .jobs import RESET_TARGETS
from .room import Room, Seat

VENDOR = "/static/vendor"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _head(title: str, *, xterm: bool) -> str:
    vendor = (f'<link rel="stylesheet" href="{VENDOR}/xterm.css">'
              f'<script src="{VENDOR}/xterm.js"></script>'
              f'<script src="{VENDOR}/addon-fit.js"></script>') if xterm else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="referrer" content="no-referrer">'
            f"<title>{_e(title)}</title>{vendor}"
            f'<link rel="stylesheet" href="/static/page.css"></head>')


def _lesson(lesson: Scenario | None) -> str:
    if lesson is None:
        return ""
    steps = "".join(f'<li data-step="{number}" data-status="">{_e(step.name)}'
                    ' <span class="mark"></span><div class="why"></div></li>'
                    for number, step in enumerate(lesson.steps, 1))
    return (f'<h2>Lesson: {_e(lesson.title)}</h2><p><button id="check-work">check my work'
            '</button> <span id="checked"></span></p>'
            f'<ol id="lesson">{steps}</ol>')


def student(seat: Seat, lesson: Scenario | None = None) -> str:
    panes = "".join(
        f'<section class="pane" data-node="{_e(node.name)}">'
        f'<header><b>{_e(node.name)}</b> <span class="role">{_e(node.role)}</span>'
        f' <code>{_e(node.address)}</code> <span class="state">…</span></header>'
        f'<div class="term"></div></section>'
        for node in seat.spec.nodes)
    return (_head(f"{seat.name}: swarm lab", xterm=True)
            + f'<body class="student"><h1>{_e(seat.name)} <small>lab {_e(seat.spec.name)}'
            "</small></h1>"
            '<div class="layout"><div class="terminals">' + panes + "</div>"
            '<aside><h2>Your swarm <small id="seen"></small></h2>'
            '<div id="picture">waiting for the first look at your lab…</div>'
            '<h2>The doctor says <select id="lang"><option value="en">English</option>'
            '<option value="zh">中文</option></select></h2>'
            '<ul id="doctor"><li>…</li></ul>' + _lesson(lesson) + "</aside></div>"

            '<script src="/static/student.js"></script></body></html>')


def known(seat: Seat) -> dict[str, Any]:
    """What the lab's state file says, read without SSH: the board's rows are drawn from it
    at once, and the live looks fill them in as they come (a first look at thirty labs takes
    seconds; a file read takes a millisecond)."""
    try:
        state = LabState.load(seat.spec.state_dir, seat.spec.name)
    except LabError:
        return {"made": False, "machines": 0, "broken": []}
    return {"made": state.exists, "machines": len(state.machines),
            "broken": sorted(state.broken)}


def _known_cells(seat: Seat) -> str:
    facts = known(seat)
    total = len(seat.spec.nodes)
    made = (f"{facts['machines']}/{total} made" if facts["made"] else "not made")
    broken = ", ".join(facts["broken"])
    return (f'<td class="nodes">{_e(made)} · looking…</td>'
            f'<td class="swarm">{_e("breaks in place: " + broken) if broken else "…"}</td>')


def instructor(room: Room) -> str:
    failures = "".join(f'<option value="{_e(f)}">{_e(f)}</option>' for f in room.failures)
    targets = "".join(f'<option value="{_e(t)}">{_e(t)}</option>' for t in RESET_TARGETS)
    rows = "".join(
        f'<tr data-student="{_e(seat.id)}"><td><b>{_e(seat.id)}</b><br>{_e(seat.name)}</td>'
        + _known_cells(seat) + '<td class="services"></td>'
        '<td class="doctor"></td>'
        '<td class="terms"></td><td class="grade"></td><td class="reset"></td>'
        '<td class="actions">'
        f'<select class="failure">{failures}</select>'
        '<button data-action="break">break</button><button data-action="fix">fix</button>'
        '<button data-action="check">check</button>'
        f'<select class="to">{targets}</select><button data-action="reset">reset</button>'
        '</td><td class="job"></td></tr>'
        for seat in room.seats)
    lesson = (f' <span class="lesson">lesson: {_e(room.lesson.title)}</span>'
              if room.lesson else "")
    return (_head(f"{room.title}: instructor", xterm=False)
            + f'<body class="instructor"><h1>{_e(room.title)} <small>instructor</small></h1>'
            '<p class="bar">for everyone: <button id="check-all">check</button>'
            f' <select id="failure-all">{failures}</select>'
            ' <button id="break-all">break</button> <button id="fix-all">fix</button>'
            f' <select id="to-all">{targets}</select> <button id="reset-all">reset</button>'
            ' · <a href="grade.json" download>grade (JSON)</a>'
            ' <a href="grade.xml" download>grade (JUnit)</a>' + lesson
            + ' <span id="said"></span></p>'
            '<table id="board"><thead><tr><th>student</th><th>nodes up</th><th>swarm</th>'
            "<th>services</th><th>doctor</th><th>terminals</th><th>grade</th><th>last reset</th>"
            "<th>actions</th>"
            f"<th>last action</th></tr></thead><tbody>{rows}</tbody></table>"
            '<script src="/static/instructor.js"></script></body></html>')
