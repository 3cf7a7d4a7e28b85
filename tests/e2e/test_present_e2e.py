"""End to end in headless Chromium (issue 18, item 3): presentation mode reads on a projector.

At 1024x768 and 1920x1080: the sidebar and its expand control are hidden, the status line and
both figures (Overview heatmap, support path; drawn in the page by the player, no plotly) are
visible and inside the viewport, none of them overlaps another, no chart text (titles, axis
titles, legend, stop label) leaves its chart,
nothing scrolls sideways, the iteration is said once (the status line, not the scrubber's
own line too), Next still moves the page, and a click on the support path picks an iteration.
Screenshots go to app-present-1024.png and app-present-1920.png in a temporary folder.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import NO_CHROMIUM, idle, next_snapshot

pytestmark = pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium is not installed")

# boxes of what the screen must show, every chart text outside its chart, and the page's size
_LAYOUT = """() => {
  const box = (s) => { const e = document.querySelector(s); if (!e) return null;
    const r = e.getBoundingClientRect();
    return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width,
            height: r.height}; };
  const cut = [];
  let checked = 0;
  // the two figures the player draws: title lines and legend whole and inside the figure, every
  // text it drew on the heatmap's canvas inside it (uPlot lays out the support path's axes)
  for (const hb of document.querySelectorAll('.st-key-present_plots .pv-heatfig, '
                                             + '.st-key-present_plots .pv-pathfig')) {
    const cv = hb.querySelector('canvas');
    if (!cv) continue;
    for (const t of hb.querySelectorAll('.pv-hf-title, .pv-hf-sub, .pv-legend span, '
                                         + '.u-legend .u-series, .u-over')) {
      checked += 1;
      const r = t.getBoundingClientRect(), b = hb.getBoundingClientRect();
      if (t.scrollWidth > t.clientWidth + 1 || r.right > b.right + 1 || r.bottom > b.bottom + 1)
        cut.push(t.textContent.trim().slice(0, 40));
    }
    for (const r of (hb.__pvTexts || [])) {
      checked += 1;
      if (r.left < -1 || r.right > cv.clientWidth + 1 || r.top < -1 ||
          r.bottom > cv.clientHeight + 1) cut.push(r.text.slice(0, 40));
    }
  }
  const status = document.querySelector('.st-key-present_status p');
  return {status: box('.st-key-present_status p'), text: status && status.textContent,
          heat: box('.st-key-present_heatmap .pv-heatfig'),
          path: box('.st-key-present_path .pv-pathfig'),
          mark: (document.querySelector('.st-key-present_path .pv-pathfig') || {dataset: {}})
                .dataset.pvMark,
          // a shown "Iteration N · epoch ..." line: the status line names the iteration
          scrubLines: Array.from(document.querySelectorAll('.pv-line'))
            .filter((e) => e.offsetParent !== null).length,
          plotly: document.querySelectorAll('.js-plotly-plot').length,
          cut, checked, scrollWidth: document.documentElement.scrollWidth,
          scrollHeight: document.documentElement.scrollHeight,
          statusWidth: status && status.scrollWidth, statusBox: status && status.clientWidth};
}"""


# the page position of an iteration on the support path, half way up its plot area
# (the box's uPlot, ``__pvUp``, converts the iteration to pixels)
_AT_ITERATION = """(it) => { const u = document.querySelector('.st-key-present_path .pv-pathfig')
  .__pvUp, r = u.over.getBoundingClientRect();
  return [r.left + u.valToPos(it, 'x'), r.top + r.height / 2]; }"""
# the support path's legend: each line's name and its value (at the pointer, else the position)
_LEGEND = """() => Array.from(document.querySelectorAll('.st-key-present_path .u-legend .u-series'))
  .map((e) => e.textContent.trim())"""


@pytest.mark.parametrize("width,height", [(1024, 768), (1920, 1080)])
def test_presentation_mode_fits_the_screen(app_url, browser, width, height, shots):
    page = browser.new_page(viewport={"width": width, "height": height})
    try:
        page.goto(f"{app_url}/?run=e2e&present=1&iteration=150")
        idle(page)
        page.wait_for_function("document.querySelector('.st-key-present_path .pv-pathfig')"
                               "?.dataset.pvMark === '150'", timeout=30_000)
        assert not page.locator("[data-testid=stSidebar]").is_visible()
        assert not page.locator("[data-testid=stExpandSidebarButton]").is_visible()
        got = page.evaluate(_LAYOUT)
        assert got["text"].startswith("iteration 150 · ")
        assert "filters selected · W* " in got["text"]
        assert got["scrubLines"] == 0  # the iteration is said once, in the status line
        inside = [k for k in ("status", "heat", "path")
                  if got[k]["left"] < 0 or got[k]["top"] < 0 or got[k]["right"] > width
                  or got[k]["bottom"] > height or got[k]["width"] < 200]
        assert not inside, (inside, got)
        s, heat, path = got["status"], got["heat"], got["path"]
        assert s["bottom"] <= min(heat["top"], path["top"]) and heat["right"] <= path["left"]
        assert path["width"] >= heat["width"] and path["height"] >= height / 2 - 60
        assert got["statusWidth"] <= got["statusBox"]  # the line is one line, not cut
        assert got["checked"] > 20 and not got["cut"], got["cut"]
        assert got["plotly"] == 0  # the screen loads no plotly: the player draws both
        assert got["scrollWidth"] <= width and got["scrollHeight"] <= height, got
        page.screenshot(path=str(shots / f"app-present-{width}.png"))
        next_snapshot(page)
        page.wait_for_function("document.querySelector('.st-key-present_status p')?.textContent"
                               ".startsWith('iteration 155 · ')", timeout=30_000)
        page.wait_for_function("document.querySelector('.st-key-present_path .pv-pathfig')"
                               "?.dataset.pvMark === '155'", timeout=30_000)
        # the legend gives every line's share at the position, and under the pointer; a click
        # on the support path goes to the snapshot nearest the clicked iteration
        legend = page.evaluate(_LEGEND)
        assert legend[0].endswith("155") and legend[1].startswith("conv1 (6")
        assert all(v.endswith(" %") for v in legend[1:]), legend
        x, y = page.evaluate(_AT_ITERATION, 100)
        page.mouse.move(x, y)
        page.wait_for_function(f"() => ({_LEGEND})()[0].endsWith('100')")
        page.mouse.click(x, y)
        page.wait_for_function("document.querySelector('.st-key-present_status p')?.textContent"
                               ".startsWith('iteration 100 · ')", timeout=30_000)
        page.wait_for_function("new URLSearchParams(location.search).get('iteration') === '100'",
                               timeout=30_000)
    finally:
        page.close()
