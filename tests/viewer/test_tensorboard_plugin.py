"""The perfdoctor tab in a real TensorBoard: found through the entry point, listed and enabled on a
logdir with perfdoctor runs (disabled on one without), serving its pages from the package, and
following a run in progress as its steps stream in."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from servers import tensorboard, wait_until
from viewer_runs import LiveRun, finished_run

pytestmark = pytest.mark.slow


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode("utf-8", "replace")


def test_the_entry_point_names_the_plugin():
    from tensorboard import default

    from perfdoctor.viewer.tensorboard_plugin import PerfdoctorPlugin

    assert PerfdoctorPlugin in [type(loader) if not isinstance(loader, type) else loader for loader in default.get_dynamic_plugins()]


def test_tensorboard_lists_the_tab_and_serves_runs_done_and_in_progress(tmp_path):
    finished_run(tmp_path / "logs" / "finished")
    live = LiveRun(tmp_path / "logs" / "live")
    live.add_steps(12)
    try:
        with tensorboard(tmp_path / "logs") as base:
            _, listing = fetch(f"{base}/data/plugins_listing")
            entry = json.loads(listing)["perfdoctor"]
            assert entry["enabled"] is True and entry["tab_name"] == "perfdoctor"
            assert entry["loading_mechanism"] == {"type": "IFRAME", "module_path": "/data/plugin/perfdoctor/index.js"}
            status, page = fetch(f"{base}/data/plugin/perfdoctor/index.html")
            assert status == 200 and page.count("<option") == 2
            live_id = re.search(r'<option value="([^"]+)"[^>]*>live</option>', page).group(1)
            _, page = fetch(f"{base}/data/plugin/perfdoctor/index.html?run={live_id}")
            assert re.search(r"<dt>Steps so far</dt><dd>12</dd>", page)
            live.add_steps(8)  # the job goes on: the tab's next refresh shows it
            _, page = fetch(f"{base}/data/plugin/perfdoctor/index.html?run={live_id}")
            assert re.search(r"<dt>Steps so far</dt><dd>20</dd>", page)
    finally:
        live.stop()


def test_the_tab_is_disabled_where_there_is_nothing_to_show(tmp_path):
    (tmp_path / "empty").mkdir()
    with tensorboard(tmp_path / "empty") as base:
        listing = wait_until(lambda: json.loads(fetch(f"{base}/data/plugins_listing")[1]))
        assert listing["perfdoctor"]["enabled"] is False
