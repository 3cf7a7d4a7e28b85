"""End to end in headless Chromium: URLs that reproduce a view, scrubbing, layout, Compare.

Every wait is on page state (script idle, the iteration shown, the marker moved), never a sleep.
Screenshots of the views at 1024x768 go to a temporary folder (docs/screenshots.py takes the
docs' own).
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import SHOWN, idle, next_snapshot, shown_iteration

VIEW_TITLES = {"overview": "Overview", "layer": "Layer", "metrics": "Metrics & stopping",
               "filters": "Filters", "export": "Export", "compare": "Compare",
               "about": "About the method"}
EXTRA = {"layer": "&layer=conv2", "compare": "&compare=e2e,e2e-b"}
NO_PICKER = ("compare", "about")


def _active_view(page) -> str:
    active = "button[data-variant=segmented_control][aria-checked=true]"
    return page.locator(active).first.inner_text()


def _check_view(page, view: str, iteration: int, layer: str = "conv2") -> None:
    """The page shows ``view`` at ``iteration`` with the view's own content (Compare and About
    do not change with the iteration and show none)."""
    if view not in NO_PICKER:
        shown_iteration(page, iteration)
    assert _active_view(page).strip() == VIEW_TITLES[view]
    if view in ("layer", "metrics"):
        key = "layer_fig" if view == "layer" else "metrics_plot"
        page.wait_for_function(  # the player's figure, with its marker at the iteration
            "([k, it]) => { const b = document.querySelector('.st-key-' + k + ' .pv-chart');"
            " return b && b.dataset.pvMark === String(it)"
            " && b.querySelector('.pv-marker').style.display === 'block'; }",
            arg=[key, iteration], timeout=30_000)
    if view == "layer":
        page.get_by_text(f"{layer}: ").first.wait_for()
    elif view == "overview":
        page.locator(".st-key-overview .pv-heatfig canvas.pv-heat").wait_for()
    elif view == "filters":
        page.locator(".st-key-filters .js-plotly-plot").wait_for()
    elif view == "compare":
        page.locator(".st-key-compare_plot .pv-chart[data-pv-chart]").wait_for()
        names = page.locator(".st-key-compare_plot .pv-legend > span").all_text_contents()
        assert [n.split(" ")[0] for n in names[1:]] == ["e2e", "e2e-b"]
        # the iteration selected for the run is marked (Compare has no picker of its own)
        page.wait_for_function(
            "(it) => { const g = document.querySelector('.st-key-compare_plot .pv-chart');"
            " return g && g.dataset.pvMark === String(it)"
            " && g.querySelector('.pv-marker').style.display === 'block'; }",
            arg=iteration, timeout=30_000)
    elif view == "about":
        page.get_by_text("How SLBI grows a sparse network").wait_for()
    elif view == "export":  # weights are saved every 50 iterations in these runs
        text = "Mode" if iteration % 50 == 0 else "has no saved weights"
        page.get_by_text(text).first.wait_for()


@pytest.mark.parametrize("view", list(VIEW_TITLES))
def test_url_round_trip_per_view(app_url, browser, view):
    """A link opens the view it names; a step updates the link; the link opened in a fresh
    browser context shows the same view, iteration (and layer or compared runs)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(f"{app_url}/?run=e2e&view={view}&iteration=100{EXTRA.get(view, '')}")
    idle(page)
    _check_view(page, view, 100)
    stepped = 100 if view in NO_PICKER else 105  # these two views have no picker
    if view not in NO_PICKER:
        next_snapshot(page)
        shown_iteration(page, 105)
    page.wait_for_function(f"location.search.includes('iteration={stepped}')")
    idle(page)
    link = page.url
    ctx.close()
    assert f"view={view}" in link and "run=e2e" in link
    fresh = browser.new_context(viewport={"width": 1280, "height": 900})
    page = fresh.new_page()
    page.goto(link)
    idle(page)
    _check_view(page, view, stepped)
    assert not page.locator("[data-testid='stException']").count()
    fresh.close()


def test_bad_link_parameters_get_notes_not_tracebacks(app_url, browser):
    page = browser.new_page()
    page.goto(f"{app_url}/?run=e2e&iteration=%C2%B2&view=nope&layer=zzz")
    idle(page)
    page.get_by_text("which is not a whole number").wait_for()
    page.get_by_text("does not exist; showing the Overview").wait_for()
    shown_iteration(page, 295)  # the default: a finished run opens at its last snapshot
    assert not page.locator("[data-testid='stException']").count()
    page.goto(f"{app_url}/?run=e2e&iteration=1000000000&view=layer&layer=zzz")
    idle(page)
    page.get_by_text("after this run's last snapshot").wait_for()
    page.get_by_text("This run has no layer").wait_for()
    shown_iteration(page, 295)
    page.close()


@pytest.mark.parametrize("view", ["overview", "layer", "metrics", "compare"])
def test_layout_fits_1024x768(app_url, browser, view, shots):
    """Nothing is cut at 1024x768: no element or chart wider than the page, no side scroll."""
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    page.goto(f"{app_url}/?run=e2e&view={view}&iteration=150{EXTRA.get(view, '')}")
    idle(page)
    _check_view(page, view, 150)
    cut = page.evaluate("""() => {
      const w = document.documentElement.clientWidth, out = [];
      for (const e of document.querySelectorAll(
          '[data-testid=stElementContainer], .js-plotly-plot .main-svg, [data-testid=stButton]')) {
        const r = e.getBoundingClientRect();
        if (r.width && (r.right > w + 1 || r.left < -1)) out.push(e.className || e.dataset.testid);
      }
      const main = document.querySelector('[data-testid=stMain]');
      if (main && main.scrollWidth > main.clientWidth + 1) out.push('horizontal scroll');
      return out; }""")
    assert cut == [], f"cut at 1024x768: {cut}"
    # the screenshot: the same page, tall enough to see all
    page.set_viewport_size({"width": 1024, "height": 1800})
    idle(page)
    _check_view(page, view, 150)
    page.screenshot(path=str(shots / f"app-{view}.png"))
    page.close()


def test_compare_runs_have_distinct_colours_and_hyperparameters(app_url, browser):
    page = browser.new_page()
    page.goto(f"{app_url}/?run=e2e&view=compare&compare=e2e,e2e-b")
    idle(page)
    page.locator(".st-key-compare_plot .pv-chart[data-pv-chart]").wait_for()
    legend = page.locator(".st-key-compare_plot .pv-legend > span").all_text_contents()
    names = legend[1:]  # after the legend's title
    assert legend[0] == "run (ν, λ, κ):"
    assert names == ["e2e (ν=50, λ=0.45, κ=1)", "e2e-b (ν=100, λ=0.45, κ=1)"]
    colours = page.evaluate("Array.from(document.querySelectorAll('.st-key-compare_plot"
                            " .pv-legend i')).map((i) => i.style.borderTopColor)")
    assert len(colours) == 2 and colours[0] != colours[1]
    page.close()


def _pick(page, container: str, option: str) -> None:
    """Choose ``option`` in the selectbox inside ``container`` (a CSS selector)."""
    page.locator(f"{container} [data-testid=stSelectbox]").first.click()
    page.get_by_role("option", name=option, exact=True).click()
    idle(page)


def _wait_shown(page, run: str, view: str, iteration: int, layer: str | None) -> None:
    """Wait until the page shows this run, view, iteration (and layer), and the URL says so."""
    page.wait_for_function("""([run, title, it, layer]) => {
        const q = new URLSearchParams(location.search);
        const picker = document.querySelector('[data-testid=stSidebar] input[aria-label=Run]');
        const active = document.querySelector(
            'button[data-variant=segmented_control][aria-checked=true]');
        return q.get('run') === run && q.get('iteration') === String(it)
            && (layer === null || q.get('layer') === layer)
            && picker && picker.value === run && active && active.textContent.trim() === title
            && (""" + SHOWN + """)(it); }""",
        arg=[run, VIEW_TITLES[view], iteration, layer], timeout=30_000)
    idle(page)
    _check_view(page, view, iteration, layer=layer or "conv2")


def test_back_and_forward_restore_the_view(app_url, browser):
    """Each action (step, view, layer, run) is one history entry; Back shows the view before it
    (its view, iteration, layer and run) and Forward the one after."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{app_url}/?run=e2e&view=overview&iteration=100")
    idle(page)
    shown_iteration(page, 100)
    start = page.evaluate("history.length")
    next_snapshot(page)
    shown_iteration(page, 105)
    page.wait_for_function("location.search.includes('iteration=105')")
    page.locator("button[data-variant=segmented_control]").filter(has_text="Layer").click()
    page.wait_for_function("location.search.includes('view=layer')")
    _check_view(page, "layer", 105, layer="conv1")
    _pick(page, "[data-testid=stMain]", "conv2")
    page.wait_for_function("location.search.includes('layer=conv2')")
    next_snapshot(page)
    shown_iteration(page, 110)
    page.wait_for_function("location.search.includes('iteration=110')")
    _pick(page, "[data-testid=stSidebar]", "e2e-b")
    _wait_shown(page, "e2e-b", "layer", 295, "conv1")  # another run: its own last iteration
    assert page.evaluate("history.length") == start + 5  # one entry per action, no extras
    # (run, view, iteration, layer) after each Back, newest first
    expected = [("e2e", "layer", 110, "conv2"), ("e2e", "layer", 105, "conv2"),
                ("e2e", "layer", 105, "conv1"), ("e2e", "overview", 105, None),
                ("e2e", "overview", 100, None)]
    for run, view, it, layer in expected:
        page.go_back()
        _wait_shown(page, run, view, it, layer)
    for run, view, it, layer in reversed(expected[:-1]):
        page.go_forward()
        _wait_shown(page, run, view, it, layer)
    page.go_forward()
    _wait_shown(page, "e2e-b", "layer", 295, "conv1")
    assert page.evaluate("history.length") == start + 5  # navigating added nothing
    assert not page.locator("[data-testid='stException']").count()
    page.close()


# Where iteration ``it`` is on a page-drawn figure: its x on the shared axis, in the middle of
# panel ``panel`` (computed by the panel's uPlot, through the player's debug entry point
# window.__pathvizPlayer.charts), so a real mouse click lands there.
_AT = """([key, it, panel]) => {
  const u = window.__pathvizPlayer.charts[key].plots[panel], r = u.over.getBoundingClientRect();
  return [r.left + u.valToPos(it, 'x'), r.top + r.height / 2];
}"""
# The page position of the ``j``-th point of the accuracy-against-size figure, and its iteration
_POINT = """([key, j]) => {
  const ch = window.__pathvizPlayer.charts[key], u = ch.plots[0], pts = ch.spec.points;
  const r = u.over.getBoundingClientRect();
  return [r.left + u.valToPos(pts.x[j], 'x'), r.top + u.valToPos(pts.y[j], 'y'),
          pts.it[j], pts.x.length];
}"""


@pytest.mark.parametrize("view,key,panel", [("layer", "layer_fig", 1),
                                            ("layer", "layer_fig", 0),
                                            ("metrics", "metrics_plot", 0)])
def test_a_click_on_the_plot_picks_the_iteration(app_url, browser, view, key, panel):
    """A click on the path plot, the Layer heatmap or the metrics plot selects the iteration
    under the pointer: the page, its marker and the link follow."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{app_url}/?run=e2e&view={view}&iteration=100&layer=conv2")
    idle(page)
    _check_view(page, view, 100)
    page.locator(f".st-key-{key} .pv-chart").scroll_into_view_if_needed()
    x, y = page.evaluate(_AT, [key, 200, panel])
    page.mouse.click(x, y)
    shown_iteration(page, 200)
    _check_view(page, view, 200)
    page.wait_for_function("location.search.includes('iteration=200')")
    assert not page.locator("[data-testid='stException']").count()
    page.close()


def test_a_click_on_a_point_of_the_size_plot_picks_its_iteration(app_url, browser):
    """On accuracy against parameters kept, a click on a point selects that evaluated
    snapshot, and the ring moves onto it."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{app_url}/?run=e2e&view=metrics&iteration=100")
    idle(page)
    _check_view(page, "metrics", 100)
    page.locator(".st-key-tradeoff_plot .pv-chart").scroll_into_view_if_needed()
    x, y, it, count = page.evaluate(_POINT, ["tradeoff_plot", 2])
    assert count > 3 and it != 100
    page.mouse.click(x, y)
    shown_iteration(page, int(it))
    page.wait_for_function(
        "(it) => { const b = document.querySelector('.st-key-tradeoff_plot .pv-chart');"
        " return b.dataset.pvMarkIt === String(it)"
        " && b.querySelector('.pv-ring').style.display === 'block'; }", arg=it)
    page.wait_for_function(f"location.search.includes('iteration={int(it)}')")
    page.close()


def test_a_drag_zooms_the_iteration_axis_and_a_double_click_zooms_out(app_url, browser):
    """Dragging across the metrics plot from iteration 100 to 200 zooms every panel's shared
    axis to that range without selecting anything; the subtitle says so; a click still selects
    an iteration inside it; a double-click shows the whole run again."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{app_url}/?run=e2e&view=metrics&iteration=50")
    idle(page)
    _check_view(page, "metrics", 50)
    box = ".st-key-metrics_plot .pv-chart"
    page.locator(box).scroll_into_view_if_needed()
    x0, y = page.evaluate(_AT, ["metrics_plot", 100, 0])
    x1, _ = page.evaluate(_AT, ["metrics_plot", 200, 0])
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, y, steps=4)
    page.mouse.move(x1, y, steps=4)
    page.mouse.up()
    page.wait_for_function(f"() => document.querySelector('{box}').dataset.pvZoom")
    lo, hi = map(int, page.get_attribute(box, "data-pv-zoom").split(","))
    assert abs(lo - 100) <= 3 and abs(hi - 200) <= 3, (lo, hi)
    assert "zoomed to iterations" in page.locator(f"{box} .pv-hf-sub").inner_text()
    scales = page.evaluate("""() => window.__pathvizPlayer.charts['metrics_plot'].plots
        .map((u) => [u.scales.x.min, u.scales.x.max])""")
    for a, b in scales:  # every panel's axis now spans the dragged range
        assert abs(a - lo) < 1 and abs(b - hi) < 1, scales
    assert page.get_attribute(box, "data-pv-mark") == "50"  # the drag selected nothing
    x, y = page.evaluate(_AT, ["metrics_plot", 150, 0])
    page.mouse.click(x, y)
    shown_iteration(page, 150)
    page.mouse.dblclick(x, y)
    page.wait_for_function(f"() => !document.querySelector('{box}').dataset.pvZoom")
    assert "zoomed" not in (page.locator(f"{box} .pv-hf-sub").inner_text() or "")
    page.close()
