"""`perfdoctor view PATH`: the viewer on a local web server (the same pages as the TensorBoard tab),
bound to the loopback interface only, answering only requests addressed to it by a loopback name
(a page elsewhere cannot reach it through DNS rebinding).
"""

from __future__ import annotations

import socketserver
import sys
import webbrowser
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..errors import PerfdoctorError
from .app import Environ, Response, StartResponse, ViewerApp

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


class LoopbackOnly:
    """Refuses requests whose Host header is not this server's loopback address."""

    def __init__(self, app: ViewerApp, port: int) -> None:
        self.app = app
        self.allowed = {f"{name}:{port}" for name in LOOPBACK_NAMES}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Any:
        if environ.get("HTTP_HOST", "") not in self.allowed:
            return Response("perfdoctor view answers on its loopback address only\n", "text/plain; charset=utf-8", "403 Forbidden")(environ, start_response)
        return self.app(environ, start_response)


def start_page(app: ViewerApp) -> str:
    """Where the browser opens: the report of the one run given, else the runs' page."""
    runs = app.runs()
    if len(runs) == 1 and runs[0].has_report() and runs[0].report_html and runs[0].report_html.is_file():
        return f"runs/{quote(runs[0].id)}/report.html"
    return "index.html"


def serve(path: Path, port: int = 0, open_browser: bool = True, out: TextIO = sys.stderr) -> int:
    if not path.exists():
        raise PerfdoctorError(f"no such file or directory: {path}")
    if not path.is_dir():
        raise PerfdoctorError(f"{path} is not a directory: give a run directory, a folder of runs, or a folder of traces")
    app = ViewerApp(path)
    if not app.runs():
        raise PerfdoctorError(f"nothing to view in {path}: no perfdoctor run directory and no *.pt.trace.json[.gz] file below it")
    try:
        server = make_server("127.0.0.1", port, LoopbackOnly(app, port), server_class=_Server, handler_class=_QuietHandler)
    except OSError as error:
        raise PerfdoctorError(f"cannot listen on 127.0.0.1:{port}: {error.strerror or error}")
    bound = server.server_address[1]
    server.set_app(LoopbackOnly(app, bound))
    url = f"http://127.0.0.1:{bound}/{start_page(app)}"
    print(f"perfdoctor view: serving {path} at {url} (Ctrl-C to stop)", file=out, flush=True)
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        print("perfdoctor view: stopped", file=out)
    finally:
        server.server_close()
    return 0
