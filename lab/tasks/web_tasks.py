"""`class.serve` and `lab.serve`: the class in a browser (lab/web), added to the `class` and
`lab` collections by lab/cli.py."""

from __future__ import annotations

from invoke import Context, task

from ..config import load_spec, project_dir
from ..web.app import IDLE
from ..web.room import DEFAULT_LESSON, class_room, lab_room
from ..web.room import lesson as load_lesson
from ..web.serve import DEFAULT_LISTEN, IDLE_LEAST, IDLE_MOST, serve
from .common import say, user_errors

HELP = {
    "listen": f"ADDRESS:PORT to serve on (default {DEFAULT_LISTEN}: this machine only)",
    "tls_cert": "PEM certificate for HTTPS (with --tls-key)",
    "tls_key": "PEM private key of --tls-cert",
    "new_secrets": "make new links for everyone (every earlier link stops working)",
    "lesson": f"the scenario whose steps \"check my work\" judges (default {DEFAULT_LESSON})",
    "provider": "local, vagrant or vmware; default: the one the labs were made with",
    "idle_seconds": f"close a terminal after this many seconds without a keystroke, from"
                    f" {IDLE_LEAST} to {IDLE_MOST} (default {IDLE}: {IDLE // 60} minutes)",
}
# Taken as text and checked by serve(): invoke's own cast of a bad number ends in a traceback.
IDLE_TEXT = str(IDLE)


@task(name="serve", help=HELP)
@user_errors
def class_serve(ctx: Context, listen: str = DEFAULT_LISTEN, tls_cert: str = "",
                tls_key: str = "", new_secrets: bool = False, lesson: str = DEFAULT_LESSON,
                provider: str | None = None, idle_seconds: str = IDLE_TEXT) -> None:
    """Serve the class's pages: each student's terminals and swarm, the instructor's board."""
    from .class_tasks import open_class

    plan, _record = open_class(ctx, provider)
    room = class_room(plan, load_lesson(project_dir(ctx), lesson))
    serve(room, listen=listen, tls_cert=tls_cert, tls_key=tls_key, new_secrets=new_secrets,
          say=say, idle_seconds=idle_seconds)


@task(name="serve", help=HELP)
@user_errors
def lab_serve(ctx: Context, listen: str = DEFAULT_LISTEN, tls_cert: str = "",
              tls_key: str = "", new_secrets: bool = False, lesson: str = DEFAULT_LESSON,
              provider: str | None = None, idle_seconds: str = IDLE_TEXT) -> None:
    """Serve this lab's page (terminals, the swarm's picture) and an instructor's board."""
    room = lab_room(load_spec(ctx, provider=provider), load_lesson(project_dir(ctx), lesson))
    serve(room, listen=listen, tls_cert=tls_cert, tls_key=tls_key, new_secrets=new_secrets,
          say=say, idle_seconds=idle_seconds)
