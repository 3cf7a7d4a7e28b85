"""End to end in headless Chromium (issue 35): a read-only app (``streamlit run app.py --
--read-only``) walked through every view writes nothing and starts nothing.

The walk: every view of a finished run, scrubbing and playing, presentation mode, Compare,
Tickets, the CSV downloads, an export built in memory and downloaded, a run that is training
(its Stop absent), and URLs that try to turn read-only off. Before and after: the hashes of
every file under the checkpoints root, and the processes (the server's children, and any
process naming the root). The console reports no error.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from pathviz import runs
from tests.conftest import record_lenet_run
from tests.e2e.conftest import NO_CHROMIUM, button, idle, make_full_run, next_snapshot, serve

VIEWS = ("overview", "layer", "metrics", "filters", "export", "tickets", "compare", "about")
WRITING_CONTROLS = ("Stop", "Resume", "Export", "Retrain in background", "Validate and start",
                    "Start the demo run")


def tree(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``, a file with its content's hash and its mtime."""
    return {str(p.relative_to(root)): (f"{hashlib.sha256(p.read_bytes()).hexdigest()} "
                                       f"{p.stat().st_mtime_ns}" if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


READER = "from pathviz.store.helper import _serve"  # the path reader's own helper process


def processes(server: int, root: Path) -> set[tuple[int, str]]:
    """The server's descendants and every process whose command line names ``root`` (a worker,
    a retrain or a baselines run started on it would), but the path reader's helper: it reads
    the file (pathviz.store.helper: an HDF5 call that hangs hangs there) and writes nothing,
    which the file tree's hashes check."""
    out = {(c.pid, " ".join(c.cmdline())) for c in psutil.Process(server).children(True)
           if READER not in " ".join(c.cmdline())}
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(root) in cmd:
            out.add((p.info["pid"], cmd))
    return out


def real_run(root: Path) -> None:
    """A real LeNet-5/digits run of 46 iterations (weights at 0, 23, 46): one an export can
    rebuild."""
    d = root / "real"
    d.mkdir(parents=True)
    it = record_lenet_run(d, weights_every=23)
    cfg = {"model": "lenet5", "dataset": "digits", "data_root": None}
    runs.write_status(runs.paths_for_dir(d), state="finished", reason="", snapshots=it + 1,
                      iteration=it, total_iterations=it, config=cfg, heartbeat=0)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A read-only server on a finished run and its sibling, a real run, and a run that is
    training (a sleep of its own session stands in for its worker)."""
    if NO_CHROMIUM:
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    tmp = tmp_path_factory.mktemp("readonly")
    root = tmp / "checkpoints"
    make_full_run(root, "e2e", nu=50.0)
    make_full_run(root, "e2e-b", nu=100.0)
    real_run(root)
    live = make_full_run(root, "live", n=30, state="running")
    worker = subprocess.Popen(["sleep", "600"], start_new_session=True)
    runs.write_status(live, state="running", pid=worker.pid,
                      pid_start=runs.process_start_time(worker.pid), heartbeat=time.time() + 600,
                      iteration=145, total_iterations=1000)
    proc, log, url = serve(root, tmp / "streamlit.log", {"PATHVIZ_REFRESH": "0"},
                           args=("--read-only",))
    yield url, root, proc, worker
    proc.terminate()
    proc.wait(timeout=20)
    log.close()
    worker.kill()
    worker.wait()


def no_writing_controls(page) -> None:
    main = page.get_by_test_id("stApp")
    for name in WRITING_CONTROLS:
        assert main.get_by_role("button", name=name, exact=True).count() == 0, name
    assert page.get_by_text("New run", exact=True).count() == 0


def test_the_read_only_walk_writes_nothing_and_starts_nothing(served, browser):
    url, root, server, worker = served
    files, procs = tree(root), processes(server.pid, root)
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def visit(query: str) -> None:
        page.goto(f"{url}/?{query}")
        idle(page)
        no_writing_controls(page)

    def download(name: str) -> bytes:
        # built on click on the server: a loaded machine (CI's two workers) can take a while
        with page.expect_download(timeout=120_000) as dl:
            page.get_by_role("button", name=name).first.click()
        data = Path(dl.value.path()).read_bytes()
        assert data, name
        return data

    # every view, the header saying read-only
    for view in VIEWS:
        visit(f"run=e2e&view={view}&iteration=250" + ("&compare=e2e,e2e-b"
                                                        if view == "compare" else ""))
        page.locator(".st-key-run_header").get_by_text("read-only").first.wait_for()
    # scrubbing and playing on the light views
    visit("run=e2e&view=overview&iteration=100")
    next_snapshot(page)
    page.wait_for_function("window.__pathvizPlayer && window.__pathvizPlayer.alive")
    page.locator(".pv-play").click()
    page.wait_for_function("window.__pathvizPlayer.playing")
    page.wait_for_timeout(1500)
    page.locator(".pv-play").click()
    page.wait_for_function("!window.__pathvizPlayer.playing")
    # the CSV downloads
    assert download("Download entry iterations (CSV)").startswith(b"layer,group,entry_")
    visit("run=e2e&view=metrics")
    assert download("Download the metrics (CSV)").startswith(b"iteration,epoch")
    # presentation mode
    visit("run=e2e&present=1")
    page.wait_for_selector(".pv-player")
    # an export built in memory and downloaded: a torch state_dict archive (a zip)
    visit("run=real&view=export&iteration=23")
    page.get_by_text("state_dict", exact=True).click()
    idle(page)
    button(page, "Build for download").click()
    page.get_by_text("compact vs masked outputs").wait_for(timeout=180_000)
    assert download("Download real-iter23-compact.pth")[:2] == b"PK"
    # a run that is training: followed, and nothing can stop it
    visit("run=live")
    page.get_by_test_id("stProgress").first.wait_for()
    # URLs and a sidebar that try to turn read-only off
    for query in ("run=e2e&read_only=0", "run=e2e&readonly=false&mode=edit",
                  "run=live&PATHVIZ_READ_ONLY=0"):
        visit(query)
        page.locator(".st-key-run_header").get_by_text("read-only").first.wait_for()
    context.close()

    assert worker.poll() is None  # the teacher's run still trains
    assert tree(root) == files  # not one byte, not one mtime changed
    assert processes(server.pid, root) == procs  # nothing started
    assert errors == []
