"""`lab.doctor`: the lab's health, each finding with what was seen, the cause and the fix.

Exit 0 only when nothing is wrong (no error, no warning, nothing that could not be checked);
what this host cannot offer (no IPVS in a shared kernel) is reported as unavailable and does
not fail it.
"""

from __future__ import annotations

from invoke import Context, task
from invoke.exceptions import Exit

from ..doctor import examine, exit_code
from ..doctor.report import as_json, show
from ..doctor.text import language
from ..lifecycle import require_up
from ..scenario.display import Console
from .common import open_lab, say, user_errors


@task(help={"json": "print one JSON object with every finding",
            "lang": "en or zh (default: from LC_ALL / LANG)",
            "provider": "local (default), vagrant or vmware; overrides the lab file"})
@user_errors
def doctor(ctx: Context, json_: bool = False, lang: str = "", provider: str | None = None) -> None:
    """Check clocks, firewalls, ports, overlay, membership, certificates, networks, IPVS."""
    chosen = language(lang)
    with open_lab(ctx, provider, log=say) as lab:
        require_up(lab)
        findings = examine(lab)
        code = exit_code(findings)
        if json_:
            say(as_json(lab.spec.name, lab.spec.provider, findings, chosen, code))
        else:
            show(Console(), lab.spec.name, lab.spec.provider, findings, chosen, code)
    if code:
        raise Exit(code=code)
