"""`perfdoctor view PATH`: serves the run's report (its trace links working) and the viewer on
the loopback address, for nobody else; bad input is one line and exit status 2."""

from __future__ import annotations

import http.client
import urllib.parse
import urllib.request

import pytest

from perfdoctor.cli import main
from servers import perfdoctor_view
from viewer_runs import finished_run


def test_a_missing_path_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["view", "--no-browser", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"perfdoctor: error: no such file or directory: {tmp_path / 'nope'}"]


def test_a_folder_with_nothing_to_view_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["view", "--no-browser", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("perfdoctor: error: nothing to view in")


@pytest.mark.slow
def test_it_serves_the_report_with_working_trace_links_on_loopback_only(tmp_path):
    run = finished_run(tmp_path / "run")
    with perfdoctor_view(run) as url:
        parts = urllib.parse.urlsplit(url)
        assert parts.hostname == "127.0.0.1" and parts.path.endswith("/report.html")  # one run: its report opens
        with urllib.request.urlopen(url, timeout=30) as response:
            html = response.read().decode()
        assert "The step waits 41% of its time on the DataLoader" in html
        link = html.split('class="trace-link" href="')[1].split('"')[0].replace("&amp;", "&")
        with urllib.request.urlopen(urllib.parse.urljoin(url, link), timeout=30) as response:
            assert response.status == 200 and "speedscope" in response.read().decode()
        # A request addressed to another name (DNS rebinding) is refused.
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection.request("GET", parts.path, headers={"Host": f"attacker.example:{parts.port}"})
        assert connection.getresponse().status == 403
