"""The run's header: name, state, Stop/Resume, a failure's reason, and live progress."""

from __future__ import annotations

import argparse
import time

import streamlit as st

from pathviz import readonly, runs
from pathviz.config import ConfigError, add_config_arguments, config_from_args
from pathviz.ui import url
from pathviz.ui.live import ETA_SAMPLES, shown_state, time_left, time_left_text
from pathviz.ui.text import inert

READ_ONLY_BADGE = ":violet-badge[read-only]"
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
        "pid": pid, "pid_start": runs.process_start_time(pid), "at": time.time(),
        **({} if resume else launched_identity(argv))}  # a resume has its config.json
    st.session_state.pop("scrub_for", None)  # follow the run from its newest snapshot
    url.want("run", paths.name)
    url.want("iteration", None)
    return None


def launched_identity(argv: list[str]) -> dict[str, str]:
    """{"model", "dataset"} of a run started with ``argv``, read with the worker's own parser
    (presets, config file, flags), so the header names them from the first second; the worker
    writes config.json only once torch and the data are loaded. {} if the flags do not parse
    (the worker then says why in its log)."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False, allow_abbrev=False)
    parser.add_argument("--preset", default=None)
    parser.add_argument("--config", default=None)
    add_config_arguments(parser)
    try:
        args, _ = parser.parse_known_args(list(argv))
        cfg = config_from_args(args)
    except (argparse.ArgumentError, ConfigError, OSError, ValueError, SystemExit):
        return {}
    return {"model": cfg.model, "dataset": cfg.dataset}


def shown_identity(info: runs.RunInfo, model: str, dataset: str) -> tuple[str, str]:
    """(model, dataset) for the header: the run's files, else what this session launched."""
    mine = launched(info.name) or {}
    return (model if model not in ("", "?") else str(mine.get("model") or "?"),
            dataset if dataset not in ("", "?") else str(mine.get("dataset") or "?"))


LIVE_STATES = ("running", "starting")
LAST = 2**62  # a snapshot index past any run's end: the picker clamps it to the last one


def land_when_finished(name: str, state: str) -> None:
    """A run that this page followed live and that has just ended lands on its last snapshot:
    the live page showed the newest snapshot it had read, and the worker writes its final
    ones (and the final evaluation) just before it says "finished"."""
    ss = st.session_state
    seen = ss.setdefault("header_states", {})
    before, seen[name] = seen.get(name), state
    following = ss.get("follow", True) and (ss.get("scrub_for") or (None,))[0] == name
    if before in LIVE_STATES and state not in LIVE_STATES and following:
        ss.snap = LAST


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
    """Stop button callback: the click's own run then shows the run stopped (or why not: a
    read-only app refuses, whatever form a browser replays)."""
    try:
        runs.stop_worker(paths)
    except runs.RunError as e:
        st.session_state.launch_problem = str(e)
        return
    st.session_state.get("launched", {}).pop(paths.name, None)


def run_header_ui(info: runs.RunInfo, model: str, dataset: str) -> str:
    """Name, state badge, identity and the Stop/Resume button; returns the state shown."""
    state = shown_state(info, launched(info.name))
    land_when_finished(info.name, state)
    model, dataset = shown_identity(info, model, dataset)
    reason = f": {info.reason}" if info.reason and state == info.state else ""
    procs = f" · {info.processes} processes (DDP)" if info.processes > 1 else ""
    # one row: the name and badge, what it trains, and the button sized to its label (a
    # column of a fixed share cut "Stop" to "S…" at 1024 px)
    with st.container(key="run_header", horizontal=True, vertical_alignment="center",
                      gap="medium"):
        ro = readonly.active()
        st.subheader(f"{inert(info.name)} {STATE_BADGE.get(state, STATE_BADGE['unknown'])}"
                     + (f" {READ_ONLY_BADGE}" if ro else ""), anchor=False, width="content")
        st.caption(inert(f"{model} on {dataset}{procs} · {state}{reason}")
                   + (" · read-only page: it cannot start, stop or write anything" if ro
                      else ""), width="stretch")
        if ro:
            pass  # no Stop/Resume: runs.start_worker and stop_worker refuse anyway
        elif state in ("running", "starting"):
            st.button("Stop", icon=":material/stop:", on_click=_stop, args=(info.paths,),
                      help="SIGTERM: the worker saves and exits; resume later",
                      width="content")
        elif info.resumable:
            st.button("Resume", icon=":material/play_arrow:", on_click=_resume,
                      args=(info.paths,), help="continue from the last save", width="content")
    problem = st.session_state.pop("launch_problem", None)
    if problem:
        st.error(inert(problem))
    if state == "failed":
        st.error(inert(f"This run failed: {info.reason or 'see its train.log'}"))
    return state


def progress_ui(info: runs.RunInfo) -> None:
    """Iteration / total, epoch, and the time left: a range as wide as the run's speeds
    disagree (:func:`pathviz.ui.live.time_left`), shown from the run's first seconds."""
    status = runs.read_status(info.paths)
    it, total = int(status.get("iteration", 0)), int(status.get("total_iterations", 0) or 0)
    ss = st.session_state
    key = f"eta:{info.name}"
    samples = ss.setdefault(key, [])
    if samples and it < samples[-1][1]:
        samples.clear()  # a run started again under the same name
    if not samples or samples[-1][1] != it:
        samples.append((time.time(), it))
        del samples[:-ETA_SAMPLES]
    left = time_left(samples, total)
    text = (f"iteration {it:,} / {total:,} · epoch {float(status.get('epoch', 0)):.2f}"
            if total else f"iteration {it:,}")
    text += f" · {time_left_text(*left)}" if left is not None else (
        " · estimating time left..." if total and it < total else "")
    st.progress(min(it / total, 1.0) if total else 0.0, text=text)
