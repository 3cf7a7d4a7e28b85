"""Browser fixtures: a Streamlit server on prepared runs, and headless Chromium (Playwright)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from pathviz import runs
from pathviz.store import PathWriter, Snapshot

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPO = Path(__file__).parents[2]

NO_CHROMIUM = not os.path.exists(CHROMIUM)


def make_full_run(root: Path, name: str, n: int = 60, nu: float = 50.0,
                  state: str = "finished",
                  layer_names: tuple[str, str, str] = ("conv1", "conv2", "fc1")
                  ) -> runs.RunPaths:
    """A lenet5-shaped run with every optional metric (so the stop and its band exist): two
    conv layers and a linear one, named ``layer_names``."""
    paths = runs.run_paths(name, root)
    paths.dir.mkdir(parents=True)
    layers = [{"name": k, "param": f"{k}.weight", "kind": kind,
               "shape": [g, 1, 3, 3] if kind == "conv" else [g, 8],
               "penalty": "group", "groups": g}
              for k, g, kind in zip(layer_names, (6, 16, 40), ("conv", "conv", "linear"))]
    weights = [{"name": lay["param"], "shape": lay["shape"], "dtype": "float32"}
               for lay in layers]
    cfg = {"model": "lenet5", "dataset": "digits", "nu": nu, "lam": 0.45, "kappa": 1.0}
    rng = np.random.default_rng(int(nu))
    per = {lay["name"]: int(np.prod(lay["shape"][1:])) for lay in layers}
    total = sum(int(np.prod(lay["shape"])) for lay in layers)
    with PathWriter(paths.path, config=cfg, layers=layers, weights=weights,
                    model={"name": "lenet5", "num_classes": 10, "params_total": total},
                    data={"dataset": "digits", "n_val": 300}) as w:
        for i in range(n):
            stats, kept = {}, 0
            for lay in layers:
                g = lay["groups"]
                inside = np.arange(g) * 2 * n // (3 * g) * (50.0 / nu) < i
                gn = np.where(inside, 0.1 + 0.05 * i + np.arange(g) * 0.01, 0).astype(np.float32)
                stats[lay["name"]] = (gn, (gn + 0.5).astype(np.float32),
                                      (inside * 9).astype(np.int32))
                kept += int(inside.sum()) * per[lay["name"]]
            frac = np.mean(np.concatenate([s[0] > 0 for s in stats.values()]))
            acc = min(0.2 + 0.03 * i, 0.95)
            m = {"train_loss": 1 / (i + 1), "train_acc": acc, "lr": 0.05, "sparsity": 1 - frac}
            if i % 2 == 0:
                m.update(val_acc_sparse=acc * frac, test_acc_sparse=acc * frac - 0.01,
                         val_acc=acc, test_acc=acc - 0.01, params_kept=float(kept))
            w.append(Snapshot(i * 5, i / 10, i * 0.1, m, stats))
            if i % 10 == 0 or i == n - 1:
                w.append_weights(i * 5, {lay["param"]: rng.standard_normal(lay["shape"]).astype(
                    np.float32) for lay in layers},
                    {lay["param"]: np.zeros(lay["shape"], np.float32) for lay in layers})
    runs.write_status(paths, state=state, reason="", snapshots=n, iteration=(n - 1) * 5,
                      total_iterations=(n - 1) * 5, config=cfg, heartbeat=0)
    return paths


def serve(root: Path, log_path: Path, env: dict | None = None, args: tuple[str, ...] = ()):
    """``streamlit run app.py [-- ARGS]`` on a free port; returns the process, its log and its
    URL once /_stcore/health says ok."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", *(["--", *args] if args else [])], cwd=REPO,
        env={**os.environ, "PATHVIZ_CHECKPOINTS": str(root), **(env or {})},
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError(log_path.read_text())
    return proc, log, url


ROOTS: dict[str, Path] = {}  # a served app's URL -> its checkpoints root


def root_of(url: str) -> Path:
    """The checkpoints root that the app at ``url`` serves (tests read its files)."""
    return ROOTS[url]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """A server on two finished runs, ``e2e`` (ν=50) and ``e2e-b`` (ν=100)."""
    if NO_CHROMIUM:
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    tmp = tmp_path_factory.mktemp("e2e")
    root = tmp / "checkpoints"
    make_full_run(root, "e2e", nu=50.0)
    make_full_run(root, "e2e-b", nu=100.0)
    proc, log, url = serve(root, tmp / "streamlit.log", {"PATHVIZ_REFRESH": "0"})
    ROOTS[url] = root
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    """Where the browser tests write their screenshots: a temporary folder, never docs/
    (``python docs/screenshots.py RUN docs`` renews the docs' images on demand)."""
    return tmp_path_factory.mktemp("shots")


@pytest.fixture(scope="module")
def browser():
    if NO_CHROMIUM:
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


def button(page, name: str):
    """Our button ``name`` in the page's main block (Streamlit's top bar has its own "Stop"
    while a script runs, which a page-wide lookup would also match)."""
    return page.get_by_test_id("stMain").get_by_role("button", name=name)


def idle(page, timeout: float = 30_000) -> None:
    """Wait until the script has finished and no skeleton (placeholder) is left."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           timeout=timeout)
    page.wait_for_function("document.querySelectorAll('[data-testid=stSkeleton]').length == 0",
                           timeout=timeout)


SHOWN = """(it) => {
  // the line the page shows: the browser player's where the view has the player, else the
  // one the page writes for the server's picker (Export, Tickets); hidden ones do not count
  return Array.from(document.querySelectorAll('.pv-line')).some((e) => e.offsetParent !== null
    && e.textContent.replace(/,/g, '').startsWith('Iteration ' + it + ' '));
}"""


def shown_iteration(page, iteration: int, timeout: float = 30_000) -> None:
    """Wait until the page says it shows ``iteration`` (the player's line, or the line the page
    writes for the server's picker on views without the player)."""
    page.wait_for_function(SHOWN, arg=iteration, timeout=timeout)


def next_snapshot(page) -> None:
    """One snapshot later: the player's ▶ where the view has the player, else Next.

    The player's script can mount a moment after the script went idle (and then hides the
    server's Next): its ▶ is waited for briefly before the server's Next is used."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    nxt = page.locator(".pv-player .pv-next")
    try:
        nxt.wait_for(state="visible", timeout=5_000)
    except PlaywrightTimeout:
        button(page, "Next").click()
    else:
        nxt.click()
