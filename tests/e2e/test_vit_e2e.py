"""End to end in headless Chromium (issue 21, item 5): a transformer run names its groups.

A short vit_tiny run (the vit_demo preset for 2 epochs, trained here in seconds) opened at
1024x768: the Overview heatmap's hover names heads and MLP neurons by block ("blocks.0.attn:
block 0 · head 0", "blocks.3.mlp.fc1: block 3 · MLP neuron 127"), and the Layer view of a head
layer names each head on its rows, legibly (each tick label inside the chart, none overlapping).
The Filters view says in one line why it has nothing to show.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager

import pytest

from tests.e2e.conftest import NO_CHROMIUM, REPO, idle, serve, shown_iteration

pytestmark = pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def vit_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vit")
    root = tmp / "checkpoints"
    subprocess.run([sys.executable, "-m", "pathviz.train", "--preset", "vit_demo", "--epochs", "2",
                    "--out", str(root / "vit"), "--no-progress"], cwd=REPO, check=True,
                   capture_output=True)
    proc, log, url = serve(root, tmp / "streamlit.log", {"PATHVIZ_REFRESH": "0"})
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@contextmanager
def opened(browser, url: str, query: str, shown: bool = True):
    """A 1024x768 page on the short ViT run at ``query``, settled (at iteration 36)."""
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    try:
        page.goto(f"{url}/?run=vit&iteration=36&{query}")
        idle(page)
        if shown:
            shown_iteration(page, 36)
        yield page
    finally:
        page.close()


def hover(page, row: int, x: float) -> str:
    """The Overview heatmap's hover label over layer ``row`` at ``x`` (fraction) of the plot."""
    g = page.evaluate("""() => { const b = document.querySelector('.st-key-overview .pv-heatfig');
      b.scrollIntoView({block: 'center'});
      const r = b.querySelector('canvas.pv-heat').getBoundingClientRect(), g = b.__pvGeom;
      return {x: r.left + g.left, y: r.top + g.top, w: g.w, h: g.h,
              rows: b.__pvZ.rows}; }""")
    page.mouse.move(g["x"] + x * g["w"], g["y"] + (row + 0.5) * g["h"] / g["rows"])
    tip = page.locator(".st-key-overview .pv-hf-tip")
    tip.wait_for(state="visible")
    return tip.inner_text()


def test_the_overview_names_heads_and_mlp_neurons(vit_url, browser):
    with opened(browser, vit_url, "view=overview") as page:
        page.locator(".st-key-overview .pv-heatfig canvas.pv-heat").wait_for()
        assert hover(page, 0, 0.001).startswith("blocks.0.attn: block 0 · head 0\n")
        assert hover(page, 0, 0.999).startswith("blocks.0.attn: block 0 · head 3\n")
        assert hover(page, 7, 0.999).startswith("blocks.3.mlp.fc1: block 3 · MLP neuron 127\n")
        drawn = page.evaluate("document.querySelector('.st-key-overview .pv-heatfig')"
                              ".__pvTexts.map((t) => t.text)")
        assert {"blocks.0.attn", "blocks.3.mlp.fc1"} <= set(drawn)


def test_the_layer_view_names_each_head_legibly(vit_url, browser):
    with opened(browser, vit_url, "view=layer&layer=blocks.1.attn") as page:
        page.locator(".st-key-layer_fig .pv-chart[data-pv-chart]").wait_for()
        # the heatmap panel's row axis: one label per head, as the figure's uPlot laid it out
        # (window.__pathvizPlayer.charts: the player's debug entry point), a row high each
        got = page.evaluate("""() => {
          const u = window.__pathvizPlayer.charts['layer_fig'].plots[0], a = u.axes[1];
          return {labels: a._values, rows: a._splits.length, h: u.over.clientHeight}; }""")
        heads = got["labels"]
        assert sorted(heads) == [f"block 1 · head {h}" for h in range(4)], heads
        assert got["h"] / got["rows"] >= 16  # a row is taller than its label
        # the hover over a heatmap row names its head
        page.locator(".st-key-layer_fig .pv-chart").scroll_into_view_if_needed()
        x, y = page.evaluate("""() => {
          const u = window.__pathvizPlayer.charts['layer_fig'].plots[0];
          const r = u.over.getBoundingClientRect();
          return [r.left + r.width / 2, r.top + u.valToPos(0, 'y')]; }""")
        page.mouse.move(x - 5, y)
        page.mouse.move(x, y)
        tip = page.locator(".st-key-layer_fig .pv-hf-tip")
        tip.wait_for(state="visible")
        assert "entry rank 0 · block 1 · head " in tip.inner_text()


def test_the_filters_view_says_why_it_is_empty(vit_url, browser):
    with opened(browser, vit_url, "view=filters", shown=False) as page:
        text = page.get_by_test_id("stMain").inner_text()
        assert "convolution" in text and not page.locator(".st-key-filters .js-plotly-plot").count()
