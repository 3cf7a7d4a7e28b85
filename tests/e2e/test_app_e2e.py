"""End to end: the app in headless Chromium on a prepared run; move the slider, see it change."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import make_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Debian chromium is not installed (.ci/run installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "checkpoints"
    make_run(root, "e2e", n=60)
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "w")
    env = {**os.environ, "PATHVIZ_CHECKPOINTS": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"], cwd=Path(__file__).parents[2], env=env,
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
        raise AssertionError((tmp_path / "streamlit.log").read_text())
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def _idle(page) -> None:
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           timeout=30_000)
    page.wait_for_function("document.querySelectorAll('[data-testid=stSkeleton]').length == 0",
                           timeout=30_000)


def _heatmap_z(page) -> list:
    return page.evaluate("document.querySelector('.js-plotly-plot').data[0].z")


def test_slider_moves_iteration_and_heatmap(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(f"{server}/?run=e2e&iteration=50")
        _idle(page)
        page.wait_for_selector(".js-plotly-plot", timeout=30_000)
        text = page.get_by_text("Iteration 50 ·").first
        assert text.is_visible()
        before = _heatmap_z(page)
        thumb = page.locator("[data-testid='stSlider'] input[type='range']").first
        thumb.focus()
        page.keyboard.press("End")  # one move, to the last snapshot (iteration 295)
        page.get_by_text("Iteration 295 ·").first.wait_for(timeout=60_000)
        _idle(page)
        after = _heatmap_z(page)
        assert after != before, "the overview heatmap should change with the iteration"
        assert "iteration=295" in page.url
        page.screenshot(path=str(ARTIFACTS / "app_after_slider.png"), full_page=True)
        browser.close()

