"""The viewer's runs and pages (the TensorBoard tab and `perfdoctor view` serve the same app),
requested through WSGI: what each page holds, what it refuses, and the headers TensorBoard checks."""

from __future__ import annotations

import json
import logging
import re
import urllib.parse

import pytest

from perfdoctor.viewer.app import ViewerApp
from perfdoctor.viewer.runs import discover
from viewer_runs import LiveRun, finished_run, foreign_traces, quiet_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    finished_run(root / "finished")
    quiet_run(root / "quiet")
    live = LiveRun(root / "live")
    live.add_steps(30)
    yield root
    live.stop()


def get(app, path, query=""):
    status, headers = {}, {}

    def start_response(line, pairs):
        status["line"] = line
        headers.update(pairs)

    body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query}, start_response))
    return int(status["line"].split()[0]), headers, body


def run_id(app, name):
    return next(run.id for run in app.runs() if run.name == name)


# --- finding runs ---------------------------------------------------------------------------------


def test_runs_are_found_from_a_logdir_of_runs_a_run_or_its_tb(runs):
    by_name = {run.name: run for run in discover(runs)}
    assert set(by_name) == {"finished", "quiet", "live"}
    assert by_name["finished"].state() == "finished" and by_name["live"].state() == "running"
    assert [t.name for t in by_name["finished"].traces] == ["vm_22106.1795779618831.pt.trace.json.gz"]
    for logdir in (runs / "finished", runs / "finished" / "tb", runs / "finished" / "tb" / "reference_cnn"):
        (found,) = discover(logdir)
        assert found.root == runs / "finished" and found.id == by_name["finished"].id  # the same id from any logdir


def test_a_run_whose_lock_holder_is_gone_has_no_report(tmp_path):
    live = LiveRun(tmp_path / "crashed")
    live.stop()
    (run,) = discover(tmp_path)
    assert run.state() == "no report"


def test_foreign_traces_are_a_run_with_their_report(shared_traces, tmp_path):
    foreign_traces(tmp_path / "a100")
    (run,) = discover(tmp_path)
    assert not run.perfdoctor_run and run.state() == "finished" and run.report_dir == tmp_path / "a100" / "perfdoctor-report"
    # The report names the trace as it was given; the viewer finds it by name among the run's own.
    assert run.find_trace("/elsewhere/trace.pt.trace.json.gz") == tmp_path / "a100" / "trace.pt.trace.json.gz"
    assert run.find_trace("../../etc/passwd") is None


# --- pages ------------------------------------------------------------------------------------------


def test_index_lists_every_run_and_shows_the_chosen_ones_findings_and_trace(runs):
    app = ViewerApp(runs)
    status, headers, body = get(app, "/index.html", f"run={run_id(app, 'finished')}")
    html = body.decode()
    assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
    assert re.findall(r'<option value="[^"]+"', html) and html.count("<option") == 3
    assert html.count('<article class="finding') == 2 and "The step waits 41% of its time on the DataLoader" in html
    rid = run_id(app, "finished")
    assert f'src="runs/{rid}/trace.html?embed=1"' in html
    links = re.findall(r'class="trace-link" href="([^"]+)"', html)
    assert links and all(link.startswith(f"runs/{rid}/trace.html?trace=tb") for link in links)
    assert 'id="step"' in html and 'id="timeline"' in html and "Samples/s" in html


def test_a_run_in_progress_shows_its_live_steps_and_refreshes(runs):
    app = ViewerApp(runs)
    _, _, body = get(app, "/index.html", f"run={run_id(app, 'live')}")
    html = body.decode()
    assert "status-running" in html and '<meta http-equiv="refresh" content="10">' in html
    assert "Findings are made when the run ends." in html
    assert re.search(r"<dt>Steps so far</dt><dd>30</dd>", html) and "40.0 ms" in html and "25%" in html
    assert html.count('<g class="step-bar">') == 30  # the step timeline, from the streamed steps


def test_the_report_is_served_under_its_own_policy_and_links_to_the_trace_page(runs):
    from perfdoctor.report.templates import script_hash

    app = ViewerApp(runs)
    rid = run_id(app, "finished")
    status, headers, body = get(app, f"/runs/{rid}/report.html")
    assert status == 200 and f"script-src '{script_hash()}'" in headers["Content-Security-Policy"]
    link = re.search(r'class="trace-link" href="(trace\.html\?[^"]+)"', body.decode()).group(1).replace("&amp;", "&")
    status, _, page = get(app, f"/runs/{rid}/trace.html", link.split("?", 1)[1])
    assert status == 200 and "the longest DataLoader wait" in page.decode()
    frame = re.search(r'<iframe class="speedscope"[^>]*src="([^"]+)"', page.decode()).group(1).replace("&amp;", "&")
    assert frame.startswith("../../speedscope/index.html#profileURL=") and "&view=time-ordered" in frame
    data = urllib.parse.unquote(frame.split("profileURL=")[1].split("&")[0])
    path, _, query = data.removeprefix("../").partition("?")
    status, headers, body = get(app, "/" + path, query)
    assert status == 200 and headers["Content-Type"] == "application/json"
    document = json.loads(body)
    first = next(e for e in document["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name")
    assert "training loop" in first["args"]["name"]  # the DataLoader wait's track, first
    names = {e["name"] for e in document["traceEvents"] if e["ph"] == "B"}
    assert "enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__" in names


def test_speedscope_and_the_pages_own_files_come_from_the_package(runs):
    app = ViewerApp(runs)
    status, headers, body = get(app, "/speedscope/index.html")
    assert status == 200 and b"speedscope" in body and "'unsafe-eval'" in headers["Content-Security-Policy"]
    script = re.search(rb'<script src="([^"]+)"', body).group(1).decode()
    assert get(app, f"/speedscope/{script}")[0] == 200
    assert get(app, "/index.js")[2].startswith(b"// TensorBoard's entry point")
    assert get(app, "/favicon.ico")[0] == 204


@pytest.mark.parametrize("path", ["/speedscope/../app.py", "/static/../../runs.py", "/runs/nope/report.html", "/runs/x/y/trace.json", "/../../etc/passwd", "/speedscope/VENDORED.txt"])
def test_nothing_else_is_served(runs, path):
    assert get(ViewerApp(runs), path)[0] == 404


def test_a_trace_not_in_the_run_is_refused(runs):
    app = ViewerApp(runs)
    rid = run_id(app, "finished")
    assert get(app, f"/runs/{rid}/trace.json", "trace=../../../etc/passwd")[0] == 404
    assert get(app, f"/runs/{rid}/trace.json", "trace=/etc/hosts")[0] == 404


def test_only_get_and_head(runs):
    app = ViewerApp(runs)
    seen = {}
    app({"REQUEST_METHOD": "POST", "PATH_INFO": "/index.html", "QUERY_STRING": ""}, lambda line, headers: seen.update(line=line))
    assert seen["line"].startswith("405")


def test_tensorboard_finds_nothing_to_object_to_in_the_headers(runs, caplog):
    """TensorBoard checks every response of a plugin (content type, nosniff, a CSP it accepts)
    and logs a warning (an error in TensorBoard 3) for each one that fails."""
    from tensorboard.backend.security_validator import SecurityValidatorMiddleware

    app = ViewerApp(runs, prefix="/data/plugin/perfdoctor")
    rid = run_id(app, "finished")
    checked = SecurityValidatorMiddleware(app)
    paths = ["/index.html", "/index.js", "/speedscope/index.html", f"/runs/{rid}/report.html", f"/runs/{rid}/trace.html", f"/runs/{rid}/trace.json", "/nope"]
    with caplog.at_level(logging.WARNING, logger="tensorboard"):
        for path in paths:
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/data/plugin/perfdoctor" + path, "QUERY_STRING": ""}
            b"".join(checked(environ, lambda *args: None))
    assert not [r.getMessage() for r in caplog.records], caplog.text
