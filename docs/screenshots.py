"""The docs' screenshots of the app, taken in headless Chromium on a run you name.

    python docs/screenshots.py checkpoints/shots docs

Serves the run's checkpoints folder with ``streamlit run app.py`` (live refresh off) and writes,
into the output folder, at the run's suggested stop (else its last snapshot):

- app-overview.png, app-layer.png, app-metrics.png, app-compare.png: each view 1024 px wide,
  the window 1,800 px high so that the whole view is in the picture (Compare with every run
  of the run's checkpoints folder: train a sibling, e.g. ``--nu 100``, to see two paths);
- app-metrics-1400.png: the Metrics view 1,400 px wide (2,000 px high);
- app-present-1024.png, app-present-1920.png: presentation mode at 1024x768 and 1920x1080.

The browser tests (tests/e2e/) take the same pages into a temporary folder to check them; they
never write into docs/. ``docs/vit_shots.py`` takes the two screenshots of a vit_demo run.
Needs Debian's Chromium (``apt-get install chromium``) and a finished run.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pathviz import inspect  # noqa: E402
from tests.e2e.conftest import CHROMIUM, NO_CHROMIUM, idle, serve  # noqa: E402

# (file name, URL parameters after run= and iteration=, window width, window height)
SHOTS = [("app-overview.png", "&view=overview", 1024, 1800),
         ("app-layer.png", "&view=layer", 1024, 1800),
         ("app-metrics.png", "&view=metrics", 1024, 1800),
         ("app-compare.png", "&view=compare&compare={siblings}", 1024, 1800),
         ("app-metrics-1400.png", "&view=metrics", 1400, 2000),
         ("app-present-1024.png", "&present=1", 1024, 768),
         ("app-present-1920.png", "&present=1", 1920, 1080)]



@contextlib.contextmanager
def served_browser(run: Path) -> Iterator[tuple[object, str]]:
    """Headless Chromium and the URL of ``streamlit run app.py`` serving ``run``'s checkpoints
    folder with live refresh off; both are closed, and the server's log removed, on leaving."""
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="pathviz-shots-"))
    proc, log, url = serve(run.parent, tmp / "streamlit.log", {"PATHVIZ_REFRESH": "0"})
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            yield browser, url
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished run folder (e.g. the demo's)")
    ap.add_argument("out", type=Path, help="an existing folder for the PNG files (e.g. docs)")
    args = ap.parse_args(argv)
    run, out = args.run.resolve(), args.out.resolve()
    if not out.is_dir():
        print(f"{out} is not a folder; create it or name docs", file=sys.stderr)
        return 2
    if NO_CHROMIUM:
        print(f"no Chromium at {CHROMIUM}; install it with apt-get install chromium",
              file=sys.stderr)
        return 2
    try:
        summary = inspect.summary(run)
    except Exception as e:  # inspect's own one-sentence reasons (not a run, damaged file, ...)
        print(f"{run}: {e}", file=sys.stderr)
        return 2
    iteration = (summary.get("stop") or {}).get("iteration", summary["iterations"])
    # Compare shows the run with every finished run beside it in its checkpoints folder
    siblings = ",".join(sorted(p.name for p in run.parent.iterdir()
                               if (p / "path.h5").is_file()))
    with served_browser(run) as (browser, url):
        for name, params, width, height in SHOTS:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"{url}/?run={run.name}&iteration={iteration}"
                      f"{params.format(siblings=siblings)}")
            idle(page)
            page.screenshot(path=str(out / name))
            page.close()
            print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
