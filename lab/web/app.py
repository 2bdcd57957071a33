"""The ASGI app: the student's page, the instructor's board, their live feeds and actions.

Every URL carries its secret (`/s/<student>/<secret>/...`, `/i/<secret>/...`): a page is
opened by following a link, with nothing to type. So the server logs no request paths
(serve.py turns uvicorn's access log off), pages send no Referer, and a student's secret
opens only that student's routes: nothing a student can reach names another student.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..classroom.links import Links
from ..errors import LabError
from . import grade, lesson, pages
from .jobs import Jobs
from .room import Room, Seat
from .terminal import QUEUE, Shell, start_pump
from .watch import Watch

STATIC = Path(__file__).parent / "static"
MAX_TERMINALS = 8  # open terminals per student, all nodes together
MAX_MESSAGE = 16 * 1024  # one browser message (a paste); uvicorn's ws_max_size matches it
IDLE = 30 * 60  # seconds: a terminal with no keystroke for this long is closed (--idle-seconds)
OPEN_DEADLINE = 15.0  # a node that gives no shell by then is "down" in its pane
HEARTBEAT = 15.0
ROSTER_EVERY = 5.0  # how often the class's record is read for a roster change
HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline';"
                               " img-src 'self' data:; frame-ancestors 'none'",
}


class Session:
    """One open terminal, so a reset can close it and say why."""

    def __init__(self, student: str, node: str, websocket: WebSocket, shell: Shell):
        self.student, self.node = student, node
        self.websocket, self.shell = websocket, shell
        self.reason = ""


class Server:
    def __init__(self, room: Room, links: Links, period: float | None = None,
                 idle: float = IDLE):
        self.room = room
        self.links = links
        self.idle = idle
        # Looks, actions and shells' setup; a shell's reading has a thread of its own.
        self.pool = ThreadPoolExecutor(max_workers=max(8, min(64, 2 * len(room.seats))),
                                       thread_name_prefix="web")
        self.watches = {seat.id: Watch(seat, self.pool, **({"period": period} if period
                                                            else {}))
                        for seat in room.seats}
        self.sessions: dict[str, set[Session]] = {seat.id: set() for seat in room.seats}
        self.jobs = Jobs(self.pool, room.failures, self.close_terminals, self._reset_done,
                         room.lesson)
        self.checking: set[str] = set()  # students whose "check my work" is running
        self.resets: dict[str, dict[str, Any]] = {}

    # --- shared -----------------------------------------------------------------------
    def _reset_done(self, student: str, to: str) -> None:
        self.resets[student] = {"to": to, "at": time.time()}

    def close_terminals(self, student: str, reason: str = "") -> None:
        """Close a student's terminals (blocking-safe: called from a job's thread)."""
        why = reason or "the instructor is resetting your lab; reopen it when that is done"
        for session in list(self.sessions.get(student, ())):
            session.reason = why
            session.shell.close()

    def seat_for(self, request: Request | WebSocket) -> Seat | None:
        student = request.path_params.get("student", "")
        token = request.path_params.get("token", "")
        if not self.links.student_ok(student, token):
            return None
        return self.room.seat(student)

    def instructor(self, request: Request) -> bool:
        return self.links.instructor_ok(request.path_params.get("token", ""))

    # --- student ----------------------------------------------------------------------
    async def student_page(self, request: Request) -> Response:
        seat = self.seat_for(request)
        if seat is None:
            return forbidden()
        return HTMLResponse(pages.student(seat, self.room.lesson), headers=HEADERS)

    async def check_work(self, request: Request) -> Response:
        """The lesson's steps judged read-only on this student's own lab; one at a time."""
        seat = self.seat_for(request)
        if seat is None or not same_origin(request):
            return forbidden()
        if self.room.lesson is None:
            return JSONResponse({"error": "this class has no lesson"}, 404, headers=HEADERS)
        if seat.id in self.checking:
            return JSONResponse({"error": "a check of your lab is running already"}, 409,
                                headers=HEADERS)
        self.checking.add(seat.id)
        try:
            steps = await asyncio.get_running_loop().run_in_executor(
                self.pool, lesson.check, seat.spec, self.room.lesson)
        except LabError as exc:
            return JSONResponse({"error": str(exc)}, 503, headers=HEADERS)
        finally:
            self.checking.discard(seat.id)
        return JSONResponse({"lesson": self.room.lesson.title, "steps": steps},
                            headers=HEADERS)

    async def picture_events(self, request: Request) -> Response:
        seat = self.seat_for(request)
        if seat is None:
            return forbidden()
        watch = self.watches[seat.id]
        return StreamingResponse(self._picture_stream(request, watch),
                                 media_type="text/event-stream", headers=HEADERS)

    async def _picture_stream(self, request: Request, watch: Watch) -> AsyncIterator[str]:
        watch.viewers += 1
        watch.start()
        watch.ask()
        seen = 0
        try:
            while not await request.is_disconnected():
                if watch.version != seen and watch.view is not None:
                    seen = watch.version
                    yield sse("picture", {"svg": watch.svg, "summary": watch.summary,
                                          "doctor": watch.doctor, "version": seen})
                    continue
                version = await watch.next_version(seen, HEARTBEAT)
                if version == seen:
                    yield ": still here\n\n"
        finally:
            watch.viewers -= 1

    async def terminal(self, websocket: WebSocket) -> None:
        seat = self.seat_for(websocket)
        if seat is None or not same_origin(websocket):
            await websocket.close(code=1008)
            return
        node = websocket.path_params["node"]
        if node not in {n.name for n in seat.spec.nodes}:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        open_now = self.sessions[seat.id]
        if len(open_now) >= MAX_TERMINALS:
            await websocket.send_text(f"sfull {MAX_TERMINALS} terminals are open already;"
                                      " close one first")
            await websocket.close()
            return
        cols, rows = size(websocket.query_params.get("cols"), websocket.query_params.get("rows"))
        shell = Shell(seat.spec, node, cols, rows)
        session = Session(seat.id, node, websocket, shell)
        open_now.add(session)
        loop = asyncio.get_running_loop()
        try:
            await websocket.send_text("sconnecting")
            try:
                await asyncio.wait_for(loop.run_in_executor(self.pool, shell.open),
                                       OPEN_DEADLINE)
            except (LabError, TimeoutError) as exc:
                why = str(exc) or f"no answer within {OPEN_DEADLINE:g} s"
                await websocket.send_text(f"sdown {why}")
                return
            await websocket.send_text("sup")
            await self._bridge(websocket, shell, session)
        except WebSocketDisconnect:
            pass
        finally:
            open_now.discard(session)
            shell.close()
            with contextlib.suppress(Exception):
                await websocket.close()

    async def _bridge(self, websocket: WebSocket, shell: Shell, session: Session) -> None:
        queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE)
        await start_pump(shell, queue)
        loop = asyncio.get_running_loop()

        async def downstream() -> None:
            while (text := await queue.get()) is not None:
                await websocket.send_text("o" + text)
            await websocket.send_text(f"sclosed {session.reason or 'the shell ended'}")

        sender = asyncio.create_task(downstream())
        receiver: asyncio.Future[str] | None = None
        try:
            while True:
                # Whichever comes first: a keystroke, the shell's end (a reset closes it
                # from another thread), or the idle bound.
                receiver = asyncio.ensure_future(websocket.receive_text())
                done, _ = await asyncio.wait({receiver, sender}, timeout=self.idle,
                                             return_when=asyncio.FIRST_COMPLETED)
                if sender in done:
                    break
                if not done:
                    session.reason = f"closed after {spoken(self.idle)} without a keystroke"
                    receiver.cancel()
                    shell.close()
                    continue
                message = receiver.result()
                if len(message) > MAX_MESSAGE:
                    # Refused whole, never half-typed, and said: a silent drop looks like a
                    # hung terminal. The pane says why; Enter opens a new one.
                    session.reason = (f"a message of {len(message)} characters is too long"
                                      f" (at most {MAX_MESSAGE}); paste less at once")
                    shell.close()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(sender, 5)
                    await websocket.close(code=1009, reason="message too long")
                    break
                if message.startswith("i"):
                    await loop.run_in_executor(self.pool, shell.write, message[1:])
                elif message.startswith("r"):
                    shell.resize(*size(*message[1:].partition("x")[::2]))
        finally:
            if receiver is not None and not receiver.done():
                receiver.cancel()
            # The browser went away: end the shell first, so its reader stops and the
            # sender finishes now rather than at its timeout.
            shell.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, 5)
            sender.cancel()

    # --- instructor -------------------------------------------------------------------
    async def instructor_page(self, request: Request) -> Response:
        if not self.instructor(request):
            return forbidden()
        for watch in self.watches.values():
            # The first looks start with the page, not with its first fetch of the board.
            watch.start()
            watch.ask()
        return HTMLResponse(pages.instructor(self.room), headers=HEADERS)

    def board(self) -> dict[str, Any]:
        rows = []
        for seat in self.room.seats:
            watch = self.watches[seat.id]
            watch.start()
            watch.ask()
            job = self.jobs.current.get(seat.id)
            grade_ = self.jobs.grades.get(seat.id)
            rows.append({
                "student": seat.id, "name": seat.name, "lab": seat.spec.name,
                "summary": watch.summary, "version": watch.version,
                "terminals": len(self.sessions[seat.id]),
                "job": job.shown() if job else None,
                "grade": {"healthy": grade_.healthy, "reasons": grade_.reasons,
                          "steps": grade_.steps}
                if grade_ else None,
                "last_reset": self.resets.get(seat.id),
            })
        return {"room": self.room.title, "students": rows, "failures": list(self.room.failures)}

    async def board_json(self, request: Request) -> Response:
        if not self.instructor(request):
            return forbidden()
        return JSONResponse(self.board(), headers=HEADERS)

    async def act(self, request: Request) -> Response:
        if not self.instructor(request) or not same_origin(request):
            return forbidden()
        try:
            asked = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, 400)
        if not isinstance(asked, dict):
            return JSONResponse({"error": "the body must be a JSON object"}, 400)
        action = str(asked.get("action", ""))
        failure, to = str(asked.get("failure", "")), str(asked.get("to", "prepared"))
        wrong = self.jobs.check_request(action, failure, to)
        if wrong:
            return JSONResponse({"error": wrong}, 400)
        who = str(asked.get("student", ""))
        seats = list(self.room.seats) if who == "*" else [s for s in self.room.seats
                                                          if s.id == who]
        if not seats:
            return JSONResponse({"error": f"no student {who!r}"}, 404)
        started, busy = [], []
        for seat in seats:
            if self.jobs.busy(seat.id):
                busy.append(seat.id)
                continue
            self.jobs.start(seat, action, failure, to)
            started.append(seat.id)
        return JSONResponse({"started": started, "busy": busy}, headers=HEADERS)

    async def grade_file(self, request: Request) -> Response:
        if not self.instructor(request):
            return forbidden()
        kind = request.path_params["kind"]
        if kind not in ("json", "xml"):
            return PlainTextResponse("grade.json or grade.xml (JUnit)\n", 404)
        if kind == "json":
            body, media = grade.as_json(self.room, self.jobs.grades), "application/json"
        else:
            body, media = grade.as_junit(self.room, self.jobs.grades), "application/xml"
        name = f"grade-{self.room.title.split()[-1]}.{kind}"
        return Response(body, media_type=media, headers={
            **HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})

    async def watch_roster(self, say: Callable[[str], None]) -> None:
        """Say once, in one line, when the class's roster no longer matches what is served."""
        if self.room.roster is None:
            return
        served = frozenset(seat.id for seat in self.room.seats)
        told = served
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(ROSTER_EVERY)
            try:
                now = await loop.run_in_executor(self.pool, self.room.roster)
            except LabError:
                continue  # a record being rewritten; the next look reads it whole
            if now != told:
                told = now
                if now == served:
                    say(f"{self.room.title}: the roster is as served again")
                    continue
                new = ", ".join(sorted(now - served)) or "none"
                left = ", ".join(sorted(served - now)) or "none"
                say(f"{self.room.title}: the roster changed while serving (new: {new}; left:"
                    f" {left}); restart class.serve to serve it as it is now")

    async def shutdown(self) -> None:
        for student in self.sessions:
            self.close_terminals(student, "the server is stopping")
        for watch in self.watches.values():
            await watch.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)


def forbidden() -> Response:
    return PlainTextResponse("403: this link does not open this page\n", 403, headers=HEADERS)


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def size(cols: Any, rows: Any) -> tuple[int, int]:
    """A terminal's size from the browser, kept to sane bounds."""
    def bounded(value: Any, default: int, top: int) -> int:
        try:
            return max(2, min(top, int(value)))
        except (TypeError, ValueError):
            return default
    return bounded(cols, 80, 500), bounded(rows, 24, 200)


def spoken(seconds: float) -> str:
    """A duration as the pane says it: in minutes when it is whole minutes."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = seconds / 60
        return f"{minutes:g} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def same_origin(request: Request | WebSocket) -> bool:
    """A browser's cross-site request or socket (another page's script) is refused."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def make_app(room: Room, links: Links, period: float | None = None,
             say: Callable[[str], None] = print, idle: float = IDLE) -> Starlette:
    server = Server(room, links, period, idle)

    async def nothing(request: Request) -> Response:
        return PlainTextResponse("swarmlab: open the link you were given\n", 404,
                                 headers=HEADERS)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        roster = asyncio.get_running_loop().create_task(server.watch_roster(say))
        yield
        roster.cancel()
        await server.shutdown()

    app = Starlette(routes=[
        Route("/", nothing),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/s/{student}/{token}/", server.student_page),
        Route("/s/{student}/{token}/events", server.picture_events),
        Route("/s/{student}/{token}/check", server.check_work, methods=["POST"]),
        WebSocketRoute("/s/{student}/{token}/term/{node}", server.terminal),
        Route("/i/{token}/", server.instructor_page),
        Route("/i/{token}/board", server.board_json),
        Route("/i/{token}/act", server.act, methods=["POST"]),
        Route("/i/{token}/grade.{kind:str}", server.grade_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], lifespan=lifespan)
    app.state.server = server
    return app
