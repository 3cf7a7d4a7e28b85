"""Above the fold (issue 30, item 2): at 1024x768, 1366x768 and 1920x1080 every view's main
figure starts on the first screen (its bounding box's top < the viewport's height), the view
switcher is one row, the header's button shows its whole label, and the stop line is compact
and only on the views where it matters.

Each view and size is also saved as a screenshot under the test's temporary folder
(``layout-<view>-<w>x<h>.png``), for a person to look at.
"""

from __future__ import annotations

import pytest

from pathviz import runs
from tests.e2e.conftest import NO_CHROMIUM, idle, make_full_run, serve

pytestmark = pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium is not installed")

SIZES = [(1024, 768), (1366, 768), (1920, 1080)]
# each view's main figure (or, where a view has none, its main control), by CSS selector
MAIN = {
    "overview": ".st-key-overview .pv-heatfig",
    "layer": ".st-key-layer_fig",
    "metrics": ".st-key-metrics_plot",
    "filters": ".st-key-filters .js-plotly-plot",
    "export": ".st-key-do_export",
    "compare": ".st-key-compare_plot .pv-chart",
    "tickets": "[data-testid=stMain] [data-testid=stMultiSelect]",
    "about": "[data-testid=stMain] .katex-display",
}
STOP_SHOWN = {"overview", "metrics", "export", "tickets"}

BOX = """(s) => { const e = document.querySelector(s);
  if (!e) return null; const r = e.getBoundingClientRect();
  return {top: r.top, height: r.height}; }"""
SWITCH_ROWS = """() => new Set(Array.from(
  document.querySelectorAll('.st-key-view_title button')).map(
  (b) => Math.round(b.getBoundingClientRect().top))).size"""
CUT = """(name) => Array.from(document.querySelectorAll('.st-key-run_header button')).filter(
  (b) => b.innerText.includes(name)).map((b) => {
    const t = Array.from(b.querySelectorAll('*')).filter((e) => e.innerText === name)[0] || b;
    return t.scrollWidth > t.clientWidth + 1 || b.scrollWidth > b.clientWidth + 1; })"""


@pytest.fixture(scope="module")
def layout_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layout")
    root = tmp / "checkpoints"
    make_full_run(root, "e2e", nu=50.0)
    make_full_run(root, "e2e-b", nu=100.0)
    stopped = make_full_run(root, "paused", nu=50.0, state="stopped")
    stopped.resume.write_bytes(b"")  # resumable: the header shows its Resume button
    assert next(r for r in runs.list_runs(root) if r.name == "paused").resumable
    proc, log, url = serve(root, tmp / "streamlit.log", {"PATHVIZ_REFRESH": "0"})
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.mark.parametrize("width,height", SIZES)
def test_every_views_figure_starts_on_the_first_screen(layout_url, browser, tmp_path, width,
                                                       height):
    page = browser.new_page(viewport={"width": width, "height": height})
    try:
        for view, selector in MAIN.items():
            extra = "&compare=e2e,e2e-b" if view == "compare" else ""
            page.goto(f"{layout_url}/?run=e2e&view={view}{extra}")
            idle(page, 60_000)
            page.locator(selector).first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / f"layout-{view}-{width}x{height}.png"))
            box = page.evaluate(BOX, selector)
            assert box is not None and box["height"] > 0, view
            assert 0 <= box["top"] < height, (view, box, width, height)
            assert page.evaluate(SWITCH_ROWS) == 1, f"{view}: the view switcher wraps"
            stop = page.locator(".st-key-stop_line")
            if view in STOP_SHOWN:
                # one line of text beside its two buttons (two lines at most on a narrow page)
                assert stop.count() == 1 and stop.bounding_box()["height"] < 70, view
                assert "Suggested stop: iteration" in stop.inner_text()
                assert "compact W*: validation" in stop.inner_text()
            else:
                assert stop.count() == 0, f"{view} shows the stop line"
        page.goto(f"{layout_url}/?run=paused&view=overview")
        idle(page, 60_000)
        page.locator(".st-key-run_header button").first.wait_for()
        cut = page.evaluate(CUT, "Resume")
        assert cut and not any(cut), "the Resume button's label is cut"
        page.screenshot(path=str(tmp_path / f"layout-resume-{width}x{height}.png"))
    finally:
        page.close()
