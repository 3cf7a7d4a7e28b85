"""Run state as shown: a just-resumed run reads "starting"; the time left waits until stable."""

from __future__ import annotations

import os
import time

from pathviz import runs
from pathviz.ui.live import eta_seconds, shown_state


def _info(tmp_path, state: str, updated: float) -> runs.RunInfo:
    return runs.RunInfo(name="r", paths=runs.run_paths("r", tmp_path), state=state, reason="",
                        model="lenet5", dataset="digits", snapshots=1, iteration=0,
                        total_iterations=10, updated=updated)


def test_a_resumed_run_shows_starting_until_the_worker_reports(tmp_path):
    me = {"pid": os.getpid(), "pid_start": runs.process_start_time(os.getpid()),
          "at": time.time()}
    assert shown_state(_info(tmp_path, "stopped", me["at"] - 5), me) == "starting"
    # the worker wrote its sidecar after the launch: its word counts
    assert shown_state(_info(tmp_path, "stopped", me["at"] + 5), me) == "stopped"
    assert shown_state(_info(tmp_path, "running", me["at"] - 5), me) == "running"
    dead = {**me, "pid_start": -1}  # not the process that was launched
    assert shown_state(_info(tmp_path, "stopped", me["at"] - 5), dead) == "stopped"
    assert shown_state(_info(tmp_path, "stopped", 0), None) == "stopped"


def test_time_left_is_hidden_until_two_estimates_agree():
    samples = [(0.0, 0), (1.0, 10)]
    assert eta_seconds(samples, 1000) == (None, None)  # too few samples
    samples = [(t, 10 * t) for t in range(0, 4)]
    assert eta_seconds(samples, 1000)[0] is None  # spans less than 8 s
    samples = [(float(t), 10 * t) for t in range(0, 12)]
    shown, raw = eta_seconds(samples, 1000)
    assert shown is None and abs(raw - (1000 - 110) / 10) < 1e-6  # first estimate: not shown
    shown, raw2 = eta_seconds(samples + [(12.0, 120)], 1000, previous=raw)
    assert shown == raw2 and abs(raw2 - 88) < 1e-6
    # a burst of progress that changes the estimate by far more than 25% hides it again
    jumpy = samples + [(12.0, 900)]
    assert eta_seconds(jumpy, 1000, previous=raw)[0] is None
