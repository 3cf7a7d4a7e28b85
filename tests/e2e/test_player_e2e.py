"""End to end in headless Chromium (issue 18, item 1): the browser player.

Steps and play happen in the page over data shipped once: the keyboard (←/→, Shift ×10,
Home/End, Space), the speed and loop controls, the heatmap drawn in the page equal to the one
the server draws for the same snapshot, the server told the position only after a pause (then
the URL, the number box and the tables follow), server-side moves (Jump, Back/Forward) reaching
the player, the presentation status line written in the page as the server writes it, and a
live run appended to the page's copy without reloading it.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from pathviz import runs
from pathviz.store import PathFileError, PathReader
from tests.e2e.conftest import NO_CHROMIUM, button, idle, make_full_run, serve

pytestmark = pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium is not installed")

LINE = ".pv-player .pv-line"
STATE = """() => { const P = window.__pathvizPlayer;
  const heatZ = () => {  // the cells the Overview heatmap drew (its hover reads them)
    const b = document.querySelector('.st-key-overview .pv-heatfig'), z = b && b.__pvZ;
    return z && {rows: z.rows, cols: z.cols, row: z.row, z: Array.from(z.z)}; };
  return {pos: Math.floor(P.pos), frames: P.frames, playing: P.playing,
          loads: Object.values(P.loads),
          z: heatZ()}; }"""


def server_z(app_url, index: int) -> list[list[int]]:
    """The cells of the server's Overview figure (plots.overview_heatmap) at snapshot ``index``
    of the e2e run, as lists."""
    from pathviz import plots
    from pathviz.store import PathReader
    from tests.e2e.conftest import root_of

    with PathReader(runs.run_paths("e2e", root_of(app_url)).path) as r:
        snap = r.snapshot(index)
    fig = plots.overview_heatmap(list(snap), {k: v["gamma_norm"] for k, v in snap.items()})
    return np.asarray(fig.data[0].z).tolist()


def hover_text(page, x: float, y: float) -> str:
    """The heatmap's hover label with the pointer at (x, y) of its plot area (fractions)."""
    g = page.evaluate("""() => { const b = document.querySelector('.st-key-overview .pv-heatfig');
      const r = b.querySelector('canvas.pv-heat').getBoundingClientRect(), g = b.__pvGeom;
      return {x: r.left + g.left, y: r.top + g.top, w: g.w, h: g.h}; }""")
    page.mouse.move(g["x"] + x * g["w"], g["y"] + y * g["h"])
    tip = page.locator(".st-key-overview .pv-hf-tip")
    tip.wait_for(state="visible")
    return tip.inner_text()


def open_at(browser, url: str, query: str, width: int = 1400, height: int = 1000,
            clock: bool = False):
    """A page at ``query`` once the player is alive; with ``clock``, on Playwright's fake clock
    (time flows as usual until the test pauses it)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    if clock:
        page.clock.install()
    page.goto(f"{url}/?{query}")
    page.wait_for_selector(".pv-player")
    idle(page)
    page.wait_for_function("window.__pathvizPlayer && window.__pathvizPlayer.alive")
    idle(page)
    return page


def line(page) -> str:
    return page.locator(LINE).text_content()


def settled_at(page, iteration: int) -> None:
    """The server has heard of the pause at ``iteration``: the URL names it, the script is idle."""
    page.wait_for_function(
        "(it) => new URLSearchParams(window.location.search).get('iteration') === String(it)",
        arg=iteration, timeout=30_000)
    idle(page)


def test_keys_step_in_the_page_and_a_pause_updates_the_server(app_url, browser):
    page = open_at(browser, app_url, "run=e2e&view=overview&iteration=100")
    try:
        assert line(page).startswith("Iteration 100 · epoch 2.00 · snapshot 21 of 60")
        assert page.locator(".st-key-pv_fallback").is_hidden()  # the server's picker
        page.locator(".pv-range").focus()
        seen = []
        for key in ("ArrowRight", "Shift+ArrowRight", "ArrowLeft"):
            page.keyboard.press(key)
            seen.append(line(page).split(" · ")[0])  # drawn at once, before any server rerun
        assert seen == ["Iteration 105", "Iteration 155", "Iteration 150"]
        settled_at(page, 150)
        assert page.locator("input[aria-label='Go to iteration']").input_value() == "150"
        heat = page.locator(".st-key-overview .pv-hf-title").text_content()
        assert heat == "Gamma support by layer at iteration 150"
        state = page.evaluate(STATE)
        assert state["z"]["row"] == 30 and state["loads"] == [1]
        z_page = [state["z"]["z"][r * state["z"]["cols"]:(r + 1) * state["z"]["cols"]]
                  for r in range(state["z"]["rows"])]
        assert z_page == server_z(app_url, 30)  # the colours of the server's own figure
        assert page.locator(".st-key-overview .js-plotly-plot").count() == 0  # no plotly
        # the hover names the cell under the pointer as the server's figure did
        tip = hover_text(page, 0.01, 0.1)  # the first layer's first cell
        assert tip.startswith("conv1, filter 0\n") and f"level {z_page[0][0]} of 255" in tip
        tip = hover_text(page, 0.99, 0.9)  # the last layer's last cell
        assert tip.startswith(f"fc1, filter {len(z_page[2]) - 1}\n")
        page.keyboard.press("Home")
        assert line(page).startswith("Iteration 0 ")
        page.keyboard.press("End")
        assert line(page).startswith("Iteration 295 ") and "snapshot 60 of 60" in line(page)
        settled_at(page, 295)
        assert page.evaluate(STATE)["loads"] == [1]  # a pause never resends the path
    finally:
        page.close()


def test_space_plays_and_pauses_loop_wraps_and_speed_sets_the_rate(app_url, browser):
    """Speed sets the rate, counted on Playwright's fake clock: with the page's time paused, a
    second run in 16 ms animation frames plays 6 snapshots at speed 6 and 48 at speed 48 (±1), on a
    machine however busy (a count over a real second once failed on a loaded CI machine)."""
    page = open_at(browser, app_url, "run=e2e&view=overview&iteration=0", clock=True)
    try:
        page.select_option(".pv-speed", "6")
        page.clock.pause_at(page.evaluate("Date.now()") + 1000)
        page.locator("body").press("Space")
        t0 = page.evaluate(STATE)["frames"]
        page.clock.run_for(1000)
        slow = page.evaluate(STATE)["frames"] - t0
        page.select_option(".pv-speed", "48")
        t0 = page.evaluate(STATE)["frames"]
        page.clock.run_for(1000)
        fast = page.evaluate(STATE)["frames"] - t0
        assert 5 <= slow <= 7 and 46 <= fast <= 50, (slow, fast)  # ±1 for the frame phase
        page.locator("body").press("Space")
        state = page.evaluate(STATE)
        assert not state["playing"]
        page.clock.resume()  # the report to the server waits on a timer
        paused = line(page)
        settled_at(page, 5 * state["pos"])
        assert line(page) == paused
        # loop: play from the end wraps to the start instead of stopping
        page.check(".pv-loop")
        page.keyboard.press("End")
        page.locator(".pv-play").click()
        page.wait_for_function("window.__pathvizPlayer.pos < 30 && window.__pathvizPlayer.playing")
        page.locator(".pv-play").click()
        page.uncheck(".pv-loop")
        page.locator(".pv-play").click()  # without loop, play stops at the last snapshot
        page.wait_for_function("!window.__pathvizPlayer.playing", timeout=20_000)
        assert line(page).startswith("Iteration 295 ")
    finally:
        page.close()


def test_a_play_link_plays_in_the_page(app_url, browser):
    page = open_at(browser, app_url, "run=e2e&view=overview&iteration=0&play=1")
    try:
        page.wait_for_function("window.__pathvizPlayer.playing", timeout=30_000)
        f0 = page.evaluate(STATE)["frames"]
        page.wait_for_function(f"window.__pathvizPlayer.frames > {f0} + 5", timeout=30_000)
        page.locator(".pv-play").click()
        assert not page.evaluate(STATE)["playing"]
    finally:
        page.close()


def test_server_moves_reach_the_player_jump_and_back_forward(app_url, browser):
    page = open_at(browser, app_url, "run=e2e&view=metrics&iteration=50")
    try:
        page.locator(".pv-range").focus()
        for _ in range(10):
            page.keyboard.press("ArrowRight")
        settled_at(page, 100)
        mark = page.locator(".st-key-metrics_plot .pv-chart").get_attribute("data-pv-mark")
        assert mark == "100"  # the marker moved with the player
        button(page, "Jump").click()
        page.wait_for_function("() => new URLSearchParams(window.location.search)"
                               ".get('iteration') !== '100'", timeout=30_000)
        idle(page)
        stop = page.evaluate("new URLSearchParams(window.location.search).get('iteration')")
        page.wait_for_function(f"() => document.querySelector('.pv-line').textContent"
                               f".replace(/,/g, '').startsWith('Iteration {stop} ')")
        page.go_back()
        page.wait_for_function("() => document.querySelector('.pv-line').textContent"
                               ".startsWith('Iteration 100 ')", timeout=30_000)
        page.go_back()
        page.wait_for_function("() => document.querySelector('.pv-line').textContent"
                               ".startsWith('Iteration 50 ')", timeout=30_000)
    finally:
        page.close()


def test_the_presentation_status_line_says_the_counts_and_the_nearest_w_star(
        app_url, browser, tmp_path):
    """The status line (written by the page only) gives the snapshot's selected filters out of
    all, and W*: the compact subnetwork's validation accuracy evaluated nearest, naming the
    split, and the iteration where that is not this one."""
    from pathviz.store import PathReader

    make_full_run(tmp_path, "e2e", nu=50.0)  # the same file as the server's (deterministic)
    with PathReader(tmp_path / "e2e" / "path.h5") as r:
        its, acc = r.iterations, r.metrics()["val_acc_sparse"]
        snaps = {i: r.snapshot(i) for i in (20, 30, 59)}

    def counts(index: int) -> str:
        snap = snaps[index]
        selected = sum(int((v["gamma_norm"] > 0).sum()) for v in snap.values())
        total = sum(len(v["gamma_norm"]) for v in snap.values())
        return f"iteration {int(its[index])} · {selected} of {total} filters selected · "

    assert np.isfinite(acc[20]) and np.isfinite(acc[30]) and not np.isfinite(acc[59])
    page = open_at(browser, app_url, "run=e2e&present=1&iteration=100", 1024, 768)
    try:
        status = ".st-key-present_status p"
        assert page.locator(status).text_content() == (
            counts(20) + f"W* {100 * acc[20]:.1f} % (validation)")
        page.locator("body").press("Shift+ArrowRight")
        assert page.locator(status).text_content() == (  # written in the page
            counts(30) + f"W* {100 * acc[30]:.1f} % (validation)")
        page.keyboard.press("End")
        want = counts(59) + f"W* {100 * acc[58]:.1f} % (validation, at {int(its[58])})"
        assert page.locator(status).text_content() == want
        settled_at(page, 295)
        assert page.locator(status).text_content() == want
    finally:
        page.close()


def _snapshots(path) -> int:
    """Snapshots in a path file being written (0 while it is missing or not yet readable)."""
    try:
        with PathReader(path) as r:
            return r.n_snapshots
    except (OSError, PathFileError):  # not there yet, or caught mid-creation
        return 0


def test_a_live_run_grows_the_pages_copy_without_reloading_it(tmp_path, browser):
    root = tmp_path / "checkpoints"
    root.mkdir()
    paths = runs.run_paths("live", root)
    runs.start_worker(paths, ["--preset", "demo", "--threads", "1"])
    proc, log, url = serve(root, tmp_path / "streamlit.log", {"PATHVIZ_REFRESH": "1"})
    try:
        # the worker's start-up (torch's import, the data) is not what this test is about, and
        # on a CI machine busy with other tests it can take a minute: the page opens on a path
        # that is being written (the start-up states have tests of their own in test_live_e2e)
        deadline = time.monotonic() + 240
        while not _snapshots(paths.path) > 5:
            assert time.monotonic() < deadline, "the worker wrote no path in 240 s"
            time.sleep(0.5)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/?run=live&view=overview")
        page.wait_for_function("() => { const P = window.__pathvizPlayer; const c = P && P.data"
                               " && P.cache[P.data.key]; return c && c.iterations.length > 5; }",
                               timeout=120_000)
        page.evaluate("() => { const P = window.__pathvizPlayer; P.cache[P.data.key].mark = 1; }")
        first = page.evaluate("() => { const P = window.__pathvizPlayer;"
                              " return P.cache[P.data.key].iterations.length; }")
        page.wait_for_function(f"() => {{ const P = window.__pathvizPlayer;"
                               f" const c = P.cache[P.data.key];"
                               f" return c.iterations.length > {first} + 20; }}", timeout=120_000)
        grown = page.evaluate("""() => { const P = window.__pathvizPlayer;
            const c = P.cache[P.data.key];
            return {mark: c.mark, loads: P.loads[P.data.key], n: c.iterations.length,
                    pos: Math.floor(P.pos), rows: c.rows.size}; }""")
        assert grown["mark"] == 1 and grown["loads"] == 1  # appended, never reloaded
        assert grown["pos"] == grown["n"] - 1 and grown["rows"] == grown["n"], grown  # following
        page.close()
    finally:
        runs.stop_worker(paths)
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
