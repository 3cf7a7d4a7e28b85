"""A class on one server: 30 browser sessions following a run that is training (issue 35).

    python bench/class_server.py [--sessions 30] [--window 40] [--refresh 2] [--keep DIR]
        [--json FILE] [--worker-cpu 0] [--server-cpu 1] [--browser-nice 10]

One read-only app (``streamlit run app.py -- --read-only``, ``PATHVIZ_REFRESH`` = ``--refresh``)
on a fresh demo run that trains throughout (``--preset demo --epochs 100000``, stopped at the
end).

The set-up it models: the teacher's machine runs the worker and the server, each student's
browser runs on the student's own machine. Here all share this machine, so they are placed
explicitly: the worker alone on ``--worker-cpu`` (its numerics are one thread), the server, the
browsers and this script on ``--server-cpu``, the browsers ``--browser-nice`` steps nicer than
the server so that they do not take its CPU (they would not in a class). The baseline without
viewers has the same placement and the server up and idle. Other processes on the machine are
not placed: the script prints the load average.

Phases, each ``--window`` seconds:

1. **no viewers**: the worker's training speed (iterations/s from its status) with the app up
   and no session;
2. **viewers**: ``--sessions`` headless Chromium sessions (Playwright, one context each) open
   the run's Overview and follow it; now and then one of them scrubs (three ArrowLeft presses,
   then End) or plays for two seconds. Measured over the window: the worker's training speed;
   the server's CPU (its process and its children) per session; the time each new snapshot
   takes to reach each session (from its write: the path file's modification time when this
   script first read that snapshot count, every 0.2 s, to the first time the session's player,
   ``window.__pathvizPlayer``, held it, read every 0.1 s in the page); console errors and the
   exception boxes shown, per session;
3. **the observer**, opened last, steps 15 times with ArrowRight (keydown to the frame after the
   redraw, measured in the page) and plays 5 s at the fastest speed (frames drawn per second);
4. **no viewers again**: the sessions closed, the training speed once more (the baseline is the
   mean of 1 and 4, so that the load of other processes on the machine over the run counts on
   both sides).

The server's memory (resident set of its process and children) is read before the first
session, once the first has loaded (it imports the app's modules, once per server), after the
last one opened and at the end; per session is the growth after the first, divided by the
sessions after the first (the figure with the first is printed too).

Targets (issue 35): the observer steps in <= 50 ms; a new snapshot reaches every session within
2 refresh intervals (2 x ``--refresh``); training >= 0.8x of no viewers; server memory <= +50 MB
per session; no console error and no exception shown in any session.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pathviz import runs  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# every 100 ms: how many snapshots the page's player holds, kept with the wall time it changed;
# and the text of every exception box the page shows (a script error the server caught)
SEEN = """(() => {
  window.__seen = [];
  window.__exc = [];
  setInterval(() => {
    for (const e of document.querySelectorAll('[data-testid="stException"]')) {
      const t = e.innerText.slice(0, 200);
      if (!window.__exc.includes(t)) window.__exc.push(t);
    }
    const P = window.__pathvizPlayer;
    const c = P && P.data && P.cache[P.data.key];
    const n = c ? c.iterations.length : 0;
    const s = window.__seen;
    if (n && (!s.length || s[s.length - 1][1] !== n)) s.push([Date.now() / 1000, n]);
  }, 100);
})();"""

STEP_DRAWN = """(before) => new Promise((resolve) => {
  const P = window.__pathvizPlayer;
  const wait = () => {
    if (P.frames > before) requestAnimationFrame(() => resolve(performance.now() - window.__keyAt));
    else requestAnimationFrame(wait);
  };
  wait();
})"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and its children."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def tree_cpu(proc: psutil.Process) -> float:
    """CPU seconds (user + system) of a process and its live children."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def progress(paths: runs.RunPaths) -> tuple[float, int]:
    """(worker's elapsed seconds, iteration) from its status."""
    s = runs.read_status(paths)
    return float(s.get("elapsed") or 0.0), int(s.get("iteration") or 0)


def speed(paths: runs.RunPaths, seconds: float, during=None) -> float:
    """Iterations per second of training over ``seconds`` (the worker's own clock);
    ``during`` is called about every 0.2 s meanwhile."""
    e0, i0 = progress(paths)
    end = time.time() + seconds
    while time.time() < end:
        if during:
            during()
        time.sleep(0.2)
    e1, i1 = progress(paths)
    return (i1 - i0) / (e1 - e0) if e1 > e0 else float("nan")


class FileWatch:
    """When each snapshot count was written to the path file: the file's modification time
    read around the count (so a poll that comes late, on a busy core, does not shorten the
    delay), kept for the first poll that saw each count."""

    def __init__(self, path: Path) -> None:
        self.path, self.first, self.f = path, {}, None
        self.last_poll = 0.0

    def poll(self) -> None:
        import h5py

        now = time.time()
        if now - self.last_poll < 0.2:
            return
        self.last_poll = now
        try:
            before = os.stat(self.path).st_mtime
            if self.f is None:
                self.f = h5py.File(self.path, "r", libver="latest", swmr=True)
            d = self.f["snapshots/iteration"]
            d.refresh()
            n = int(d.shape[0])
            after = os.stat(self.path).st_mtime
        except (OSError, KeyError):
            return
        record_write(self.first, n, before, after)


def record_write(first: dict[int, float], n: int, mtime_before: float,
                 mtime_after: float) -> None:
    """Keep ``n`` snapshots as written at ``mtime_before`` when the file did not change while
    its count was read (else the count may belong to a later write: the next poll decides)."""
    if mtime_before == mtime_after and n not in first:
        first[n] = mtime_before


def worst_delay(written: dict[int, float], seen: list[tuple[float, int]], t0: float,
                t1: float) -> float:
    """The longest time, over the snapshot counts written in [t0, t1], from the write to the
    first moment a page held at least that many snapshots (``seen``: (wall time, count) in
    the order the page saw them); inf when one never arrived."""
    worst = 0.0
    for n, t in written.items():
        if not t0 <= t <= t1:
            continue
        got = next((ts for ts, m in seen if m >= n), None)
        worst = max(worst, (got - t) if got is not None else float("inf"))
    return worst


def renice_browsers(nice: int) -> None:
    """Set the niceness of this script's Chromium processes (Chromium sets its renderers' own
    priority when it starts them, so an inherited niceness does not hold)."""
    for p in psutil.Process().children(recursive=True):
        try:
            if "chrom" in p.name() and p.nice() != nice:
                p.nice(nice)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def pin(cpu: int | None) -> None:
    """Run this process (and what it starts from now on) on one CPU; None: leave it."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--window", type=float, default=40.0)
    ap.add_argument("--refresh", type=float, default=2.0)
    ap.add_argument("--keep", type=Path, default=None, help="keep the run and logs here")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--worker-cpu", type=int, default=0,
                    help="the CPU the training worker runs on alone (-1: not pinned)")
    ap.add_argument("--server-cpu", type=int, default=1,
                    help="the CPU of the server, the browsers and this script (-1: not pinned)")
    ap.add_argument("--browser-nice", type=int, default=10,
                    help="niceness of the browsers, so that they do not take the server's CPU "
                         "(a class's browsers run on the students' machines; 0: as the server)")
    args = ap.parse_args(argv)
    allowed = os.sched_getaffinity(0)
    for name in ("worker_cpu", "server_cpu"):
        cpu = getattr(args, name)
        if cpu != -1 and cpu not in allowed:
            ap.error(f"--{name.replace('_', '-')} {cpu} is not a CPU this process may use "
                     f"({', '.join(map(str, sorted(allowed)))}, or -1 for none)")
    if not 0 <= args.browser_nice <= 19:
        ap.error(f"--browser-nice must be 0 to 19, got {args.browser_nice}")
    worker_cpu = None if args.worker_cpu == -1 else args.worker_cpu
    server_cpu = None if args.server_cpu == -1 else args.server_cpu
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    # a timeout's SIGTERM still stops the worker and the server (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="pathviz-class-"))
    root = tmp / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    paths = runs.run_paths("lesson", root)
    env = {**os.environ, "PATHVIZ_CHECKPOINTS": str(root), "PATHVIZ_REFRESH": str(args.refresh)}
    env.pop("PATHVIZ_READ_ONLY", None)
    port = free_port()
    pin(server_cpu)  # this script, and the server and the browsers it starts
    server_log = open(tmp / "streamlit.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.fileWatcherType", "none", "--", "--read-only"],
        cwd=REPO, env=env, stdout=server_log, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    pin(worker_cpu)  # the worker alone on its CPU (its numerics are one thread)
    runs.start_worker(paths, ["--preset", "demo", "--epochs", "100000"])  # throughout: 30
    # sessions took 14 min to open on a loaded machine, longer than 1000 epochs of training
    pin(server_cpu)
    out: dict = {"sessions": args.sessions, "refresh_s": args.refresh, "window_s": args.window,
                 "worker_cpu": worker_cpu, "server_cpu": server_cpu,
                 "browser_nice": args.browser_nice}
    try:
        for _ in range(300):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
        sp = psutil.Process(server.pid)
        while progress(paths)[1] < 20:  # torch loaded, data read, training
            time.sleep(0.5)
        watch = FileWatch(paths.path)
        before = speed(paths, args.window, watch.poll)
        rss0 = tree_rss(sp)
        out["load_before"] = os.getloadavg()[0]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-renderer-backgrounding", "--disable-background-timer-throttling"])
            browser_nice = os.getpriority(os.PRIO_PROCESS, 0) + args.browser_nice
            renice_browsers(browser_nice)
            pages, errors = [], []
            t_open = time.time()
            for k in range(args.sessions + 1):  # the last one is the observer
                ctx = browser.new_context(viewport={"width": 1280, "height": 900})
                ctx.add_init_script(SEEN)
                page = ctx.new_page()
                errs: list[str] = []
                page.on("console", lambda m, e=errs: e.append(m.text) if m.type == "error"
                        else None)
                page.on("pageerror", lambda x, e=errs: e.append(str(x)))
                page.goto(f"{url}/?run=lesson&view=overview", wait_until="domcontentloaded",
                          timeout=120_000)
                pages.append(page)
                errors.append(errs)
                renice_browsers(browser_nice)  # the new context's renderer
                watch.poll()
                if k == 0:  # the first session loads the app's modules: not a per-session cost
                    page.wait_for_function("window.__seen && window.__seen.length > 0",
                                           timeout=180_000, polling=500)
                    rss_warm = tree_rss(sp)
                if k == args.sessions - 1:  # every student's session is open
                    for pg in pages:
                        pg.wait_for_function("window.__seen && window.__seen.length > 0",
                                             timeout=180_000, polling=500)
                    rss1 = tree_rss(sp)
                    out["open_s"] = time.time() - t_open
            observer, students = pages[-1], pages[:-1]
            observer.wait_for_function("window.__seen && window.__seen.length > 0",
                                       timeout=180_000, polling=500)
            rng = random.Random(0)
            playing: dict[int, float] = {}

            skipped = [0]

            def act() -> None:
                """Now and then one student scrubs or plays (about one action a second); a
                page whose player is not there at that moment (a rerun redrawing it) skips
                its turn, counted."""
                try:
                    _act()
                except PlaywrightError:
                    skipped[0] += 1

            reniced = [time.time()]

            def _act() -> None:
                watch.poll()
                now = time.time()
                if now - reniced[0] > 5.0:
                    renice_browsers(browser_nice)
                    reniced[0] = now
                for i, t in list(playing.items()):
                    if now > t:
                        del playing[i]
                        students[i].locator(".pv-play").click(timeout=3000)
                if rng.random() < 0.2:
                    i = rng.randrange(len(students))
                    pg = students[i]
                    if i in playing:
                        return
                    if rng.random() < 0.5:
                        pg.locator(".pv-range").focus(timeout=3000)
                        for _ in range(3):
                            pg.keyboard.press("ArrowLeft")
                        pg.keyboard.press("End")
                    else:
                        pg.locator(".pv-play").click(timeout=3000)
                        playing[i] = now + 2.0

            c0, t0 = tree_cpu(sp), time.time()
            during = speed(paths, args.window, act)
            cpu = tree_cpu(sp) - c0
            t1 = time.time()
            for i in list(playing):
                try:
                    students[i].locator(".pv-play").click(timeout=3000)
                except PlaywrightError:
                    skipped[0] += 1
            out["actions_skipped"] = skipped[0]
            out["load_during"] = os.getloadavg()[0]
            # the observer: steps and play, measured in its page
            observer.evaluate("() => { window.__keyAt = 0; document.addEventListener("
                              "'keydown', () => { window.__keyAt = performance.now(); }, true);"
                              " }")
            observer.locator(".pv-range").focus()
            observer.keyboard.press("Home")
            time.sleep(1.0)
            steps = []
            for _ in range(15):
                f = observer.evaluate("window.__pathvizPlayer.frames")
                observer.keyboard.press("ArrowRight")
                steps.append(observer.evaluate(STEP_DRAWN, f))
            observer.select_option(".pv-speed", "96")
            observer.check(".pv-loop")
            observer.locator(".pv-play").click()
            f0 = observer.evaluate("window.__pathvizPlayer.frames")
            time.sleep(5.0)
            fps = (observer.evaluate("window.__pathvizPlayer.frames") - f0) / 5.0
            observer.locator(".pv-play").click()
            seen = [pg.evaluate("window.__seen") for pg in pages]
            shown = [pg.evaluate("window.__exc") for pg in pages]
            rss2 = tree_rss(sp)
            browser.close()
        after = speed(paths, args.window, watch.poll)
        # the delay of each snapshot that appeared in the file during the window, per session:
        # until the session first held at least that many snapshots
        lat = [worst_delay(watch.first, s, t0, t1 - 2 * args.refresh) for s in seen]
        base = (before + after) / 2
        n = args.sessions + 1
        out.update({
            "train_no_viewers_it_s": [round(before, 2), round(after, 2)],
            "train_viewers_it_s": round(during, 2), "train_ratio": round(during / base, 3),
            "server_rss_mb": {"no_session": round(rss0 / 2**20, 1),
                              "one_session": round(rss_warm / 2**20, 1),
                              "all_open": round(rss1 / 2**20, 1),
                              "end": round(rss2 / 2**20, 1)},
            # each session after the first (which loads the app's modules, once per server)
            "rss_per_session_mb": round((rss2 - rss_warm) / (n - 1) / 2**20, 2),
            "rss_per_session_incl_first_mb": round((rss2 - rss0) / n / 2**20, 2),
            "cpu_per_session_pct": round(100 * cpu / (t1 - t0) / n, 2),
            "server_cpu_pct": round(100 * cpu / (t1 - t0), 1),
            "server_cpu_s_per_session_per_min": round(cpu / n / (t1 - t0) * 60, 2),
            "snapshot_delay_s": {"median_of_worst": round(statistics.median(lat), 2),
                                 "max": round(max(lat), 2)},
            "console_errors": [len(e) for e in errors],
            "console_error_samples": sorted({m[:200] for e in errors for m in e})[:5],
            "page_exceptions": [len(x) for x in shown],
            "page_exception_samples": sorted({m for x in shown for m in x})[:5],
            "observer_step_ms": {"median": round(statistics.median(steps), 1),
                                 "max": round(max(steps), 1)},
            "observer_fps": round(fps, 1),
            "machine": f"{platform.machine()}, {psutil.cpu_count()} CPU, "
                       f"{round(psutil.virtual_memory().total / 2**30)} GiB, "
                       f"{platform.platform()}"})
    finally:
        try:
            runs.stop_worker(paths, timeout=20)
        finally:
            server.terminate()
            server.wait(timeout=30)
            server_log.close()
            if args.keep is None:
                shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=1))
    targets = {
        "observer step <= 50 ms (median)": out["observer_step_ms"]["median"] <= 50,
        f"every snapshot in every session within 2 x {args.refresh:g} s":
            out["snapshot_delay_s"]["max"] <= 2 * args.refresh,
        "training >= 0.8x of no viewers": out["train_ratio"] >= 0.8,
        "server memory <= +50 MB per session": out["rss_per_session_mb"] <= 50,
        "no console error in any session": sum(out["console_errors"]) == 0,
        "no exception shown in any session": sum(out["page_exceptions"]) == 0,
    }
    for name, ok in targets.items():
        print(f"{'met   ' if ok else 'MISSED'} {name}")
    if args.json:
        args.json.write_text(json.dumps({**out, "targets": targets}, indent=1))
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
