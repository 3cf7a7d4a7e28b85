"""End to end in headless Chromium (issue 18, item 3): presentation mode reads on a projector.

At 1024x768 and 1920x1080: the sidebar and its expand control are hidden, the status line and
both figures (Overview heatmap, support path) are visible and inside the viewport, none of them
overlaps another, no chart text (titles, axis titles, legend, stop label) leaves its chart,
nothing scrolls sideways, the iteration is said once (the status line, not the scrubber's
own line too), and Next still moves the page. Screenshots go to
docs/app-present-1024.png and docs/app-present-1920.png.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import DOCS, NO_CHROMIUM, idle, next_snapshot

pytestmark = pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium is not installed")

# boxes of what the screen must show, every chart text outside its chart, and the page's size
_LAYOUT = """() => {
  const box = (s) => { const e = document.querySelector(s); if (!e) return null;
    const r = e.getBoundingClientRect();
    return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width,
            height: r.height}; };
  const cut = [];
  let checked = 0;
  for (const gd of document.querySelectorAll('.st-key-present_plots .js-plotly-plot')) {
    const b = gd.getBoundingClientRect();
    const texts = '.gtitle, .gtitle-subtitle, .xtitle, .ytitle, .cbtitle, .legendtext, ' +
                  '.annotation-text, .xtick, .ytick';
    for (const t of gd.querySelectorAll(texts)) {
      const r = t.getBoundingClientRect();
      if (!t.textContent.trim() || !r.width) continue;
      checked += 1;
      if (r.left < b.left - 1 || r.right > b.right + 1 || r.top < b.top - 1 ||
          r.bottom > b.bottom + 1) cut.push(t.textContent.trim().slice(0, 40));
    }
  }
  // the heatmap the player draws: its title lines whole, every text it drew inside its canvas
  for (const hb of document.querySelectorAll('.st-key-present_plots .pv-heatfig')) {
    const cv = hb.querySelector('canvas.pv-heat');
    if (!cv) continue;
    for (const t of hb.querySelectorAll('.pv-hf-title, .pv-hf-sub')) {
      checked += 1;
      if (t.scrollWidth > t.clientWidth + 1) cut.push(t.textContent.trim().slice(0, 40));
    }
    for (const r of (hb.__pvTexts || [])) {
      checked += 1;
      if (r.left < -1 || r.right > cv.clientWidth + 1 || r.top < -1 ||
          r.bottom > cv.clientHeight + 1) cut.push(r.text.slice(0, 40));
    }
  }
  const status = document.querySelector('.st-key-present_status p');
  return {status: box('.st-key-present_status p'), text: status && status.textContent,
          heat: box('.st-key-present_heatmap .pv-heatfig canvas.pv-heat'),
          path: box('.st-key-present_path .js-plotly-plot'),
          mark: (document.querySelector('.st-key-present_path .js-plotly-plot') || {dataset: {}})
                .dataset.pvMark,
          // the scrubber's bold "Iteration N" line: the status line names the iteration
          scrubLines: Array.from(document.querySelectorAll('[data-testid=stMarkdownContainer] '
                                                           + 'strong'))
            .filter((e) => e.textContent.startsWith('Iteration ')).length,
          cut, checked, scrollWidth: document.documentElement.scrollWidth,
          scrollHeight: document.documentElement.scrollHeight,
          statusWidth: status && status.scrollWidth, statusBox: status && status.clientWidth};
}"""


@pytest.mark.parametrize("width,height", [(1024, 768), (1920, 1080)])
def test_presentation_mode_fits_the_screen(app_url, browser, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    try:
        page.goto(f"{app_url}/?run=e2e&present=1&iteration=150")
        idle(page)
        page.wait_for_function("document.querySelector('.st-key-present_path .js-plotly-plot')"
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
        assert got["scrollWidth"] <= width and got["scrollHeight"] <= height, got
        page.screenshot(path=str(DOCS / f"app-present-{width}.png"))
        next_snapshot(page)
        page.wait_for_function("document.querySelector('.st-key-present_status p')?.textContent"
                               ".startsWith('iteration 155 · ')", timeout=30_000)
        page.wait_for_function("document.querySelector('.st-key-present_path .js-plotly-plot')"
                               "?.dataset.pvMark === '155'", timeout=30_000)
    finally:
        page.close()
