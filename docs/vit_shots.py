"""The README's screenshots of a transformer run, taken in headless Chromium 1024 px wide.

    python docs/vit_shots.py checkpoints/vit_demo

Serves the run's checkpoints folder with ``streamlit run app.py`` and writes
docs/app-vit-overview.png (the Overview at the suggested stop at 1024x768, the hover on a
selected head) and docs/app-vit-layer.png (the Layer view's figure of block 1's heads by entry
time, 1024 px wide; the window is 1,400 px high so that the whole 800 px figure is in view,
clear of the app's header). It prints the hover text it showed, so the README can quote it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from docs.screenshots import served_browser  # noqa: E402
from pathviz import inspect  # noqa: E402
from tests.e2e.conftest import idle, shown_iteration  # noqa: E402

DOCS = REPO / "docs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished vit_tiny run folder")
    args = ap.parse_args()
    run = args.run.resolve()
    stop = (inspect.summary(run).get("stop") or {}).get("iteration")
    if stop is None:
        raise SystemExit(f"{run} has no suggested stop: train it to the end first")
    with served_browser(run) as (browser, url):
        page = browser.new_page(viewport={"width": 1024, "height": 768})
        page.goto(f"{url}/?run={run.name}&view=overview&iteration={stop}")
        idle(page)
        shown_iteration(page, stop)
        box = page.locator(".st-key-overview .pv-heatfig")
        box.scroll_into_view_if_needed()
        # the first selected cell of block 1's heads (row 2), else the row's first cell
        g = page.evaluate("""() => {
          const b = document.querySelector('.st-key-overview .pv-heatfig');
          const r = b.querySelector('canvas.pv-heat').getBoundingClientRect(), g = b.__pvGeom;
          const z = b.__pvZ, row = 2;
          let c = 0;
          while (c < z.cols - 1 && !z.z[row * z.cols + c]) c += 1;
          return [r.left + g.left + (c + 0.5) * g.w / z.cols,
                  r.top + g.top + (row + 0.5) * g.h / z.rows]; }""")
        page.mouse.move(*g)
        tip = page.locator(".st-key-overview .pv-hf-tip")
        tip.wait_for(state="visible")
        print("Overview hover:", tip.inner_text().replace("\n", " / "))
        page.screenshot(path=str(DOCS / "app-vit-overview.png"))
        page.goto(f"{url}/?run={run.name}&view=layer&layer=blocks.1.attn&iteration={stop}")
        idle(page)
        shown_iteration(page, stop)
        page.locator(".st-key-layer_fig .pv-chart[data-pv-chart]").wait_for()
        page.set_viewport_size({"width": 1024, "height": 1400})
        page.locator(".st-key-layer_fig").evaluate("(e) => e.scrollIntoView({block: 'center'})")
        time.sleep(0.5)
        fig = page.locator(".st-key-layer_fig")
        fig.scroll_into_view_if_needed()
        fig.screenshot(path=str(DOCS / "app-vit-layer.png"))  # the whole figure
    print(f"wrote {DOCS / 'app-vit-overview.png'} and {DOCS / 'app-vit-layer.png'} "
          f"(iteration {stop:,})")


if __name__ == "__main__":
    main()
