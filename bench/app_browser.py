"""The app as users wait for it: headless Chromium (Playwright) on a 5000-snapshot cifar_vgg_16 run.

    python bench/app_browser.py [--snapshots 5000] [--moves 10] [--keep DIR]

Writes a synthetic but plausible cifar_vgg_16 path (13 conv layers, 4224 filters; filters enter
at spread-out times, norms grow after entry, metrics evaluated every 10th snapshot, weights at 4
iterations) without training, serves the app on it, and for each view prints the page load time,
then the median and max time per scrub step (one snapshot, the slider's arrow key) until the page
has settled (script idle, the new iteration shown, the marker moved, two animation frames drawn),
and the bytes the server sent per step. Play frames are timed from one drawn frame to the next
(that includes the play timer's 0.4 s). Numbers are from this one run on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pathviz import runs  # noqa: E402
from pathviz.store import PathWriter, Snapshot  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STEP = 20  # iterations between snapshots in the synthetic run


def vgg_layers() -> list[dict]:
    """The Gamma layers of cifar_vgg_16 as the worker records them (imports torch)."""
    from pathviz.groups import gamma_layers
    from pathviz.models import build_model

    return [s.to_json() for s in gamma_layers(build_model("cifar_vgg_16"))]


def make_vgg_run(root: Path, name: str = "vgg", n: int = 5000, seed: int = 0) -> runs.RunPaths:
    """A finished run folder whose path looks like SLBI on cifar_vgg_16 (no training)."""
    layers = vgg_layers()
    rng = np.random.default_rng(seed)
    paths = runs.run_paths(name, root)
    paths.dir.mkdir(parents=True)
    per_group = {lay["name"]: int(np.prod(lay["shape"][1:])) for lay in layers}
    params_total = sum(int(np.prod(lay["shape"])) for lay in layers)
    first = layers[0]
    weights = [{"name": first["param"], "shape": first["shape"], "dtype": "float32"}]
    # entry snapshot of each filter: early for most, a long tail, a fifth never enter
    entry = {lay["name"]: np.where(rng.random(lay["groups"]) < 0.8,
                                   (rng.exponential(0.25, lay["groups"]) * n).astype(np.int64),
                                   n + 1) for lay in layers}
    scale = {lay["name"]: rng.uniform(0.5, 2.0, lay["groups"]).astype(np.float32)
             for lay in layers}
    w0 = {lay["name"]: rng.uniform(0.5, 1.5, lay["groups"]).astype(np.float32) for lay in layers}
    eval_every, weight_rows = 10, {n // 5, 2 * n // 5, 3 * n // 5, n - 1}
    cfg = {"model": "cifar_vgg_16", "dataset": "cifar10", "nu": 100.0, "lam": 1.0,
           "kappa": 1.0, "lr": 0.1}
    model = {"name": "cifar_vgg_16", "kwargs": {}, "input_shape": [3, 32, 32],
             "num_classes": 10, "params_total": params_total, "flops_total": 313_000_000}
    data = {"dataset": "cifar10", "n_train": 45000, "n_val": 5000, "n_test": 10000}
    with PathWriter(paths.path, config=cfg, layers=layers, weights=weights, model=model,
                    data=data, flush_interval=5.0) as w:
        for i in range(n):
            t = i / n
            stats, kept, inside_all = {}, 0, []
            for lay in layers:
                nm = lay["name"]
                since = np.maximum(i - entry[nm], 0).astype(np.float32)
                inside = entry[nm] <= i
                gn = np.where(inside, scale[nm] * (1 - np.exp(-since / (0.1 * n))) + 1e-3,
                              0).astype(np.float32)
                wn = (w0[nm] * (0.6 + 0.4 * np.exp(-3 * t)) + 0.5 * gn
                      + rng.normal(0, 0.01, lay["groups"])).astype(np.float32)
                stats[nm] = (gn, wn, (inside * per_group[nm]).astype(np.int32))
                kept += int(inside.sum()) * per_group[nm]
                inside_all.append(inside)
            frac_in = float(np.mean(np.concatenate(inside_all)))
            acc = 0.1 + 0.83 * (1 - np.exp(-6 * t))
            metrics = {"train_loss": 2.3 * np.exp(-4 * t) + 0.05, "train_acc": min(acc + 0.05, 1),
                       "lr": 0.1, "sparsity": 1 - frac_in}
            if i % eval_every == 0 or i == n - 1:
                sparse = 0.1 + 0.8 * frac_in ** 0.5 * (1 - np.exp(-6 * t))
                metrics.update(val_acc=acc + rng.normal(0, 0.003), test_acc=acc - 0.005,
                               val_acc_sparse=sparse + rng.normal(0, 0.003),
                               test_acc_sparse=sparse - 0.004, val_loss=2.3 * (1 - acc) + 0.2,
                               test_loss=2.3 * (1 - acc) + 0.21, params_kept=float(kept),
                               flops_kept=313e6 * kept / params_total)
            w.append(Snapshot(i * STEP, i / 50, i * 0.5, metrics, stats))
            if i in weight_rows:
                w.append_weights(i * STEP, {first["param"]: rng.standard_normal(
                    first["shape"]).astype(np.float32)},
                    {lay["param"]: np.zeros(lay["shape"], np.float32) for lay in layers})
    paths.config.write_text(json.dumps(cfg))
    runs.write_status(paths, state="finished", reason="", snapshots=n, iteration=(n - 1) * STEP,
                      total_iterations=(n - 1) * STEP, config=cfg, heartbeat=0)
    return paths


def serve(root: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` on a free port, answering its health check."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"], cwd=REPO, stdout=open(log, "w"),
        stderr=subprocess.STDOUT, env={**os.environ, "PATHVIZ_CHECKPOINTS": str(root),
                                       "PATHVIZ_REFRESH": "0"})
    url = f"http://localhost:{port}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(log.read_text())


SETTLED = """([it, keys]) => {
  const app = document.querySelector("[data-testid='stApp']");
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelectorAll('[data-testid=stSkeleton]').length) return false;
  const txt = Array.from(document.querySelectorAll('[data-testid=stMarkdownContainer] strong'))
    .some((e) => e.textContent.replace(/,/g, '') === 'Iteration ' + it);
  if (!txt) return false;
  for (const k of keys) {
    const gd = document.querySelector('.st-key-' + k + ' .js-plotly-plot');
    if (!gd || gd.dataset.pvMark !== String(it)) return false;
  }
  return true;
}"""


def settle(page, iteration: int, keys: list[str]) -> None:
    page.wait_for_function(SETTLED, arg=[iteration, keys], timeout=60_000, polling="raf")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def bench_view(browser, url: str, label: str, query: str, keys: list[str], start: int,
               moves: int) -> dict:
    """Load the page at ``start`` and step the slider ``moves`` times, one snapshot each."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    sent = [0]
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda payload: sent.__setitem__(0, sent[0] + len(payload))))
    t0 = time.perf_counter()
    page.goto(f"{url}/?run=vgg&iteration={start}&{query}")
    settle(page, start, keys)
    load = time.perf_counter() - t0
    thumb = page.locator("[data-testid='stSlider'] input[type='range'], "
                         "[data-testid='stSlider'] [role='slider']").first
    thumb.focus()
    times, sizes, it = [], [], start
    for _ in range(moves):
        it += STEP
        sent[0] = 0
        t0 = time.perf_counter()
        page.keyboard.press("ArrowRight")
        settle(page, it, keys)
        times.append(time.perf_counter() - t0)
        sizes.append(sent[0])
        time.sleep(0.25)  # let the slider's release debounce pass before the next key
    page.close()
    return {"view": label, "load": load, "median": statistics.median(times), "max": max(times),
            "bytes": statistics.median(sizes)}


def bench_play(browser, url: str, frames: int) -> dict:
    """Press Play on the Overview and time frame-to-frame until ``frames`` frames were drawn."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/?run=vgg&iteration=0&view=overview")
    settle(page, 0, [])
    page.evaluate("""() => { window.__frames = []; new MutationObserver(() => {
        const s = Array.from(document.querySelectorAll('[data-testid=stMarkdownContainer] strong'))
          .map((e) => e.textContent).find((t) => t.startsWith('Iteration '));
        if (s && s !== window.__last) {
          window.__last = s; window.__frames.push(performance.now()); }
      }).observe(document.body, {subtree: true, childList: true, characterData: true}); }""")
    page.get_by_role("button", name="Play").click()
    page.wait_for_function(f"window.__frames.length > {frames}", timeout=120_000)
    stamps = page.evaluate("window.__frames")
    page.get_by_role("button", name="Pause").click()
    page.close()
    gaps = np.diff(stamps[1:frames + 1]) / 1e3
    return {"median": float(np.median(gaps)), "max": float(np.max(gaps))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--snapshots", type=int, default=5000)
    ap.add_argument("--moves", type=int, default=10)
    ap.add_argument("--keep", type=Path,
                    help="write the run here and keep it (default: a temp dir)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="pathviz-bench-"))
    root = args.keep or tmp / "checkpoints"
    try:
        if not runs.run_paths("vgg", root).path.exists():
            t0 = time.perf_counter()
            make_vgg_run(root, n=args.snapshots)
            print(f"synthetic cifar_vgg_16 run: {args.snapshots} snapshots written in "
                  f"{time.perf_counter() - t0:.0f} s")
        proc, url = serve(root, tmp / "streamlit.log")
        cpu = platform.processor() or platform.machine()
        print(f"{time.strftime('%Y-%m-%d')} · {platform.node()} · {cpu}"
              f" · {os.cpu_count()} CPU cores · headless Chromium, viewport 1400x1000")
        mid = (args.snapshots // 2) * STEP
        cases = [("Overview", "view=overview", []),
                 ("Layer, 64 filters", "view=layer&layer=features.0", ["layer_fig"]),
                 ("Layer, 512 filters", "view=layer&layer=features.40", ["layer_fig"]),
                 ("Metrics", "view=metrics", ["metrics_plot"])]
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
                print(f"{'view':20} {'load':>7} {'step median':>12} {'step max':>9} "
                      f"{'sent per step':>14}")
                for label, query, keys in cases:
                    r = bench_view(browser, url, label, query, keys, mid, args.moves)
                    print(f"{label:20} {r['load']:6.2f}s {1e3 * r['median']:10.0f}ms "
                          f"{1e3 * r['max']:7.0f}ms {r['bytes'] / 1e3:11.1f} kB")
                r = bench_play(browser, url, args.moves)
                print(f"Play (Overview): frame to frame median {1e3 * r['median']:.0f} ms, max "
                      f"{1e3 * r['max']:.0f} ms (includes the 400 ms play timer)")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
