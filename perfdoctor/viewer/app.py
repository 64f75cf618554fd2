"""The viewer as one WSGI application: the TensorBoard tab (mounted at /data/plugin/perfdoctor/)
and `perfdoctor view` (at /) serve exactly the same pages.

    index.html[?run=ID]        the runs, and one run: findings, step breakdown, step timeline,
                               the trace (finished runs), or live progress (runs in progress)
    index.js                   TensorBoard's entry point for the tab: opens index.html
    runs/ID/report.html        the run's report.html; its trace links are relative, so they
                               land on the trace page below
    runs/ID/trace.html?...     the trace view: the vendored viewer in a frame, opened at a place
                               (trace=FILE, start_ns, end_ns, op, label; all optional)
    runs/ID/trace.json?...     the same trace as the viewer reads it (see flamechart.py)
    speedscope/FILE            the vendored viewer, from the package
    static/FILE                the pages' own script and styles

Everything comes from the package or the run's own files; every HTML page carries a
Content-Security-Policy that lets it fetch only from this server (TensorBoard checks for one).
"""

from __future__ import annotations

import functools
import gzip
import mimetypes
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from .runs import RunIndex, ViewedRun

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

# The pages fetch, frame and run scripts from this server only; styles may be inline (the
# report's stylesheet is), images and fonts also data: URIs (speedscope draws its own).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; frame-src 'self'; base-uri 'self'; form-action 'self'"
)
# speedscope compiles a WebAssembly module (its Java Flight Recorder reader) as it starts; a
# page may do that only with 'unsafe-eval' (the one exception TensorBoard allows in script-src).
SPEEDSCOPE_CSP = PAGE_CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-eval'")
TRACE_CACHE = 4  # traces kept read (a viewer jumping between places of one trace reads it once)
VIEW_MODE = "time-ordered"  # speedscope's timeline view


@functools.cache
def _package_files(folder: str) -> dict[str, bytes]:
    """Every file of a package folder (vendor/speedscope, static), read once."""
    root = resources.files("perfdoctor.viewer").joinpath(folder)
    return {entry.name: entry.read_bytes() for entry in root.iterdir() if entry.is_file()}


class Response:
    def __init__(self, body: bytes | str, content_type: str, status: str = "200 OK", headers: Iterable[tuple[str, str]] = ()) -> None:
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.status = status
        self.headers = [("Content-Type", content_type), ("X-Content-Type-Options", "nosniff"), *headers]
        if content_type.startswith("text/html") and not any(name == "Content-Security-Policy" for name, _ in self.headers):
            self.headers.append(("Content-Security-Policy", PAGE_CSP))

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        body = self.body
        if len(body) > 1024 and "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "") and not self._compressed():
            body = gzip.compress(body, 5)
            self.headers.append(("Content-Encoding", "gzip"))
        start_response(self.status, [*self.headers, ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def _compressed(self) -> bool:
        return self.headers[0][1].startswith(("image/", "font/", "application/wasm"))


def not_found(what: str) -> Response:
    return Response(f"Not found: {what}\n", "text/plain; charset=utf-8", "404 Not Found")


def _number(query: dict[str, list[str]], key: str) -> int | None:
    text = (query.get(key) or [""])[0]
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _text(query: dict[str, list[str]], key: str) -> str | None:
    value = (query.get(key) or [""])[0]
    return value or None


class ViewerApp:
    """Serves the runs below `logdir`. `prefix`: the path it is mounted at (TensorBoard's
    /data/plugin/perfdoctor), stripped from each request's path."""

    def __init__(self, logdir: Path, prefix: str = "") -> None:
        self.index = RunIndex(Path(logdir))
        self.prefix = prefix.rstrip("/")
        self._traces: OrderedDict[tuple[str, float, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def runs(self) -> list[ViewedRun]:
        return self.index.runs()

    # -- WSGI ---------------------------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return Response("Method not allowed\n", "text/plain; charset=utf-8", "405 Method Not Allowed", [("Allow", "GET, HEAD")])(environ, start_response)
        path = environ.get("PATH_INFO", "") or "/"
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix):]
        query = parse_qs(environ.get("QUERY_STRING", ""), errors="surrogateescape")
        try:
            response = self.route(path.lstrip("/"), query)
        except Exception as error:  # one request's failure (an unreadable trace) is that page's
            response = Response(f"perfdoctor could not serve this: {type(error).__name__}: {error}\n", "text/plain; charset=utf-8", "500 Internal Server Error")
        return response(environ, start_response)

    def route(self, path: str, query: dict[str, list[str]]) -> Response:
        if path in ("", "index.html"):
            return self.index_page(_text(query, "run"))
        if path == "favicon.ico":  # asked for by browsers on their own: nothing to show
            return Response(b"", "image/x-icon", "204 No Content")
        if path == "index.js":
            return Response(_package_files("static")["index.js"], "text/javascript; charset=utf-8")
        head, _, rest = path.partition("/")
        if head in ("speedscope", "static") and rest and "/" not in rest:
            files = _package_files("vendor/speedscope" if head == "speedscope" else "static")
            if rest not in files:
                return not_found(path)
            kind = mimetypes.guess_type(rest)[0] or "application/octet-stream"
            if rest == "index.html":
                return Response(files[rest], "text/html; charset=utf-8", headers=[("Content-Security-Policy", SPEEDSCOPE_CSP)])
            if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
                kind += "; charset=utf-8"
            return Response(files[rest], kind)
        if head == "runs" and rest.count("/") == 1:
            run_id, action = rest.split("/")
            run = self.index.get(run_id)
            if run is None:
                return not_found(f"no run {run_id}")
            if action == "report.html":
                return self.report_page(run)
            if action == "trace.html":
                return self.trace_page(run, query)
            if action == "trace.json":
                return self.trace_json(run, query)
        return not_found(path)

    # -- pages --------------------------------------------------------------------------------

    def index_page(self, run_id: str | None) -> Response:
        from . import pages

        runs = self.runs()
        chosen = next((run for run in runs if run.id == run_id), None) if run_id else None
        if chosen is None and run_id:
            chosen = self.index.get(run_id)
        chosen = chosen or (runs[0] if runs else None)
        return Response(pages.index_html(runs, chosen, self.index.logdir), "text/html; charset=utf-8")

    def report_page(self, run: ViewedRun) -> Response:
        from ..report.templates import script_hash

        path = run.report_html
        if path is None or not path.is_file():
            return not_found(f"{run.name} has no report.html yet")
        csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src '{script_hash()}'; img-src data:; base-uri 'none'; form-action 'none'"
        return Response(path.read_bytes(), "text/html; charset=utf-8", headers=[("Content-Security-Policy", csp)])

    def trace_page(self, run: ViewedRun, query: dict[str, list[str]]) -> Response:
        from . import pages

        trace = run.find_trace(_text(query, "trace"))
        place = {key: value for key in ("start_ns", "end_ns", "op", "label") if (value := _text(query, key))}
        data = None
        if trace is not None:
            params = {"trace": self._name_of(run, trace), **place}
            data = "../runs/" + quote(run.id, errors="surrogateescape") + "/trace.json?" + urlencode(params, errors="surrogateescape")
        title = place.get("label") or (f"{run.name}: {trace.name}" if trace else run.name)
        viewer = f"../../speedscope/index.html#profileURL={quote(data or '', safe='')}&title={quote(title, safe='', errors='surrogateescape')}&view={VIEW_MODE}"
        return Response(pages.trace_html(run, trace, place, viewer if data else None, embedded=bool(_text(query, "embed"))), "text/html; charset=utf-8")

    def trace_json(self, run: ViewedRun, query: dict[str, list[str]]) -> Response:
        import msgspec

        from .flamechart import clamp, viewer_document

        path = run.find_trace(_text(query, "trace"))
        if path is None:
            return not_found("no such trace in this run")
        trace = self._read(path)
        window = clamp(trace, _number(query, "start_ns"), _number(query, "end_ns"))
        if window is None:
            return not_found("nothing in that window of the trace")
        document = viewer_document(trace, window, focus=_text(query, "op"), title=_text(query, "label") or path.name)
        return Response(msgspec.json.encode(document), "application/json")

    @staticmethod
    def _name_of(run: ViewedRun, path: Path) -> str:
        return next(name for name, found in run.trace_names().items() if found == path)

    def _read(self, path: Path) -> Any:
        from ..trace import read_trace

        stat = path.stat()
        key = (str(path), stat.st_mtime, stat.st_size)
        with self._lock:
            if key in self._traces:
                self._traces.move_to_end(key)
                return self._traces[key]
        trace = read_trace(path)
        with self._lock:
            self._traces[key] = trace
            while len(self._traces) > TRACE_CACHE:
                self._traces.popitem(last=False)
        return trace
