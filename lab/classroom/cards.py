"""Printable handouts: one HTML page, one card per student, one printed page per card.

Plain HTML and CSS with no script and nothing fetched, so it opens anywhere and prints the
same: `@page` sets A4 margins, every card but the last forces a page break after it, and
cards never split across pages. On screen the cards show as framed sheets.
"""

from __future__ import annotations

import html
from pathlib import Path

from .. import hostkeys
from .links import student_urls
from .plan import ClassPlan, StudentLab

STYLE = """
@page { size: A4; margin: 14mm; }
* { box-sizing: border-box; }
body { font: 11pt/1.4 "DejaVu Sans", Arial, sans-serif; color: #111; margin: 0; }
.card { break-after: page; page-break-after: always; break-inside: avoid;
        page-break-inside: avoid; }
.card:last-of-type { break-after: auto; page-break-after: auto; }
h1 { font-size: 18pt; margin: 0 0 2mm; }
h2 { font-size: 12pt; margin: 6mm 0 2mm; border-bottom: 1px solid #888; }
.who { color: #444; margin: 0 0 4mm; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #999; padding: 1.5mm 2.5mm; text-align: left; }
th { background: #eee; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 9.5pt; overflow-wrap: anywhere; }
ol { padding-left: 6mm; } li { margin: 1.5mm 0; }
.note { border-left: 3px solid #888; padding-left: 3mm; }
.web { display: flex; gap: 6mm; align-items: center; }
.web svg { width: 34mm; height: 34mm; flex: none; }
.foot { margin-top: 8mm; font-size: 8.5pt; color: #555; }
@media screen {
  body { background: #ddd; }
  .card { background: #fff; width: 210mm; min-height: 297mm; margin: 8mm auto; padding: 14mm;
          box-shadow: 0 1px 4px rgba(0,0,0,.3); }
  .screen-only { text-align: center; padding: 4mm; }
}
@media print { .screen-only { display: none; } }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _inline(text: str) -> str:
    """Escape a step and set `backquoted` parts as code."""
    parts = text.split("`")
    return "".join(f"<code>{_e(p)}</code>" if i % 2 else _e(p) for i, p in enumerate(parts))


def qr_svg(text: str) -> str:
    """A QR code as inline SVG (no image library: qrcode draws the paths itself)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage)
    return image.to_string(encoding="unicode")


def _in_a_browser(url: str) -> str:
    if not url:
        return ""
    return (f'<h2>In a browser</h2><div class="web">{qr_svg(url)}<p>Open <code>{_e(url)}</code>'
            " (or scan the code): a terminal on each of your machines and a live picture of"
            " your swarm. The link is yours alone: do not share it.</p></div>")


def card(plan: ClassPlan, entry: StudentLab, url: str = "") -> str:
    spec = entry.spec
    first = spec.first_manager
    rows = "".join(
        f"<tr><td>{_e(n.name)}</td><td>{_e(n.role)}</td><td><code>{_e(n.address)}</code></td>"
        f"</tr>" for n in spec.nodes
    )
    key = Path(spec.state_dir) / spec.name / hostkeys.KEY_NAME
    values = {"first_manager": first.name, "first_manager_address": first.address,
              "lab": spec.name, "subnet": spec.subnet}
    steps = "".join(f"<li>{_inline(step.format(**values))}</li>"
                    for step in plan.settings.instructions)
    note = f'<h2>Note</h2><p class="note">{_e(entry.student.note)}</p>' \
        if entry.student.note else ""
    return f"""<section class="card" id="student-{_e(entry.id)}">
<h1>{_e(entry.student.name)}</h1>
<p class="who">Class <b>{_e(plan.name)}</b> · student id <code>{_e(entry.id)}</code> ·
lab <code>{_e(spec.name)}</code> · network <code>{_e(spec.subnet)}</code></p>
<h2>Your machines</h2>
<table><thead><tr><th>node</th><th>role</th><th>address</th></tr></thead>
<tbody>{rows}</tbody></table>
{_in_a_browser(url)}
<h2>How to log in</h2>
<p>On the class machine: <code>invoke -f {_e(entry.lab_file)} lab.ssh {_e(first.name)}</code>
(any node name instead of {_e(first.name)}).</p>
<p>With SSH: <code>ssh -i {_e(key)} {_e(spec.ssh.user)}@{_e(first.address)}</code>
(the lab's own key; ask for it if you work from another machine).</p>
<h2>What to do</h2>
<ol>{steps}</ol>
{note}
<p class="foot">swarmlab · {_e(plan.name)} · {_e(entry.id)} · the machines are yours alone:
nobody else's lab shares their names or addresses.</p>
</section>"""


def render(plan: ClassPlan) -> str:
    urls = student_urls(plan.directory)  # after a class.serve; none before
    cards = "\n".join(card(plan, entry, urls.get(entry.id, "")) for entry in plan.labs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{_e(plan.name)}: lab cards</title>
<style>{STYLE}</style></head>
<body>
<p class="screen-only">{len(plan.labs)} cards for class {_e(plan.name)}: print this page,
one sheet a student.</p>
{cards}
</body></html>
"""


def write(plan: ClassPlan, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(plan), encoding="utf-8")
    return path
