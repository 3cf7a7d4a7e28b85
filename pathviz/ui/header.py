"""The run's header: name, state, Stop/Resume, a failure's reason, and live progress."""

from __future__ import annotations

import time

import streamlit as st

from pathviz import runs
from pathviz.ui import url
from pathviz.ui.live import eta_seconds, shown_state
from pathviz.ui.text import inert

STATE_BADGE = {"running": ":green-badge[running]", "starting": ":orange-badge[starting]",
               "finished": ":blue-badge[finished]", "stopped": ":gray-badge[stopped]",
               "failed": ":red-badge[failed]", "unknown": ":gray-badge[unknown]"}


def launched(name: str) -> dict | None:
    """What this session launched for run ``name`` (pid, start time), if anything."""
    return st.session_state.get("launched", {}).get(name)


def launch(paths: runs.RunPaths, argv: list[str], resume: bool = False,
           processes: int = 1) -> str | None:
    """Launch the worker (``processes`` > 1: that many DDP processes under torchrun) and
    remember it, so that the page shows "starting" at once; returns why it could not start, or
    None. Safe in a widget callback (it draws nothing)."""
    try:
        pid = runs.start_worker(paths, argv, resume=resume, processes=processes)
    except runs.RunError as e:
        return str(e)
    st.session_state.setdefault("launched", {})[paths.name] = {
        "pid": pid, "pid_start": runs.process_start_time(pid), "at": time.time()}
    st.session_state.pop("scrub_for", None)  # follow the run from its newest snapshot
    url.want("run", paths.name)
    url.want("iteration", None)
    return None


def start_run(paths: runs.RunPaths, argv: list[str], resume: bool = False,
              processes: int = 1) -> None:
    """Launch the worker (see :func:`launch`) and rerun, or show why it could not start."""
    problem = launch(paths, argv, resume=resume, processes=processes)
    if problem:
        st.error(inert(problem))
        return
    st.rerun()


def _resume(paths: runs.RunPaths) -> None:
    """Resume button callback: runs before the page is drawn, so the click's own run already
    shows "starting" (a rerun after drawing would show "stopped" for a moment). A run trained
    by several processes resumes with as many."""
    n = runs.read_status(paths).get("processes")
    n = n if isinstance(n, int) and 1 <= n <= runs.MAX_LOCAL_PROCESSES else 1
    st.session_state.launch_problem = launch(paths, [], resume=True, processes=n)


def _stop(paths: runs.RunPaths) -> None:
    """Stop button callback: the click's own run then shows the run stopped."""
    runs.stop_worker(paths)
    st.session_state.get("launched", {}).pop(paths.name, None)


def run_header_ui(info: runs.RunInfo, model: str, dataset: str) -> str:
    """Name, state badge, identity and the Stop/Resume button; returns the state shown."""
    state = shown_state(info, launched(info.name))
    cols = st.columns([6, 1], vertical_alignment="center")
    cols[0].subheader(f"{inert(info.name)} {STATE_BADGE.get(state, STATE_BADGE['unknown'])}",
                      anchor=False)
    reason = f": {info.reason}" if info.reason and state == info.state else ""
    procs = f" · {info.processes} processes (DDP)" if info.processes > 1 else ""
    cols[0].caption(inert(f"{model} on {dataset}{procs} · {state}{reason}"))
    if state in ("running", "starting"):
        cols[1].button("Stop", icon=":material/stop:", on_click=_stop, args=(info.paths,),
                       help="SIGTERM: the worker saves and exits; resume later")
    elif info.resumable:
        cols[1].button("Resume", icon=":material/play_arrow:", on_click=_resume,
                       args=(info.paths,), help="continue from the last save")
    problem = st.session_state.pop("launch_problem", None)
    if problem:
        st.error(inert(problem))
    if state == "failed":
        st.error(inert(f"This run failed: {info.reason or 'see its train.log'}"))
    return state


def progress_ui(info: runs.RunInfo) -> None:
    """Iteration / total, epoch, and a smoothed time left (hidden until it is stable)."""
    status = runs.read_status(info.paths)
    it, total = int(status.get("iteration", 0)), int(status.get("total_iterations", 0) or 0)
    ss = st.session_state
    key = f"eta:{info.name}"
    samples = ss.setdefault(key, [])
    if not samples or samples[-1][1] != it:
        samples.append((time.time(), it))
        del samples[:-200]
    eta, raw = eta_seconds(samples, total, ss.get(key + ":raw"))
    ss[key + ":raw"] = raw
    # a worker that reports its own eta from the start: trust it only once ours agrees
    text = (f"iteration {it:,} / {total:,} · epoch {float(status.get('epoch', 0)):.2f}"
            if total else f"iteration {it:,}")
    text += f" · about {_duration(eta)} left" if eta is not None else (
        " · estimating time left..." if total and it < total else "")
    st.progress(min(it / total, 1.0) if total else 0.0, text=text)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
