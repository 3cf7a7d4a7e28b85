"""Launching ``python -m pathviz.retrain`` in the background, following it and stopping it
(torch-free: the app calls these)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from pathviz import readonly, runs
from pathviz.tickets.schema import (
    BASELINE_MODES,
    BUDGETS,
    LAUNCH_FILE,
    LAUNCH_LOG,
    TicketError,
    parse_mode,
)
from pathviz.tickets.summary import sgd_baselines

__all__ = ["retrain_command", "start_retrain", "launch_state", "stop_retrain"]


# ---- launching a retrain in the background ---------------------------------------------------


def retrain_command(run_dir: str | os.PathLike, iteration: int, modes: Sequence[str], *,
                    epochs: int, seeds: Sequence[int], budget: str = "epochs",
                    lr: float | None = None, lr_schedule: str | None = None,
                    data_root: str | None = None, reference: str = "sgd") -> list[str]:
    """The ``python -m pathviz.retrain`` command line for these variants (``reference``: the
    dense network pruning baselines are cut from, ``sgd`` or ``self``)."""
    cmd = [sys.executable, "-m", "pathviz.retrain", str(run_dir), "--iteration", str(iteration),
           "--init", ",".join(modes), "--epochs", str(epochs),
           "--seeds", ",".join(str(int(s)) for s in seeds), "--budget", budget, "--no-progress"]
    if lr is not None:
        cmd += ["--lr", str(lr)]
    if lr_schedule:
        cmd += ["--lr-schedule", lr_schedule]
    if data_root:
        cmd += ["--data-root", str(data_root)]
    if reference != "sgd":
        cmd += ["--reference", reference]
    return cmd


def launch_state(run_dir: str | os.PathLike | runs.RunPaths) -> dict[str, Any]:
    """The last background launch of the run: its record plus ``alive`` (bool) and
    ``log_tail`` (last lines of its output); ``{}`` if there was none."""
    root = runs.paths_for_dir(run_dir).tickets
    try:
        rec = json.loads((root / LAUNCH_FILE).read_text())
    except (OSError, ValueError, RecursionError):  # RecursionError: nested too deep to parse
        return {}
    if not isinstance(rec, dict):
        return {}
    if not all(isinstance(rec.get(k), (int, type(None))) and not isinstance(rec.get(k), bool)
               and abs(rec.get(k) or 0) < 2 ** 63 for k in ("pid", "pid_start")):
        rec = {**rec, "pid": None}  # not a process this machine could have recorded
    rec["alive"] = runs.is_alive(rec.get("pid"), rec.get("pid_start"))
    try:
        rec["log_tail"] = (root / LAUNCH_LOG).read_text(errors="replace")[-2000:]
    except OSError:
        rec["log_tail"] = ""
    return rec


def start_retrain(run_dir: str | os.PathLike | runs.RunPaths, iteration: int,
                  modes: Sequence[str], *, epochs: int, seeds: Sequence[int],
                  budget: str = "epochs",
                  lr: float | None = None, lr_schedule: str | None = None,
                  data_root: str | None = None, reference: str = "sgd") -> int:
    """Start ``python -m pathviz.retrain`` as its own process session; returns its pid.

    Pruning baselines with the default ``reference="sgd"`` need the run's SGD sibling: without
    one this raises TicketError at once, instead of a retrain that fails in the background.

    One background retrain per run at a time (the variants run one after another in it, each
    folder under its own lock): a second start while one lives raises TicketError. A
    read-only app (:mod:`pathviz.readonly`) refuses in one sentence.
    """
    refused = readonly.refusal("start a retrain")
    if refused:
        raise TicketError(refused)
    for m in modes:
        parse_mode(m)
    if budget not in BUDGETS:
        raise TicketError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if reference not in ("sgd", "self"):
        raise TicketError(f"reference must be sgd or self, got {reference!r}")
    paths = runs.paths_for_dir(run_dir)  # once: the calls below get this object
    if reference == "sgd" and any(parse_mode(m)[0] in BASELINE_MODES for m in modes) \
            and not sgd_baselines(paths):
        raise TicketError("the pruning baselines are cut from the run's SGD sibling, and this "
                          "run has none: train one next to it with --optimizer sgd, or choose "
                          "this run's own W as the reference")
    prev = launch_state(paths)
    if prev.get("alive"):
        raise TicketError(f"a retrain of this run is already running (process {prev['pid']}); "
                          f"wait for it or stop it")
    root = paths.tickets
    root.mkdir(parents=True, exist_ok=True)
    cmd = retrain_command(paths.dir, iteration, modes, epochs=epochs, seeds=seeds, budget=budget,
                          lr=lr, lr_schedule=lr_schedule, data_root=data_root,
                          reference=reference)
    with open(root / LAUNCH_LOG, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # reap it when it ends: nothing else in this (long-lived, e.g. the app's) process waits for
    # it, and an exited child that nobody waits for stays a zombie until this process exits
    threading.Thread(target=proc.wait, name=f"reap-retrain-{proc.pid}", daemon=True).start()
    runs.write_json_atomic(root / LAUNCH_FILE, {
        "pid": proc.pid, "pid_start": runs.process_start_time(proc.pid), "cmd": cmd,
        "log": str(root / LAUNCH_LOG), "started": time.time()})
    return proc.pid


def stop_retrain(run_dir: str | os.PathLike | runs.RunPaths, timeout: float = 15.0) -> bool:
    """SIGTERM the run's background retrain (it keeps the last finished epoch of each seed and
    marks its folder stopped); True if one was running. A read-only app refuses."""
    refused = readonly.refusal("stop a retrain")
    if refused:
        raise TicketError(refused)

    rec = launch_state(run_dir)
    if not rec.get("alive"):
        return False
    return runs.stop_group(int(rec["pid"]), rec.get("pid_start"), timeout) != "gone"
