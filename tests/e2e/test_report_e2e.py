"""The report opened from disk in headless Chromium with the network blocked: no request at
all, the player steps and plays, every tab draws, the stop's figures are inspect --json's, and
a hostile run's text stays text."""

from __future__ import annotations

import json

import pytest

from pathviz import inspect
from pathviz.report.__main__ import main
from tests.e2e.conftest import NO_CHROMIUM, make_full_run
from tests.test_report import HOSTILE, LINK, hostile_run, stop_cells

pytestmark = pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium is not installed")


def open_report(browser, html):
    """The report at ``html`` in a fresh page: every request but the file itself is aborted
    and counted."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    seen: list[str] = []
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url != html.as_uri():
            seen.append(r.request.url)
            r.abort()
        else:
            r.continue_()

    page.route("**/*", route)
    page.goto(html.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    return ctx, page, seen, errors


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    paths = make_full_run(tmp / "ck", "e2e")
    out = tmp / "e2e.html"
    assert main([str(paths.dir), "--out", str(out)]) == 0
    return paths, out


def test_report_offline_player_tabs_and_numbers(browser, report, capsys):
    paths, html = report
    ctx, page, seen, errors = open_report(browser, html)
    line = page.locator(".pv-player .pv-line")
    first = line.inner_text()
    assert first.startswith("Iteration ")
    page.locator("body").press("ArrowRight")
    assert line.inner_text() != first  # a step, drawn in the page
    frames = page.evaluate("window.__pathvizPlayer.frames")
    page.locator(".pv-play").click()
    page.wait_for_timeout(700)
    page.locator(".pv-play").click()
    assert page.evaluate("window.__pathvizPlayer.frames") > frames + 5  # play moved it
    assert page.evaluate("document.querySelector('.st-key-overview .pv-heatfig').__pvTexts"
                         ".some((t) => t.text === 'conv2')")
    # Layer: any layer, its figure and its caption
    page.click("nav.tabs button[data-tab=layer]")
    page.select_option("#layer-pick", "fc1")
    page.locator(".st-key-layer_fig .pv-chart .uplot").first.wait_for()
    assert "fc1" in page.locator(".st-key-layer_at p.pv-text").inner_text()
    # Metrics: the figures and the stop's rule
    page.click("nav.tabs button[data-tab=metrics]")
    page.locator(".st-key-metrics_plot .pv-chart .uplot").first.wait_for()
    assert "within 1 standard error" in page.locator("#stop-line").inner_text()
    # presentation mode: the status line, the entry-ordered heatmap and the support path
    page.click("nav.tabs button[data-tab=present]")
    page.locator(".st-key-present_path .uplot").wait_for()
    assert page.locator(".st-key-present_status p.pv-text").inner_text().startswith("iteration")
    page.keyboard.press("End")
    assert "62 of 62 filters selected" in page.locator(".st-key-present_status p.pv-text"
                                                       ).inner_text()
    # the stop's figures, as shown, are inspect's
    assert inspect.main([str(paths.dir), "--json"]) == 0
    stop = json.loads(capsys.readouterr().out)["stop"]
    shown = stop_cells(page.content())
    assert shown["params_kept"] == stop["params_kept"] and shown["val_acc"] == stop["val_acc"]
    assert page.locator("td[data-key=test_acc_sparse]").inner_text() == \
        f"{100 * stop['test_acc_sparse']:.2f} %"
    assert seen == [] and errors == []
    ctx.close()


def test_hostile_run_text_stays_text(browser, tmp_path):
    paths = hostile_run(tmp_path / "ck")
    html = tmp_path / "hostile.html"
    assert main([str(paths.dir), "--out", str(html)]) == 0
    ctx, page, seen, errors = open_report(browser, html)
    page.click("nav.tabs button[data-tab=layer]")
    page.click("nav.tabs button[data-tab=metrics]")
    page.click("nav.tabs button[data-tab=overview]")
    assert page.evaluate("window.__pwned") is None  # no injected handler or script ran
    assert page.locator("a, img, iframe, object, embed, form").count() == 0
    facts = page.locator("#facts").inner_text()
    assert HOSTILE in facts  # shown as written
    assert LINK in facts.replace("\u200d", "")  # a joiner breaks each scheme, nothing else
    assert seen == [] and errors == []
    ctx.close()
