"""The HTML report as a reader opens it: from disk, offline, in headless Chromium (Playwright).

    python bench/report_browser.py [--run DIR] [--snapshots 5000] [--moves 30] [--check]

Two runs, as in bench/app_browser.py: the demo (``--run DIR``, or trained here with ``--preset
demo``, about four minutes on two cores) and the synthetic 5000-snapshot cifar_vgg_16 path of
that bench (``make_vgg_run``, written without training). For each it prints:

- the report's size on disk and the time ``python -m pathviz.report`` took to write it;
- the page's load from ``file://`` until the player has drawn (every request counted: any
  request is a failure, the network being blocked);
- a scrub step per view (Overview, Layer, Metrics, presentation mode), measured in the page:
  the script's work (the key press's handlers, the redraw included; median) and the key press
  to the animation frame after the redraw (median / max: this waits for the display's next
  frame, up to 16.7 ms at 60 Hz, so it is the step as seen);
- play: frames drawn per second over 5 s at the player's fastest speed (96/s), Overview.

``--check`` exits 1 when a figure misses issue 33's targets: <= 5 MB for the demo and <= 25 MB
for the VGG path, a step <= 20 ms (median) and play >= 24 frames/s on the demo, 0 requests.
Numbers are from this one run on this machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from app_browser import CHROMIUM, HOOK, STEP_DRAWN, make_vgg_run, train_demo  # noqa: E402

TABS = ("overview", "layer", "metrics", "present")


def write_report(run: Path, out: Path) -> float:
    """Seconds ``python -m pathviz.report`` took to write ``out``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pathviz.report", str(run), "--out", str(out),
                    "--force"], cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - t0


def bench_page(browser, html: Path, moves: int) -> dict:
    """Load, steps per tab and play on one report."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    seen: list[str] = []

    def route(r):
        if r.request.url != html.as_uri():
            seen.append(r.request.url)
            r.abort()
        else:
            r.continue_()

    page.route("**/*", route)
    t0 = time.perf_counter()
    page.goto(html.as_uri())
    page.wait_for_function("() => document.body.dataset.ready === '1' && "
                           "window.__pathvizPlayer.drawn", timeout=60_000, polling="raf")
    out: dict = {"load": time.perf_counter() - t0}
    page.evaluate(HOOK)
    # after every keydown handler (the player's is on document; window's bubble runs last)
    page.evaluate("() => window.addEventListener('keydown', () => { "
                  "window.__doneAt = performance.now(); })")
    page.keyboard.press("Home")
    for tab in TABS:
        page.click(f"nav.tabs button[data-tab={tab}]")
        time.sleep(0.5)  # the tab's figures drawn
        steps, work = [], []
        for _ in range(moves):
            before = page.evaluate("window.__pathvizPlayer.frames")
            page.keyboard.press("ArrowRight")
            steps.append(page.evaluate(STEP_DRAWN, before))
            work.append(page.evaluate("window.__doneAt - window.__keyAt"))
        out[tab] = (statistics.median(work), statistics.median(steps), max(steps))
    page.click("nav.tabs button[data-tab=overview]")
    page.select_option(".pv-speed", "96")
    page.check(".pv-loop")
    page.locator(".pv-play").click()
    f0 = page.evaluate("window.__pathvizPlayer.frames")
    time.sleep(5.0)
    f1 = page.evaluate("window.__pathvizPlayer.frames")
    page.locator(".pv-play").click()
    out["fps"] = (f1 - f0) / 5.0
    out["requests"] = len(seen)
    page.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=None, help="a trained demo run (else trained)")
    ap.add_argument("--snapshots", type=int, default=5000)
    ap.add_argument("--moves", type=int, default=30)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    missed = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        demo = args.run
        if demo is None:
            train_demo(root)
            demo = root / "demo"
        vgg = make_vgg_run(root, n=args.snapshots).dir
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"Chromium from file://, network blocked")
        print("| run | size | written in | load | step (script; to next frame median / max): "
              "overview | layer | metrics | presentation | play | requests |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            for name, run, limit in (("demo", demo, 5e6), (f"vgg16 x{args.snapshots}", vgg,
                                                            25e6)):
                html = root / f"{run.name}.html"
                took = write_report(run, html)
                size = html.stat().st_size
                r = bench_page(browser, html, args.moves)
                steps = " | ".join(f"{r[t][0]:.1f}; {r[t][1]:.1f} / {r[t][2]:.0f} ms"
                                   for t in TABS)
                print(f"| {name} | {size / 1e6:.2f} MB | {took:.1f} s | {r['load']:.2f} s | "
                      f"{steps} | {r['fps']:.1f} frames/s | {r['requests']} |")
                if size > limit:
                    missed.append(f"{name}: {size / 1e6:.2f} MB > {limit / 1e6:.0f} MB")
                if r["requests"]:
                    missed.append(f"{name}: {r['requests']} requests")
                if name == "demo":
                    slow = [t for t in TABS if r[t][1] > 20]
                    if slow:
                        missed.append(f"demo step > 20 ms on {', '.join(slow)}")
                    if r["fps"] < 24:
                        missed.append(f"demo play {r['fps']:.1f} frames/s < 24")
            browser.close()
    if missed:
        print("missed: " + "; ".join(missed))
        if args.check:
            sys.exit(1)


if __name__ == "__main__":
    main()
