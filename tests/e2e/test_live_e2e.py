"""End to end with real training workers: Resume, and the sidebar's run list while a run trains.

These start ``python -m pathviz.train`` (LeNet-5 on the bundled digits, one thread), so they
take tens of seconds; every wait is on page or file state, never a sleep. Each test stops the
workers it started.
"""

from __future__ import annotations

import time

import pytest

from pathviz import runs
from tests.e2e.conftest import NO_CHROMIUM, button, idle, serve

# a long run (the demo's 70 epochs) that the tests stop long before it ends
TRAIN = ["--preset", "demo", "--threads", "1"]


def _wait_status(paths: runs.RunPaths, state: str, snapshots: int = 0,
                 timeout: float = 120.0) -> dict:
    """Poll the run's status sidecar until it says ``state`` with at least ``snapshots``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = runs.read_status(paths)
        if st.get("state") == state and int(st.get("snapshots") or 0) >= snapshots:
            return st
        time.sleep(0.1)
    raise AssertionError(f"{paths.name} never reached {state}: {runs.read_status(paths)}\n"
                         + (paths.log.read_text() if paths.log.exists() else ""))


@pytest.fixture
def live_root(tmp_path):
    """A checkpoints folder with a stopped, resumable run ``r`` trained for a few snapshots;
    stops every worker under it at the end."""
    if NO_CHROMIUM:
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    root = tmp_path / "checkpoints"
    root.mkdir()
    paths = runs.run_paths("r", root)
    runs.start_worker(paths, TRAIN)
    try:
        _wait_status(paths, "running", snapshots=2)
    finally:
        runs.stop_worker(paths)
    assert runs.read_status(paths)["state"] == "stopped" and paths.resume.exists()
    yield root
    for info in runs.list_runs(root):
        runs.stop_worker(info.paths)


@pytest.fixture
def live_app(live_root, tmp_path):
    """The app on ``live_root`` with a 1 s live refresh."""
    proc, log, url = serve(live_root, tmp_path / "streamlit.log", {"PATHVIZ_REFRESH": "1"})
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


# Records, in order, every change of the script's run state and of the run header's text, so a
# test can ask what the page showed when the run triggered by a click had finished.
_RECORD = """() => {
  const app = document.querySelector('[data-testid=stApp]');
  const heading = () => {
    const h = document.querySelector('[data-testid=stMain] [data-testid=stHeading]');
    return h ? h.textContent.trim() : '';
  };
  window.__pvLog = [[app.dataset.testScriptState, heading()]];
  new MutationObserver(() => {
    const now = [app.dataset.testScriptState, heading()];
    const last = window.__pvLog[window.__pvLog.length - 1];
    if (now[0] !== last[0] || now[1] !== last[1]) window.__pvLog.push(now);
  }).observe(document.body, {subtree: true, childList: true, characterData: true,
                             attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def test_resume_shows_starting_then_running_at_once(live_app, live_root, browser):
    """After Resume, the page that the click's own run draws says "starting" (or already
    "running"), never "stopped"; it turns "running" by itself; Stop stops it again."""
    paths = runs.run_paths("r", live_root)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_app}/?run=r")
    idle(page)
    page.get_by_text("r stopped").first.wait_for()
    page.evaluate(_RECORD)
    button(page, "Resume").click()
    page.wait_for_function(
        "document.querySelector('[data-testid=stMain] [data-testid=stHeading]')"
        ".textContent.trim() === 'r running'", timeout=120_000)
    log = page.evaluate("window.__pvLog")
    # the first time the script is idle again after the click, the header has changed
    ran = next(i for i, (state, _) in enumerate(log) if state == "running")
    settled = next(text for state, text in log[ran:] if state == "notRunning")
    assert settled in ("r starting", "r running"), log
    after = [text for _, text in log[ran:]]
    first = after.index(settled)
    assert "r stopped" not in after[first:], log  # never falls back to "stopped"
    assert runs.read_status(paths)["state"] == "running"
    button(page, "Stop").click()
    page.wait_for_function(
        "document.querySelector('[data-testid=stMain] [data-testid=stHeading]')"
        ".textContent.trim() === 'r stopped'", timeout=60_000)
    assert runs.read_status(paths)["state"] == "stopped"
    assert not page.locator("[data-testid='stException']").count()
    page.close()


# The sidebar's run list as text rows (the data grid keeps an accessible table of the cells in
# view; the progress columns come first so that they are in view).
_RUN_ROWS = """() => {
  const t = document.querySelector('[data-testid=stSidebar] [data-testid=stDataFrame] table');
  return t ? Array.from(t.querySelectorAll('tr')).map(
    (r) => Array.from(r.querySelectorAll('th,td')).map((c) => c.textContent)) : [];
}"""


def test_the_sidebar_run_list_follows_a_live_run(live_app, live_root, browser):
    """While a run trains, the sidebar's list of runs refreshes by itself (it sits in a
    fragment on the live-refresh cadence): its iteration and snapshot count grow with no user
    action, and its status turns "stopped" once the run is stopped."""
    paths = runs.run_paths("r", live_root)
    runs.start_worker(paths, [], resume=True)
    _wait_status(paths, "running")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_app}/?run=r")
    page.get_by_text("r running").first.wait_for(timeout=60_000)
    page.locator("[data-testid=stSidebar]").get_by_text("All runs").click()
    page.wait_for_function(f"({_RUN_ROWS})().length == 2", timeout=30_000)
    header, row = page.evaluate(_RUN_ROWS)
    assert header[:4] == ["run", "status", "iteration", "snapshots"] and row[:2] == ["r", "running"]
    grew = f"(n) => {{ const r = ({_RUN_ROWS})()[1]; return r && Number(r[3]) > n; }}"
    page.wait_for_function(grew, arg=int(row[3]), timeout=60_000)
    runs.stop_worker(paths)
    stopped = f"() => {{ const r = ({_RUN_ROWS})()[1]; return r && r[1] === 'stopped'; }}"
    page.wait_for_function(stopped, timeout=60_000)
    assert not page.locator("[data-testid='stException']").count()
    page.close()
