"""docs/report.md's screenshots: a run's HTML report opened from disk in headless Chromium with
the network blocked.

    python docs/report_shots.py checkpoints/demo

Writes the report with ``python -m pathviz.report`` to a temporary folder, opens it as
``file://`` (every request but the file aborted; the script fails if any is made) and writes
docs/report-overview.png (the top of the page at the suggested stop, 1280x900) and
docs/report-present.png (presentation mode, 1280x800). It prints the player's line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.conftest import CHROMIUM  # noqa: E402

DOCS = REPO / "docs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "report.html"
        subprocess.run([sys.executable, "-m", "pathviz.report", str(args.run), "--out",
                        str(html)], check=True, cwd=REPO)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            seen: list[str] = []

            def route(r):
                if r.request.url != html.as_uri():
                    seen.append(r.request.url)
                    r.abort()
                else:
                    r.continue_()

            page.route("**/*", route)
            page.goto(html.as_uri())
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_timeout(500)
            print(page.inner_text(".pv-player .pv-line"))
            page.screenshot(path=DOCS / "report-overview.png")
            page.set_viewport_size({"width": 1280, "height": 800})
            page.click("nav.tabs button[data-tab=present]")
            page.locator(".st-key-present_path .uplot").wait_for()
            page.locator("#player").scroll_into_view_if_needed()
            page.evaluate("window.scrollTo(0, document.querySelector('nav.tabs').offsetTop)")
            page.wait_for_timeout(500)
            page.screenshot(path=DOCS / "report-present.png")
            browser.close()
        if seen:
            sys.exit(f"the report made {len(seen)} requests: {seen[:3]}")


if __name__ == "__main__":
    main()
