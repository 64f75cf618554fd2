"""The report, the diff page, the trace view and the TensorBoard tab in a real browser (headless
Chromium from the OS packages, see tests/browser.py), with the network blocked.

Each page must load, show its findings (and the trace, where it has one), log no console error
and no uncaught exception, request nothing but this machine, and lay out at desktop (1280 px) and
phone (390 px) widths without sideways overflow. Screenshots of each land in
test-artifacts/browser/ (git-ignored; PERFDOCTOR_SCREENSHOTS names another folder) for a person to
read. Skipped, saying why, where Chromium is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser import Chromium, Page, find_chromium
from servers import perfdoctor_view, tensorboard
from viewer_runs import SHARED_TRACES, LiveRun, finished_run, foreign_traces, quiet_run

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("PERFDOCTOR_SCREENSHOTS") or REPO / "test-artifacts" / "browser")
WIDTHS = {"desktop": 1280, "phone": 390}


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium to drive: install it from the OS packages (Debian: apt-get install chromium), or set PERFDOCTOR_CHROMIUM")
    browser = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("logdir")
    finished_run(root / "finished")
    quiet_run(root / "quiet")
    if SHARED_TRACES.is_dir():
        foreign_traces(root / "gpu-traces")
    live = LiveRun(root / "live")
    live.add_steps(25)
    from perfdoctor.cli import main

    assert main(["diff", str(root / "quiet"), str(root / "finished"), "--out", str(root / "diff")]) == 0
    yield root
    live.stop()


@pytest.fixture(scope="module")
def viewer(logdir):
    with perfdoctor_view(logdir) as url:
        yield url.rsplit("/", 1)[0] if url.endswith(".html") else url


@pytest.fixture(scope="module")
def board(logdir):
    with tensorboard(logdir) as url:
        yield url


def open_page(browser: Chromium, width: str, url: str, mobile: bool = True) -> Page:
    page = browser.page(WIDTHS[width], 900, mobile=mobile and width == "phone")
    page.open(url, settle_s=1.0)
    return page


def assert_clean(page: Page) -> None:
    assert page.log.requests, "the page made no request at all"
    assert page.log.off_machine() == [], f"requests that left this machine: {page.log.off_machine()}"
    assert page.log.errors() == [], page.log.errors()


def assert_fits(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.width, f"the page is {width} px wide in a {page.width} px window: it overflows sideways"


def shot(page: Page, name: str) -> Path:
    return page.screenshot(SCREENSHOTS / f"{name}.png")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_report_served_by_perfdoctor_view_and_its_trace_links(chromium, logdir, viewer, width):
    from perfdoctor.viewer.runs import discover

    runs = {run.name: run for run in discover(logdir)}
    page = open_page(chromium, width, f"{viewer}/runs/{runs['finished'].id}/report.html")
    try:
        assert page.evaluate("document.querySelectorAll('article.finding').length") == 2
        links = page.evaluate("[...document.querySelectorAll('a.trace-link')].map(a => a.textContent)")
        assert any("the longest DataLoader wait" in text for text in links) and any("(rank 1)" in text for text in links)
        assert_clean(page)
        assert_fits(page)
        # The DDP section: rank headers on one line, the model's table not one character a line.
        heights = page.evaluate("[...document.querySelectorAll('#ddp table.ranks th')].map(th => th.getBoundingClientRect().height)")
        assert heights and max(heights) < 40, heights
        module = page.evaluate("document.querySelector('#ddp table.instances td').getBoundingClientRect().width")
        assert module > 150
        # Chart text a person can read: at least 8 px high at any width.
        tick = page.evaluate("Math.min(...[...document.querySelectorAll('#timeline text.tick')].map(t => t.getBoundingClientRect().height))")
        assert tick >= 8, f"chart text {tick:.1f} px high"
        shot(page, f"report-{width}")
        # Follow the DataLoader wait's link: the trace view opens at that place.
        page.evaluate("[...document.querySelectorAll('a.trace-link')].find(a => a.textContent.includes('DataLoader wait')).click()")
        title = page.wait_in_frame("/speedscope/index.html", "document.title.endsWith(' - speedscope') && document.title")
        assert title.startswith("the longest DataLoader wait")
        assert page.evaluate("document.querySelector('.trace-bar .place').textContent").startswith("the longest DataLoader wait")
        data = [url for url, status in page.log.responses if "/trace.json?" in url and status == 200]
        assert data and "op=enumerate%28DataLoader%29" in data[0]
        page.wait_in_frame("/speedscope/index.html", "document.querySelector('canvas') !== null")
        page.quiet(1.0, 20)
        assert_clean(page)
        shot(page, f"trace-view-{width}")
    finally:
        page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_report_opened_from_disk_says_how_to_open_its_trace(chromium, logdir, width):
    report = logdir / "gpu-traces" / "perfdoctor-report" / "report.html"
    if not report.is_file():
        report = logdir / "finished" / "report.html"
    page = open_page(chromium, width, report.as_uri())
    try:
        assert page.log.requests == [report.as_uri()]  # self-contained: nothing but itself
        assert page.evaluate("document.querySelectorAll('article.finding').length") >= 1
        assert page.evaluate("document.querySelector('.status-line .badge').textContent") != "completed"
        page.evaluate("document.querySelector('a.trace-link').click()")
        note = page.wait_for("document.querySelector('.js-note') && document.querySelector('.js-note').textContent")
        run = report.parent.parent if report.parent.name == "perfdoctor-report" else report.parent
        assert f"perfdoctor view {run}:" in note
        assert page.log.errors() == [] and page.log.off_machine() == []
        assert_fits(page)
        shot(page, f"report-from-disk-{width}")
    finally:
        page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_diff_page(chromium, logdir, width):
    page = open_page(chromium, width, (logdir / "diff" / "diff.html").as_uri())
    try:
        findings = page.evaluate("document.querySelector('#findings').textContent")
        assert "dataloader-bottleneck" in findings and "appeared" in findings
        assert_clean(page)
        assert_fits(page)
        shot(page, f"diff-{width}")
    finally:
        page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_tensorboard_tab(chromium, logdir, board, width):
    from perfdoctor.viewer.runs import discover

    runs = {run.name: run for run in discover(logdir)}
    # TensorBoard's own page sets no mobile viewport (a phone lays it out 980 px wide): the
    # narrow case is a 390 px window.
    page = open_page(chromium, width, f"{board}/#perfdoctor", mobile=False)
    try:
        plugin = "/data/plugin/perfdoctor/index.html"
        names = page.wait_in_frame(plugin, "[...document.querySelectorAll('#run option')].map(o => o.textContent)", timeout=60)
        assert set(names) == set(runs)
        page.evaluate_in_frame(plugin, f"location.assign('index.html?run={runs['finished'].id}') || true")
        count = page.wait_in_frame(f"run={runs['finished'].id}", "document.querySelectorAll('article.finding').length")
        assert count == 2
        assert page.evaluate_in_frame(f"run={runs['finished'].id}", "!!document.querySelector('#timeline svg') && !!document.querySelector('#step svg')")
        title = page.wait_in_frame("/speedscope/index.html", "document.title.endsWith(' - speedscope') && document.title", timeout=60)
        assert "pt.trace.json.gz" in title
        page.quiet(1.0, 20)
        assert_clean(page)
        width_inside = page.evaluate_in_frame(f"run={runs['finished'].id}", "document.documentElement.scrollWidth <= innerWidth")
        assert width_inside, "the tab's page overflows sideways"
        shot(page, f"tensorboard-tab-{width}")
        # A run in progress: its live numbers.
        page.evaluate_in_frame(plugin, f"location.assign('index.html?run={runs['live'].id}') || true")
        live = page.wait_in_frame(f"run={runs['live'].id}", "document.querySelector('.badge.status-running') && document.body.textContent")
        assert "Steps so far" in live and "Findings are made when the run ends." in live
        assert_clean(page)
        shot(page, f"tensorboard-tab-live-{width}")
    finally:
        page.close()

